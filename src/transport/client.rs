//! The client side: one connection to a server, and the conditions Python threads
//! wait on (`wait_for_connection`, `wait_for_close`).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use tokio::net::TcpStream;

use super::connection::{Conn, Role};
use super::dial::{self, Dial};
use super::memory;
use super::peer::PeerCommon;
use super::runtime::runtime;
use super::socket::{Endpoint, SocketInfo};
use super::sync::{deadline, wait_until, ReadAnyway, Unpoisoned};
use super::tls::{ClientTls, TlsHandshakeError};
use crate::peer::constants::{sslsec, state};
use crate::peer::handshake::{self, Action, ClientRules, ConntypeKind};
use crate::peer::table::PacketTable;
use crate::protocol::msgpack::Value;

/// The client's handshake options (from its configuration).
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The connection type to ask the server for.
    pub target_conntype: String,
    /// `net.registry.autosync`.
    pub autosync: bool,
    /// `net.registry.missingpacketaction == "closeconnection"`.
    pub require_same_names: bool,
}

/// What a waiting Python thread wants to know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStatus {
    /// A connection exists (connect succeeded).
    pub connected: bool,
    /// The connection is over, with this reason.
    pub closed: Option<Option<String>>,
}

/// Everything a client shares between Python and its tasks.
pub struct ClientShared {
    /// Inbox, settings, connection types and packet table.
    pub common: PeerCommon,
    options: RwLock<ClientOptions>,
    /// Bumped whenever the handshake replaces the table, so Python knows to re-read it.
    table_epoch: AtomicU64,
    conn: Mutex<Option<Arc<Conn>>>,
    status: Mutex<ClientStatus>,
    status_changed: Condvar,
    /// TLS for the connection (`None`: plain TCP).
    tls: Mutex<Option<Arc<ClientTls>>>,
}

impl ClientShared {
    /// A client with an empty packet table and no connection types yet.
    pub fn new(options: ClientOptions) -> Arc<ClientShared> {
        Arc::new(ClientShared {
            common: PeerCommon::default(),
            options: RwLock::new(options),
            table_epoch: AtomicU64::new(0),
            conn: Mutex::new(None),
            status: Mutex::new(ClientStatus::default()),
            status_changed: Condvar::new(),
            tls: Mutex::new(None),
        })
    }

    /// Replaces the handshake options.
    pub fn set_options(&self, options: ClientOptions) {
        *self.options.lock_anyway() = options;
    }

    /// Changes whenever the handshake replaced the table.
    pub fn table_epoch(&self) -> u64 {
        self.table_epoch.load(Ordering::SeqCst)
    }

    /// The connection, once connected.
    pub fn conn(&self) -> Option<Arc<Conn>> {
        self.conn.lock_anyway().clone()
    }

    /// Uses TLS (or not, with `None`) for connections made from now on.
    pub fn set_tls(&self, tls: Option<ClientTls>) {
        *self.tls.lock_anyway() = tls.map(Arc::new);
    }

    /// Whether connections made from now on use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.lock_anyway().is_some()
    }

    /// Starts the connection on `stream`, which [`dial::start`] found established,
    /// without TLS (see [`ClientShared::uses_tls`]). Never blocks: callable with the GIL.
    pub fn connect_established(
        self: &Arc<Self>,
        stream: std::net::TcpStream,
    ) -> io::Result<Arc<Conn>> {
        let _runtime = runtime().enter();
        let conn = self
            .common
            .start_connection(0, TcpStream::from_std(stream)?, self.clone())?;
        self.connected(&conn);
        Ok(conn)
    }

    /// Connects to the first of `addrs` that accepts within `timeout` each: see
    /// [`ClientShared::connect_after`]. Blocks: call without the GIL.
    pub fn connect(
        self: &Arc<Self>,
        addrs: &[SocketAddr],
        timeout: Duration,
        host: &str,
    ) -> io::Result<Arc<Conn>> {
        self.connect_after(dial::start_first(addrs), addrs, timeout, host)
    }

    /// Connects with `first` (the attempt on `addrs[0]`, started by the caller) or
    /// else the first of the other `addrs` that accepts within `timeout` each, runs
    /// the TLS handshake with `host` (the name the certificate must carry) if TLS is
    /// set, and starts the connection. Blocks: call without the GIL.
    pub fn connect_after(
        self: &Arc<Self>,
        first: Dial,
        addrs: &[SocketAddr],
        timeout: Duration,
        host: &str,
    ) -> io::Result<Arc<Conn>> {
        let tls = self.tls.lock_anyway().clone();
        let stream = dial::first_of(first, addrs.get(1..).unwrap_or_default(), timeout)?;
        let Some(tls) = tls else {
            return self.connect_established(stream);
        };
        let _runtime = runtime().enter();
        let stream = TcpStream::from_std(stream)?;
        let info = self.common.socket_info(&stream, sslsec::NONE)?;
        let limit = self.common.settings().handshake_timeout.unwrap_or(timeout);
        let (stream, level) = runtime()
            .block_on(tokio::time::timeout(limit, tls.connect(stream, host)))
            .map_err(|_| {
                io::Error::other(TlsHandshakeError(format!(
                    "no TLS handshake with {host} within {limit:?} (is the server using TLS?)"
                )))
            })??;
        let info = SocketInfo {
            ssl_seclevel: level,
            ..info
        };
        // Not under the `conn` lock: starting the connection takes the `status` lock
        // (state changes wake waiters), and waiters take `status` before `conn`.
        let conn = self
            .common
            .start_tls_connection(0, info, stream, self.clone());
        self.connected(&conn);
        Ok(conn)
    }

    /// Connects to the server of this process that listens on `memory:name` (see
    /// [`memory`]) and starts the connection. Fails with `ConnectionRefused` if
    /// there is no such server.
    pub fn connect_memory(self: &Arc<Self>, name: &str) -> io::Result<Arc<Conn>> {
        let server = memory::server_named(name)?;
        let (ours, theirs) = memory::pipe();
        let _runtime = runtime().enter();
        let cid = server.accept_memory(name, theirs)?;
        let name: Arc<str> = Arc::from(name);
        let info = SocketInfo {
            peer_addr: Endpoint::Memory {
                name: name.clone(),
                port: 0,
            },
            local_addr: Endpoint::Memory { name, port: cid },
            fd: -1,
            ssl_seclevel: sslsec::NONE,
        };
        let conn = self
            .common
            .start_memory_connection(0, info, ours, self.clone());
        self.connected(&conn);
        Ok(conn)
    }

    /// Records the new connection and wakes threads waiting for it.
    fn connected(&self, conn: &Arc<Conn>) {
        *self.conn.lock_anyway() = Some(conn.clone());
        self.status.lock_anyway().connected = true;
        self.status_changed.notify_all();
    }

    /// Reports a failed connection attempt to waiting threads.
    pub fn connect_failed(&self, reason: String) {
        let mut status = self.status.lock_anyway();
        if status.closed.is_none() {
            status.closed = Some(Some(reason));
        }
        drop(status);
        self.status_changed.notify_all();
    }

    /// Waits until `done(status, state)` holds or `timeout` passes; returns the final
    /// status and whether `done` held. Call without the GIL.
    pub fn wait_until(
        &self,
        timeout: Option<Duration>,
        done: impl Fn(&ClientStatus, Option<u32>) -> bool,
    ) -> (ClientStatus, bool) {
        let status = self.status.lock_anyway();
        let (status, held) =
            wait_until(&self.status_changed, status, deadline(timeout), |status| {
                done(status, self.conn().map(|c| c.state()))
            });
        (status.clone(), held)
    }

    /// Ends the connection at once, unless it is already closing gracefully (then it
    /// finishes its close), and wakes threads waiting for events.
    pub fn stop(&self, reason: Option<String>) {
        if let Some(conn) = self.conn().filter(|conn| !conn.is_closing()) {
            conn.abort(reason);
        }
        self.common.inbox.interrupt();
    }

    /// Runs the classic connection type's client-side `init`.
    pub fn classic_init(&self, conn: &Arc<Conn>) {
        conn.apply(handshake::client_classic_init());
    }
}

/// Whether a state counts as connected for `wait_for_connection`.
pub fn is_active_state(value: u32) -> bool {
    (state::ACTIVE..state::CLOSED).contains(&value)
}

impl Role for ClientShared {
    fn start(&self, _conn: &Arc<Conn>) -> Vec<Action> {
        handshake::client_connect()
    }

    fn internal_packet(&self, conn: &Arc<Conn>, packet_id: u32, msg: &Value) -> Vec<Action> {
        let options = self.options.read_anyway().clone();
        let kind: Option<ConntypeKind> = self
            .common
            .conntypes()
            .read_anyway()
            .get(&options.target_conntype)
            .copied();
        let table = self.common.table().read_anyway();
        let rules = ClientRules {
            target_conntype: &options.target_conntype,
            target_kind: kind,
            table: &table,
            autosync: options.autosync,
            require_same_names: options.require_same_names,
            heartbeat: conn.settings().keepalive.map(|k| k.interval_secs()),
        };
        handshake::client_packet(conn.state(), &conn.conntype(), packet_id, msg, &rules)
    }

    fn adopt_table(&self, table: Option<PacketTable>) {
        if let Some(table) = table {
            *self.common.table().lock_anyway() = table;
        }
        self.table_epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn status_changed(&self, conn: &Arc<Conn>) {
        let mut status = self.status.lock_anyway();
        if conn.is_finished() && status.closed.is_none() {
            status.closed = Some(conn.close_reason());
        }
        drop(status);
        self.status_changed.notify_all();
    }
}
