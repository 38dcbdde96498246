//! The server side: a listening socket (or an in-process address), its accept loop,
//! and the table of live connections, which all share one inbox.

use std::collections::HashMap;

use bytes::Bytes;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWrite, DuplexStream};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

use super::client::is_active_state;
use super::connection::{Conn, Role};
use super::connection::{Event, LogLevel};
use super::memory;
use super::peer::PeerCommon;
use super::runtime::runtime;
use super::socket::{socket_handle as raw_fd, Endpoint, SocketInfo};
use super::stats::{Traffic, TrafficSnapshot};
use super::sync::{deadline, wait_until, ReadAnyway, Unpoisoned};
use super::tls::ServerTls;
use crate::peer::constants::{reason, sslsec};
use crate::peer::handshake::{self, close_packet, Action};
use crate::protocol::msgpack::Value;
use crate::protocol::packet::Compression;

/// Connections that may wait in the kernel's accept queue. The original used 100,
/// which drops connection attempts under a burst; the kernel caps this at somaxconn.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Everything a server shares between Python and its tasks.
pub struct ServerShared {
    /// Inbox, settings, connection types and packet table.
    pub common: PeerCommon,
    /// Live connections by cid; a connection removes itself when its tasks end.
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Signalled whenever a connection leaves `conns`.
    conns_changed: Condvar,
    next_cid: AtomicU64,
    /// Connections beyond this many are refused with a close packet "serverfull".
    max_connections: AtomicUsize,
    /// Stops the accept loop.
    accept_cancel: CancellationToken,
    /// The bound listener, until the accept loop takes it.
    listener: Mutex<Option<TcpListener>>,
    /// TLS for connections accepted from now on (`None`: plain TCP).
    tls: Mutex<Option<Arc<ServerTls>>>,
    /// Connections started so far.
    accepted: AtomicU64,
    /// Connections refused (server full, plaintext to a TLS server).
    refused: AtomicU64,
    /// The traffic of connections that have ended.
    retired: Traffic,
    /// The in-process address (`memory:NAME`) bound instead of a socket, by name.
    memory_name: Mutex<Option<String>>,
}

/// A server's statistics at one moment.
#[derive(Debug, Clone, Copy)]
pub struct ServerStats {
    /// Live connections.
    pub connections: usize,
    /// Connections started since the server started.
    pub accepted: u64,
    /// Connections refused.
    pub refused: u64,
    /// Traffic of every connection, live or ended.
    pub traffic: TrafficSnapshot,
    /// Bytes queued and not yet written, over the live connections.
    pub queued_bytes: usize,
    /// Round-trip estimates over the live connections that have one: (mean, max).
    pub rtt: Option<(Duration, Duration)>,
}

/// How long a TLS server waits for a new connection's first byte. A TLS client sends
/// its hello at once; a plaintext peng3dnet client sends nothing until it has our hello,
/// so silence this long means a plaintext client, which is told so in plaintext.
const TLS_FIRST_BYTE_WAIT: Duration = Duration::from_secs(2);

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

impl ServerShared {
    /// A server with an empty packet table and no connection types yet (the Python
    /// side registers the internal packets and the classic type on `initialize()`).
    pub fn new() -> Arc<ServerShared> {
        Arc::new(ServerShared {
            common: PeerCommon::default(),
            conns: Mutex::new(HashMap::new()),
            conns_changed: Condvar::new(),
            next_cid: AtomicU64::new(1),
            max_connections: AtomicUsize::new(usize::MAX),
            accept_cancel: CancellationToken::new(),
            listener: Mutex::new(None),
            tls: Mutex::new(None),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            retired: Traffic::default(),
            memory_name: Mutex::new(None),
        })
    }

    /// A new unique client id.
    pub fn gen_cid(&self) -> u64 {
        self.next_cid.fetch_add(1, Ordering::SeqCst)
    }

    /// Binds and listens on the first of `addrs` that works; returns the bound address.
    pub fn bind(&self, addrs: &[SocketAddr]) -> io::Result<SocketAddr> {
        let _runtime = runtime().enter();
        let mut last_error = io::Error::new(io::ErrorKind::InvalidInput, "no address to bind to");
        for addr in addrs {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            };
            let attempt = socket.and_then(|socket| {
                // Lets a restarted server bind while old connections sit in TIME_WAIT.
                socket.set_reuseaddr(true)?;
                socket.bind(*addr)?;
                socket.listen(LISTEN_BACKLOG)
            });
            match attempt {
                Ok(listener) => {
                    let local = listener.local_addr()?;
                    *self.listener.lock_anyway() = Some(listener);
                    return Ok(local);
                }
                Err(err) => last_error = err,
            }
        }
        Err(last_error)
    }

    /// Listens on the in-process address `memory:name` instead of a socket (see
    /// [`memory`]). Clients of this process can connect from now on.
    pub fn bind_memory(self: &Arc<Self>, name: &str) -> io::Result<()> {
        memory::listen(name, self)?;
        *self.memory_name.lock_anyway() = Some(name.to_owned());
        Ok(())
    }

    /// Whether new connections are taken (not stopped yet).
    pub fn is_accepting(&self) -> bool {
        !self.accept_cancel.is_cancelled()
    }

    /// Takes a new in-process connection whose server end is `stream`; returns its
    /// cid (0 if the server is full: the client is then told so with a close packet,
    /// as over TCP). Must run inside the runtime.
    fn take_memory_connection(
        self: &Arc<Self>,
        name: &str,
        stream: DuplexStream,
    ) -> io::Result<u64> {
        if !self.is_accepting() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("the server on {}{name} has stopped", memory::SCHEME),
            ));
        }
        let mut conns = self.conns.lock_anyway();
        if self.is_full(&conns) {
            drop(conns);
            self.note_refused_full(&format!("{}{name}", memory::SCHEME));
            tokio::spawn(refuse(stream, reason::SERVER_FULL));
            return Ok(0);
        }
        let cid = self.gen_cid();
        let name: Arc<str> = Arc::from(name);
        let info = SocketInfo {
            peer_addr: Endpoint::Memory {
                name: name.clone(),
                port: cid,
            },
            local_addr: Endpoint::Memory { name, port: 0 },
            fd: -1,
            ssl_seclevel: sslsec::NONE,
        };
        let conn = self
            .common
            .start_memory_connection(cid, info, stream, self.clone());
        conns.insert(cid, conn);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(cid)
    }

    /// The OS handle of the bound listener, or -1.
    pub fn listener_fd(&self) -> i64 {
        self.listener.lock_anyway().as_ref().map_or(-1, raw_fd)
    }

    /// Starts accepting connections on the bound listener (an in-process server
    /// accepts from its bind on).
    pub fn start(self: &Arc<Self>) -> io::Result<()> {
        if self.memory_name.lock_anyway().is_some() {
            return Ok(());
        }
        let listener = self.listener.lock_anyway().take().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "the server is not bound")
        })?;
        let server = self.clone();
        runtime().spawn(async move { server.accept_loop(listener).await });
        Ok(())
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                () = self.accept_cancel.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => self.adopt(stream),
                // Out of file descriptors or a similar transient failure: back off
                // instead of spinning; established connections carry on.
                Err(_) => {
                    tokio::select! {
                        () = self.accept_cancel.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
            }
        }
    }

    /// Sets the most connections kept at once.
    pub fn set_max_connections(&self, limit: usize) {
        self.max_connections.store(limit, Ordering::SeqCst);
    }

    /// Uses TLS (or not, with `None`) for connections accepted from now on.
    pub fn set_tls(&self, tls: Option<ServerTls>) {
        *self.tls.lock_anyway() = tls.map(Arc::new);
    }

    fn is_full(&self, conns: &HashMap<u64, Arc<Conn>>) -> bool {
        conns.len() >= self.max_connections.load(Ordering::SeqCst)
    }

    fn adopt(self: &Arc<Self>, stream: TcpStream) {
        if let Some(tls) = self.tls.lock_anyway().clone() {
            tokio::spawn(self.clone().adopt_tls(stream, tls));
            return;
        }
        // Hold the table lock while the connection starts, so that it is in the table
        // before Python can take any of its events.
        let mut conns = self.conns.lock_anyway();
        if self.is_full(&conns) {
            drop(conns);
            self.refuse_full(stream);
            return;
        }
        let cid = self.gen_cid();
        if let Ok(conn) = self.common.start_connection(cid, stream, self.clone()) {
            conns.insert(cid, conn);
            self.accepted.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn adopt_tls(self: Arc<Self>, stream: TcpStream, tls: Arc<ServerTls>) {
        let peer = peer_text(&stream);
        if self.is_full(&self.conns.lock_anyway()) {
            // Before the TLS handshake, a refusal can only be said in plaintext.
            self.refuse_full(stream);
            return;
        }
        let mut first = [0u8; 1];
        let peeked = tokio::select! {
            () = self.accept_cancel.cancelled() => return,
            peeked = tokio::time::timeout(TLS_FIRST_BYTE_WAIT, stream.peek(&mut first)) => peeked,
        };
        match peeked {
            Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => {}
            Ok(Ok(0) | Err(_)) => return,
            _ => {
                self.log(format!(
                    "refusing a plaintext connection from {peer}: this server requires TLS"
                ));
                self.refused.fetch_add(1, Ordering::Relaxed);
                refuse(stream, reason::TLS_REQUIRED).await;
                return;
            }
        }
        let settings = self.common.settings();
        let limit = settings
            .handshake_timeout
            .unwrap_or(Duration::from_secs(60));
        let accepted = tokio::select! {
            () = self.accept_cancel.cancelled() => return,
            accepted = tokio::time::timeout(limit, async {
                let info = self.common.socket_info(&stream, sslsec::NONE)?;
                let (stream, level) = tls.accept(stream).await?;
                Ok::<_, io::Error>((stream, SocketInfo { ssl_seclevel: level, ..info }))
            }) => accepted,
        };
        let (stream, info) = match accepted {
            Ok(Ok(done)) => done,
            Ok(Err(err)) => {
                self.log(format!("TLS connection from {peer} failed: {err}"));
                return;
            }
            Err(_) => {
                self.log(format!(
                    "TLS connection from {peer} failed: no TLS handshake within {limit:?}"
                ));
                return;
            }
        };
        let mut conns = self.conns.lock_anyway();
        if self.is_full(&conns) {
            return;
        }
        let cid = self.gen_cid();
        let conn = self
            .common
            .start_tls_connection(cid, info, stream, self.clone());
        conns.insert(cid, conn);
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    fn refuse_full(&self, stream: TcpStream) {
        self.note_refused_full(&peer_text(&stream));
        tokio::spawn(refuse(stream, reason::SERVER_FULL));
    }

    fn note_refused_full(&self, peer: &str) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.log(format!(
            "refusing a connection from {peer}: the server already has {} connections \
             (net.limits.max_connections)",
            self.max_connections.load(Ordering::SeqCst)
        ));
    }

    fn log(&self, message: String) {
        self.common.inbox.push(Event::PeerLog {
            level: LogLevel::Warning,
            message,
        });
    }

    /// Queues one encoded frame to each of `cids` that is live, active (handshake
    /// done) and not closing; returns how many got it. One slow or closing client does
    /// not hold up the others: each has its own queue.
    pub fn broadcast(&self, frame: &Bytes, payload_len: usize, cids: &[u64]) -> usize {
        let targets: Vec<Arc<Conn>> = {
            let conns = self.conns.lock_anyway();
            cids.iter()
                .filter_map(|cid| conns.get(cid).cloned())
                .collect()
        };
        targets
            .iter()
            .filter(|conn| is_active_state(conn.state()) && !conn.is_closing())
            .filter(|conn| conn.queue_shared_frame(frame.clone(), payload_len))
            .count()
    }

    /// The live connection with this cid.
    pub fn conn(&self, cid: u64) -> Option<Arc<Conn>> {
        self.conns.lock_anyway().get(&cid).cloned()
    }

    /// Number of live connections.
    pub fn connection_count(&self) -> usize {
        self.conns.lock_anyway().len()
    }

    /// The live connections, in no particular order.
    pub fn connections(&self) -> Vec<Arc<Conn>> {
        self.conns.lock_anyway().values().cloned().collect()
    }

    /// Statistics now: totals over every connection so far, and the live ones' state.
    pub fn stats(&self) -> ServerStats {
        // Under the table lock: a connection that ends meanwhile is counted either
        // live or retired, never both (`gone` retires it under the same lock).
        let live = self.conns.lock_anyway();
        let mut traffic = self.retired.snapshot();
        let mut queued_bytes = 0;
        let (mut rtt_sum, mut rtt_max, mut rtt_count) = (Duration::ZERO, Duration::ZERO, 0u32);
        for conn in live.values() {
            let stats = conn.stats();
            traffic += stats.traffic;
            queued_bytes += stats.queued_bytes;
            if let Some(rtt) = stats.rtt {
                rtt_sum += rtt;
                rtt_max = rtt_max.max(rtt);
                rtt_count += 1;
            }
        }
        ServerStats {
            connections: live.len(),
            accepted: self.accepted.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            traffic,
            queued_bytes,
            rtt: (rtt_count > 0).then(|| (rtt_sum / rtt_count, rtt_max)),
        }
    }

    /// Closes every connection gracefully with `reason`.
    pub fn close_all(&self, reason: Option<String>) {
        let conns = self.connections();
        for conn in conns {
            conn.close(reason.clone());
        }
    }

    /// Waits until every connection is gone (closed and its tasks ended: after a
    /// graceful close, once the peer hung up or the linger time passed), or until
    /// `timeout` passes; returns whether that happened. Call without the GIL.
    pub fn wait_all_gone(&self, timeout: Option<Duration>) -> bool {
        let conns = self.conns.lock_anyway();
        wait_until(&self.conns_changed, conns, deadline(timeout), |conns| {
            conns.is_empty()
        })
        .1
    }

    /// Stops accepting and ends every connection at once, reporting `reason`, except
    /// connections already closing gracefully: they finish their close.
    pub fn stop(&self, reason: Option<String>) {
        self.accept_cancel.cancel();
        let conns = self.connections();
        for conn in conns.iter().filter(|conn| !conn.is_closing()) {
            conn.abort(reason.clone());
        }
        self.listener.lock_anyway().take();
        if let Some(name) = self.memory_name.lock_anyway().as_deref() {
            memory::unlisten(name, self);
        }
        self.common.inbox.interrupt();
    }

    /// Runs the classic connection type's server-side `init` for `conn` (when a Python
    /// subclass of the classic type calls its base implementation).
    pub fn classic_init(&self, conn: &Arc<Conn>) {
        let table = self.common.table().read_anyway();
        let actions = handshake::server_classic_init(&table);
        drop(table);
        conn.apply(actions);
    }
}

/// The remote address of a socket, for log records.
fn peer_text(stream: &TcpStream) -> String {
    stream
        .peer_addr()
        .map_or_else(|_| "an unknown address".to_owned(), |addr| addr.to_string())
}

/// Tells a connection we will not serve why (a close packet), then hangs up.
async fn refuse<S: AsyncWrite + Unpin>(mut stream: S, why: &'static str) {
    use tokio::io::AsyncWriteExt;
    let frame = close_packet(Some(why), &Compression::default());
    let write = async {
        let _ = stream.write_all(&frame).await;
        let _ = stream.shutdown().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}

impl memory::Listener for ServerShared {
    fn is_accepting(&self) -> bool {
        ServerShared::is_accepting(self)
    }

    fn accept_memory(self: Arc<Self>, name: &str, stream: DuplexStream) -> io::Result<u64> {
        self.take_memory_connection(name, stream)
    }
}

impl Role for ServerShared {
    fn start(&self, conn: &Arc<Conn>) -> Vec<Action> {
        handshake::server_accept(conn.settings().keepalive.map(|k| k.interval_secs()))
    }

    fn internal_packet(&self, conn: &Arc<Conn>, packet_id: u32, msg: &Value) -> Vec<Action> {
        let conntypes = self.common.conntypes().read_anyway();
        let table = self.common.table().read_anyway();
        let heartbeat = conn.settings().keepalive.is_some();
        handshake::server_packet(conn.state(), packet_id, msg, &conntypes, &table, heartbeat)
    }

    fn hangup_reason(&self) -> Option<String> {
        None
    }

    fn gone(&self, conn: &Arc<Conn>) {
        let mut conns = self.conns.lock_anyway();
        if conns.remove(&conn.cid).is_some() {
            // Counted while the table lock is held, so that `stats` never sees the
            // connection both live and retired.
            self.retired.absorb(&conn.traffic());
        }
        drop(conns);
        self.conns_changed.notify_all();
    }
}
