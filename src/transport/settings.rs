//! The settings a peer gives every connection it runs: decoding limits, compression,
//! queue limits, timeouts and dead-peer detection. Read from `net.*` configuration by
//! the bindings; read-only once a connection has them.

use std::time::Duration;

use crate::protocol::packet::Compression;
use crate::protocol::Limits;

/// Per-peer settings that every connection of the peer shares.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Decoding limits.
    pub limits: Limits,
    /// Compression of outgoing bodies.
    pub compression: Compression,
    /// Bytes of one connection's packets that may wait in the inbox before its reader
    /// stops reading (a single larger packet is still accepted).
    pub inbox_limit: usize,
    /// How long a closed connection keeps draining so the peer can read our close packet.
    pub linger: Duration,
    /// Longest a graceful close may take (flushing included) before it becomes an abort.
    pub close_timeout: Duration,
    /// A connection that has not reached `STATE_ACTIVE` (or beyond) this long after it
    /// started is closed with "handshaketimeout"; `None`: never.
    pub handshake_timeout: Option<Duration>,
    /// A connection from which nothing arrives for this long is closed with
    /// "idletimeout"; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Bytes that may wait to be written to one connection. A peer that lets more pile
    /// up is not reading: the connection is dropped with "writequeuefull". (One frame
    /// larger than this is still accepted into an empty queue.)
    pub write_queue_limit: usize,
    /// Dead-peer detection (`net.keepalive.*`); `None`: off.
    pub keepalive: Option<Keepalive>,
    /// Largest frame (and inflated body) accepted before the handshake is complete:
    /// a handshake needs little, and a connection costs an attacker nothing.
    pub handshake_frame_len: u32,
    /// The peer's memory budget in bytes (see `budget`).
    pub memory_budget: usize,
    /// How long the budget may stay exhausted before the connection holding the most
    /// is dropped with "memorylimit".
    pub memory_grace: Duration,
}

/// Default for [`Settings::handshake_frame_len`]: 64 KiB.
pub const DEFAULT_HANDSHAKE_FRAME_LEN: u32 = 64 * 1024;

/// The default memory budget: a quarter of the machine's memory, between 64 MiB and
/// 512 MiB (512 MiB where the size of the memory is unknown).
pub fn default_memory_budget() -> usize {
    const MIB: usize = 1024 * 1024;
    physical_memory().map_or(512 * MIB, |total| (total / 4).clamp(64 * MIB, 512 * MIB))
}

/// The machine's physical memory in bytes, where the system says.
fn physical_memory() -> Option<usize> {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads system constants.
        let (pages, page_size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && page_size > 0 {
            return usize::try_from(pages)
                .ok()?
                .checked_mul(usize::try_from(page_size).ok()?);
        }
    }
    None
}

/// Dead-peer detection: TCP keepalive on every socket, and heartbeats on connections
/// whose peer is a peng3dnet-rs peer that offered them too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keepalive {
    /// How often a connection is probed.
    pub interval: Duration,
    /// A connection on which nothing arrives for this long is closed with "timeout"
    /// (heartbeats), or given up by the operating system (TCP keepalive).
    pub timeout: Duration,
}

impl Keepalive {
    /// The heartbeat interval as announced in the handshake, in seconds.
    pub fn interval_secs(&self) -> f64 {
        self.interval.as_secs_f64()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            compression: Compression::default(),
            inbox_limit: 16 * 1024 * 1024,
            linger: Duration::from_secs(2),
            close_timeout: Duration::from_secs(10),
            handshake_timeout: Some(Duration::from_secs(10)),
            idle_timeout: None,
            write_queue_limit: 64 * 1024 * 1024,
            keepalive: Some(Keepalive {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(30),
            }),
            handshake_frame_len: DEFAULT_HANDSHAKE_FRAME_LEN,
            memory_budget: default_memory_budget(),
            memory_grace: Duration::from_secs(1),
        }
    }
}
