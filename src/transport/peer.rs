//! What servers and clients share: the inbox their Python side drains, their settings,
//! connection types and packet table, and how a connected stream (TCP, TLS or an
//! in-process pipe) becomes a [`Conn`].

use std::io;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::TcpStream;

use super::budget::{self, MemoryBudget, Notice};
use super::connection::{Conn, Event, Inbox, LogLevel, Role};
use super::direct_read::DirectReaders;
use super::outbox::StreamWriter;
use super::reader::{self, TcpReader};
use super::settings::{Keepalive, Settings};
use super::shared_tcp::SharedTcp;
use super::socket::{socket_handle, Endpoint, SocketInfo};
use super::sync::{deadline, ReadAnyway, Unpoisoned};
use super::writer;
use crate::peer::constants::sslsec;
use crate::peer::handshake::Conntypes;
use crate::peer::table::PacketTable;
use crate::protocol::packet::Compression;

/// The parts of a server or client that do not depend on its side.
pub struct PeerCommon {
    /// Events for Python.
    pub inbox: Arc<Inbox>,
    /// Plain TCP connections whose sockets a thread waiting for events reads itself.
    pub direct: Arc<DirectReaders<TcpReader>>,
    /// The memory all connections may hold (see `budget`).
    pub budget: Arc<MemoryBudget>,
    /// Settings for connections made from now on.
    settings: RwLock<Arc<Settings>>,
    /// Known connection types; set from Python.
    conntypes: RwLock<Conntypes>,
    /// Packet names and ids; set from Python's registry (the client's is re-numbered by
    /// the handshake).
    table: RwLock<PacketTable>,
}

impl Default for PeerCommon {
    fn default() -> Self {
        budget::map_large_blocks();
        let inbox = Inbox::new();
        let settings = Settings::default();
        let budget = MemoryBudget::new(settings.memory_budget, settings.memory_grace);
        let notices = Arc::downgrade(&inbox);
        budget.on_notice(Box::new(move |notice| {
            if let Some(inbox) = notices.upgrade() {
                inbox.push(budget_log(notice));
            }
        }));
        PeerCommon {
            direct: DirectReaders::new(inbox.clone()),
            inbox,
            budget,
            settings: RwLock::new(Arc::new(settings)),
            conntypes: RwLock::new(Conntypes::new()),
            table: RwLock::new(PacketTable::new()),
        }
    }
}

impl PeerCommon {
    /// Takes up to `max` events; with `wait`, waits for them for at most `timeout`
    /// (forever if `None`) or until the inbox is interrupted: first reading the direct
    /// readers' sockets in this thread, then on the inbox. Must be called without
    /// holding the GIL.
    pub fn take_events(&self, max: usize, wait: bool, timeout: Option<Duration>) -> Vec<Event> {
        if !wait {
            return self.inbox.take_until(max, false, None);
        }
        let deadline = deadline(timeout);
        self.direct.wait(deadline);
        self.inbox.take_until(max, true, deadline)
    }

    /// Replaces the settings used by connections made from now on.
    pub fn configure(&self, settings: Settings) {
        self.budget
            .configure(settings.memory_budget, settings.memory_grace);
        *self.settings.lock_anyway() = Arc::new(settings);
    }

    /// The packet table.
    pub fn table(&self) -> &RwLock<PacketTable> {
        &self.table
    }

    /// The connection types.
    pub fn conntypes(&self) -> &RwLock<Conntypes> {
        &self.conntypes
    }

    /// Starts connection `cid` on a connected plain TCP stream, with `role`'s rules.
    /// Must run inside the runtime (it spawns the connection's tasks).
    pub fn start_connection(
        &self,
        cid: u64,
        stream: TcpStream,
        role: Arc<dyn Role>,
    ) -> io::Result<Arc<Conn>> {
        let info = self.socket_info(&stream, sslsec::NONE)?;
        let tcp = SharedTcp(Arc::new(stream));
        let writer = Box::new(tcp.clone());
        let conn = self.start_state(cid, info, writer, Some(tcp.clone()), self.settings(), role);
        reader::start_tcp(&conn, tcp, self.direct.clone());
        Ok(conn)
    }

    /// Starts connection `cid` on an established TLS stream (see
    /// [`PeerCommon::start_connection`]); `info` describes its TCP socket.
    pub fn start_tls_connection<S>(
        &self,
        cid: u64,
        info: SocketInfo,
        stream: S,
        role: Arc<dyn Role>,
    ) -> Arc<Conn>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        // No direct writes: a TLS record must be written by the one task that owns
        // the TLS state.
        self.start_split(cid, info, stream, self.settings(), role)
    }

    /// Starts connection `cid` on one end of an in-process pipe (see
    /// [`super::memory`]): the current settings without compression and without
    /// dead-peer detection, which only serve a network.
    pub fn start_memory_connection(
        &self,
        cid: u64,
        info: SocketInfo,
        stream: DuplexStream,
        role: Arc<dyn Role>,
    ) -> Arc<Conn> {
        let base = self.settings();
        let settings = Arc::new(Settings {
            compression: Compression {
                enabled: false,
                ..base.compression
            },
            keepalive: None,
            ..(*base).clone()
        });
        self.start_split(cid, info, stream, settings, role)
    }

    /// Starts a connection on a stream read by its reader task alone: split into its
    /// reading and writing halves.
    fn start_split<S>(
        &self,
        cid: u64,
        info: SocketInfo,
        stream: S,
        settings: Arc<Settings>,
        role: Arc<dyn Role>,
    ) -> Arc<Conn>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read_half, write_half) = tokio::io::split(stream);
        let conn = self.start_state(cid, info, Box::new(write_half), None, settings, role);
        reader::start(&conn, read_half);
        conn
    }

    /// A connection's state (see [`Conn::start`]), its writer tasks started by
    /// `writer::start`; the caller starts its reader.
    fn start_state(
        &self,
        cid: u64,
        info: SocketInfo,
        writer: StreamWriter,
        direct: Option<SharedTcp>,
        settings: Arc<Settings>,
        role: Arc<dyn Role>,
    ) -> Arc<Conn> {
        Conn::start(
            cid,
            info,
            writer,
            writer::start,
            direct,
            settings,
            self.inbox.clone(),
            self.budget.clone(),
            role,
        )
    }

    /// The settings for connections made now.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.read_anyway().clone()
    }
}

/// The log record of a budget notice.
fn budget_log(notice: Notice) -> Event {
    const MIB: f64 = 1024.0 * 1024.0;
    let (level, message) = match notice {
        Notice::Pressure { used, limit } => (
            LogLevel::Warning,
            format!(
                "memory budget exhausted ({:.1} of {:.1} MiB in use): reading pauses, \
                 and the connection holding the most is dropped if this lasts",
                used as f64 / MIB,
                limit as f64 / MIB
            ),
        ),
        Notice::Relieved { lasted, evicted } => (
            LogLevel::Info,
            format!(
                "memory budget available again after {:.2} s ({evicted} connections dropped)",
                lasted.as_secs_f64()
            ),
        ),
    };
    Event::PeerLog { level, message }
}

impl PeerCommon {
    /// Prepares a connected socket with the current settings (see [`socket_info`]).
    pub fn socket_info(&self, stream: &TcpStream, ssl_seclevel: u32) -> io::Result<SocketInfo> {
        socket_info(stream, ssl_seclevel, self.settings().keepalive)
    }
}

/// Prepares a connected socket (no Nagle delay; TCP keepalive per `keepalive`) and
/// describes it.
pub fn socket_info(
    stream: &TcpStream,
    ssl_seclevel: u32,
    keepalive: Option<Keepalive>,
) -> io::Result<SocketInfo> {
    // Small request/response packets must not wait for Nagle's algorithm.
    stream.set_nodelay(true)?;
    if let Some(keepalive) = keepalive {
        set_tcp_keepalive(stream, keepalive)?;
    }
    Ok(SocketInfo {
        peer_addr: Endpoint::Socket(stream.peer_addr()?),
        local_addr: Endpoint::Socket(stream.local_addr()?),
        fd: socket_handle(stream),
        ssl_seclevel,
    })
}

/// Turns on TCP keepalive so that the operating system gives up on a peer that stops
/// answering (a crashed host, a pulled cable) about `keepalive.timeout` after the
/// last data: probes start after one interval of silence and repeat every interval.
fn set_tcp_keepalive(stream: &TcpStream, keepalive: Keepalive) -> io::Result<()> {
    let interval = keepalive.interval.max(Duration::from_secs(1));
    let probes = (keepalive.timeout.as_secs_f64() / interval.as_secs_f64()).ceil() as u32;
    let params = socket2::TcpKeepalive::new()
        .with_time(interval)
        .with_interval(interval)
        .with_retries(probes.saturating_sub(1).max(1));
    socket2::SockRef::from(stream).set_tcp_keepalive(&params)
}
