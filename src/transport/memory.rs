//! The in-process transport: servers that listen on a `memory:NAME` address, and the
//! clients of the same process that connect to them.
//!
//! A connection is a pair of in-memory pipes ([`tokio::io::duplex`]) in place of a
//! socket. Everything above the byte stream is the code TCP connections run: framing,
//! limits, the handshake, SmartPacket checks in Python, closing with a reason. Only
//! what exists for the network is left out: no compression (inflating would cost time
//! and save nothing), no heartbeats or TCP keepalive (both ends live and die with the
//! process), no TLS. Every message is still encoded and decoded, so a receiver gets
//! its own objects (never one the sender can still change) with exactly the types it
//! would get over TCP (a tuple arrives as a list, as it does over the wire).
//!
//! This module owns the process-wide table of names in use. It knows a server only as
//! a [`Listener`], so that the server and the client both depend on it, and it on
//! neither.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use tokio::io::DuplexStream;

use super::sync::Unpoisoned;

/// The prefix of an in-process address.
pub const SCHEME: &str = "memory:";

/// Bytes one direction of a connection's pipe holds before the writer waits for the
/// reader: enough for the writer task's largest batch several times over.
pub const PIPE_CAPACITY: usize = 256 * 1024;

/// A server as the in-process transport sees it.
pub trait Listener: Send + Sync + 'static {
    /// Whether it takes new connections (not stopped yet).
    fn is_accepting(&self) -> bool;
    /// Takes a new connection whose server end is `stream`; its cid, or 0 if the
    /// server is full (the client is then told so). Must run inside the runtime.
    fn accept_memory(self: Arc<Self>, name: &str, stream: DuplexStream) -> io::Result<u64>;
}

/// Servers by the name they listen on. Weak: a server that is dropped without being
/// stopped frees its name.
fn listeners() -> MutexGuard<'static, HashMap<String, Weak<dyn Listener>>> {
    static LISTENERS: OnceLock<Mutex<HashMap<String, Weak<dyn Listener>>>> = OnceLock::new();
    LISTENERS.get_or_init(Mutex::default).lock_anyway()
}

/// Checks that `name` can be an in-process address.
pub fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{SCHEME}{name:?} is not a valid in-process address: give a name without \
                 spaces after '{SCHEME}', e.g. '{SCHEME}game1'"
            ),
        ));
    }
    Ok(())
}

/// Makes `server` the one that clients connecting to `memory:name` reach. Fails with
/// `AddrInUse` while another live server has the name.
pub fn listen<L: Listener>(name: &str, server: &Arc<L>) -> io::Result<()> {
    check_name(name)?;
    let mut listeners = listeners();
    if let Some(other) = listeners.get(name).and_then(Weak::upgrade) {
        if !same(Arc::as_ptr(&other), Arc::as_ptr(server)) && other.is_accepting() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "another server of this process already listens on {SCHEME}{name}; \
                     stop it first or choose another name"
                ),
            ));
        }
    }
    let server: Arc<dyn Listener> = server.clone();
    listeners.insert(name.to_owned(), Arc::downgrade(&server));
    Ok(())
}

/// Frees `name` if `server` holds it.
pub fn unlisten<L: Listener>(name: &str, server: &L) {
    let mut listeners = listeners();
    if listeners
        .get(name)
        .is_some_and(|held| same(held.as_ptr(), server))
    {
        listeners.remove(name);
    }
}

/// The server listening on `memory:name`; `ConnectionRefused` if there is none.
pub fn server_named(name: &str) -> io::Result<Arc<dyn Listener>> {
    check_name(name)?;
    listeners()
        .get(name)
        .and_then(Weak::upgrade)
        .filter(|server| server.is_accepting())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!(
                    "no server of this process listens on {SCHEME}{name} (bind a Server \
                     to that address first; in-process addresses do not reach other processes)"
                ),
            )
        })
}

/// Whether two pointers (one maybe to a trait object) point to the same server.
fn same<A: ?Sized, B: ?Sized>(a: *const A, b: *const B) -> bool {
    std::ptr::addr_eq(a, b)
}

/// A new connection's two ends: (client's, server's).
pub fn pipe() -> (DuplexStream, DuplexStream) {
    tokio::io::duplex(PIPE_CAPACITY)
}
