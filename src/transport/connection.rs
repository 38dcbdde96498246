//! One connection: its shared state ([`Conn`]) and its reader and writer tasks.
//!
//! The reader turns bytes into frames, hands internal packets to the peer's handshake
//! rules ([`Role`]) and queues every packet for Python. The writer drains the outbox
//! in order, batching small frames into one write. Either task ending cancels the
//! other; the connection leaves its peer's table when both have ended.
//!
//! Closing, from our side ([`Conn::close`]): the close packet is queued behind
//! everything already queued and flushed, and the connection is reported closed; the
//! socket then stays open, draining (and discarding) input, until the peer hangs up or
//! `linger` passes, so that the peer reads our close packet before it sees the end of
//! the stream. From the peer's side (EOF, reset): reported closed at once. The peer's
//! close packet is reported at once too, but we hang up only when the peer does or
//! [`PEER_CLOSE_GRACE`] has passed (see there). [`Conn::abort`] ends everything at
//! once without a close packet.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::inbox::{Event, Inbox, LogLevel};
use super::outbox::{Outbound, Outbox, Pushed, StreamWriter};
use super::shared_tcp::SharedTcp;
use super::sync::Unpoisoned;
use super::tasks;
use super::timers::{self, Timer};
use crate::peer::constants::{pid, reason, state, CONNTYPE_NOTSET};
use crate::peer::handshake::Action;
use crate::peer::table::PacketTable;
use crate::protocol::msgpack::{ReadLimits, Value};
use crate::protocol::packet::{self, Compression};
use crate::protocol::{
    Frame, FrameError, Header, Limits, ProtocolError, HEADER_LEN, INTERNAL_ID_LIMIT,
};

/// After the peer's close packet, how long we wait for it to hang up before we do.
///
/// The original's client does not hang up after sending its close packet, and a
/// hang-up it sees before it has stopped is reported as "socketclose" instead of the
/// reason it sent. Its own server hangs up a few milliseconds later (after dispatching
/// the packet), by which time such a client has usually stopped. A peer of ours waits
/// for us to hang up (see `linger`), so between two of ours a close takes this long.
pub const PEER_CLOSE_GRACE: Duration = Duration::from_millis(100);

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
        }
    }
}

/// The side-specific part of a connection: the server's or the client's rules.
pub trait Role: Send + Sync + 'static {
    /// Actions when the connection starts.
    fn start(&self, conn: &Arc<Conn>) -> Vec<Action>;
    /// Actions for an internal packet (id below 64).
    fn internal_packet(&self, conn: &Arc<Conn>, packet_id: u32, msg: &Value) -> Vec<Action>;
    /// (client) The registry was synchronised: use this table from now on.
    fn adopt_table(&self, _table: PacketTable) {}
    /// The close reason when the peer ends the stream without a close packet: the
    /// original's client reports "socketclose", its server no reason at all.
    fn hangup_reason(&self) -> Option<String> {
        Some(reason::SOCKET_CLOSE.to_owned())
    }
    /// The connection's state or status changed (wakes client waiters).
    fn status_changed(&self, _conn: &Arc<Conn>) {}
    /// Both tasks of the connection have ended.
    fn gone(&self, _conn: &Arc<Conn>) {}
}

/// A connection's state, shared by its tasks, its peer and Python.
pub struct Conn {
    /// Client id (unique per server; 0 on the client side).
    pub cid: u64,
    /// Remote address.
    pub peer_addr: Endpoint,
    /// Local address.
    pub local_addr: Endpoint,
    /// OS handle of the socket (for `fileno()`), or -1.
    pub fd: i64,
    settings: Arc<Settings>,
    inbox: Arc<Inbox>,
    role: Arc<dyn Role>,
    /// `STATE_*`, as Python sees it (Python may set it too).
    state: AtomicU32,
    /// Connection type name.
    conntype: Mutex<String>,
    /// `SSLSEC_*` level negotiated for this connection.
    ssl_seclevel: AtomicU32,
    /// A close has started: nothing more is sent.
    closing: AtomicBool,
    /// The Closed event has been queued: nothing more is received.
    finished: AtomicBool,
    /// Python found a packet body it cannot decode: the rest of the input is dropped.
    input_rejected: AtomicBool,
    /// A connection type `init` is running in Python; internal packets wait for it.
    init_pending: AtomicBool,
    init_done: Notify,
    /// Why the connection ended, once it has.
    close_reason: Mutex<Option<String>>,
    /// The reason of a graceful close we started: whatever ends the connection after
    /// that (the peer hanging up first, the close timeout), this is what is reported.
    intended_reason: Mutex<Option<Option<String>>>,
    /// Stops both tasks.
    pub(super) cancel: CancellationToken,
    /// What waits for the writer task.
    pub(super) outbox: Outbox,
    /// Bytes queued in the outbox and not yet written.
    pub(super) out_bytes: AtomicUsize,
    /// Signalled whenever queued bytes were written, and when a close starts: wakes
    /// asyncio senders waiting for room ([`Conn::wait_queue_at_most`]).
    pub(super) write_progress: Notify,
    /// Events of this connection in the inbox, not yet taken by Python.
    undelivered: AtomicUsize,
    /// Body bytes of this connection's packets in the inbox (for back-pressure).
    inbox_bytes: AtomicUsize,
    inbox_drained: Notify,
    /// Reader and writer tasks still running.
    tasks_alive: AtomicU8,
    /// Traffic counters (for statistics and diagnosis).
    pub(super) traffic: Traffic,
    /// When the connection started; the time base of the microsecond fields below.
    started: Instant,
    /// When input last arrived, in microseconds since `started`.
    last_input_us: AtomicU64,
    /// How long the handshake took, in microseconds ([`UNKNOWN`] until it completes).
    handshake_us: AtomicU64,
    /// The last round-trip estimate, in microseconds ([`UNKNOWN`] until there is one).
    rtt_us: AtomicU64,
    /// Requests awaiting the answer that times a round trip.
    probes: Mutex<Probes>,
    /// Heartbeats were negotiated and are running (see [`Conn::timer_due`]).
    heartbeat_on: AtomicBool,
    /// When the last frame was queued or written, in microseconds since `started`.
    last_send_us: AtomicU64,
    /// The socket, for writing directly from the sending thread when nothing is queued
    /// (plain TCP only; released when the tasks end, so that the socket closes then).
    /// Its lock is held while a frame is written directly or queued, and while a close
    /// is queued: a direct write must never interleave with the writer task's bytes.
    send_lock: Mutex<Option<SharedTcp>>,
    /// Plain TCP only: the reading side, shared by the reader task and a Python thread
    /// that waits for input and reads the socket itself ([`Conn::read_inline`]).
    pub(super) shared_reader: Option<tasks::SharedReader>,
}

/// The value of an unset microsecond field of [`Conn`].
const UNKNOWN: u64 = u64::MAX;

/// Sends closer together than this (microseconds) count as a stream: they are queued
/// for the writer task to batch instead of being written one by one.
const STREAMING_GAP_US: u64 = 50;

/// Outstanding round-trip probes of a connection.
#[derive(Debug, Default)]
struct Probes {
    /// A handshake packet (hello, settype) was sent at this time; the peer's next
    /// internal packet answers it.
    handshake: Option<Instant>,
    /// The last heartbeat probe: its number and when it was sent.
    heartbeat: Option<(u64, Instant)>,
    /// Number of the next heartbeat probe.
    next_heartbeat: u64,
}

/// What went through one connection so far. Relaxed counters: each is exact, but a
/// snapshot of several is not taken atomically.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes read from the socket.
    pub bytes_in: AtomicU64,
    /// Frames decoded from those bytes.
    pub frames_in: AtomicU64,
    /// Body bytes of those frames as they arrived (compressed or not).
    pub wire_body_in: AtomicU64,
    /// Body bytes of those frames once inflated: the msgpack payload.
    pub payload_in: AtomicU64,
    /// Frames queued for sending.
    pub frames_queued: AtomicU64,
    /// Body bytes of those frames as sent (compressed or not).
    pub wire_body_out: AtomicU64,
    /// Body bytes of those frames before compression: the msgpack payload.
    pub payload_out: AtomicU64,
    /// Bytes handed to the socket.
    pub bytes_out: AtomicU64,
    /// Socket reads done by a thread waiting for events instead of the reader task
    /// ([`Conn::read_inline`]).
    pub reads_inline: AtomicU64,
}

/// A snapshot of [`Traffic`] (and the sum of several, for a server's totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficSnapshot {
    /// Bytes read from the socket.
    pub bytes_in: u64,
    /// Frames decoded.
    pub frames_in: u64,
    /// Body bytes received, as they arrived.
    pub wire_body_in: u64,
    /// Body bytes received, inflated.
    pub payload_in: u64,
    /// Frames queued for sending.
    pub frames_queued: u64,
    /// Body bytes queued, as sent.
    pub wire_body_out: u64,
    /// Body bytes queued, before compression.
    pub payload_out: u64,
    /// Bytes handed to the socket.
    pub bytes_out: u64,
    /// Socket reads done by a waiting thread.
    pub reads_inline: u64,
}

impl std::ops::AddAssign for TrafficSnapshot {
    fn add_assign(&mut self, other: TrafficSnapshot) {
        self.bytes_in += other.bytes_in;
        self.frames_in += other.frames_in;
        self.wire_body_in += other.wire_body_in;
        self.payload_in += other.payload_in;
        self.frames_queued += other.frames_queued;
        self.wire_body_out += other.wire_body_out;
        self.payload_out += other.payload_out;
        self.bytes_out += other.bytes_out;
        self.reads_inline += other.reads_inline;
    }
}

impl Traffic {
    pub(super) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> TrafficSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TrafficSnapshot {
            bytes_in: load(&self.bytes_in),
            frames_in: load(&self.frames_in),
            wire_body_in: load(&self.wire_body_in),
            payload_in: load(&self.payload_in),
            frames_queued: load(&self.frames_queued),
            wire_body_out: load(&self.wire_body_out),
            payload_out: load(&self.payload_out),
            bytes_out: load(&self.bytes_out),
            reads_inline: load(&self.reads_inline),
        }
    }

    /// Adds a finished connection's counters (for a server's totals).
    pub fn absorb(&self, other: &TrafficSnapshot) {
        let add = |counter: &AtomicU64, n: u64| counter.fetch_add(n, Ordering::Relaxed);
        add(&self.bytes_in, other.bytes_in);
        add(&self.frames_in, other.frames_in);
        add(&self.wire_body_in, other.wire_body_in);
        add(&self.payload_in, other.payload_in);
        add(&self.frames_queued, other.frames_queued);
        add(&self.wire_body_out, other.wire_body_out);
        add(&self.payload_out, other.payload_out);
        add(&self.bytes_out, other.bytes_out);
        add(&self.reads_inline, other.reads_inline);
    }
}

/// A connection's statistics at one moment.
#[derive(Debug, Clone, Copy)]
pub struct ConnStats {
    /// What went through it.
    pub traffic: TrafficSnapshot,
    /// Bytes queued and not yet written.
    pub queued_bytes: usize,
    /// How long it has existed.
    pub uptime: Duration,
    /// How long the handshake took (`None`: not complete).
    pub handshake_time: Option<Duration>,
    /// The last round-trip estimate: from the handshake, then from each heartbeat
    /// (`None`: none yet).
    pub rtt: Option<Duration>,
    /// Whether heartbeats run on it.
    pub heartbeat: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("cid", &self.cid)
            .field("peer", &self.peer_addr)
            .finish()
    }
}

/// Where one end of a connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP socket address.
    Socket(SocketAddr),
    /// An in-process address, `memory:NAME` (see [`super::memory`]). `port` tells the
    /// ends of one server apart: 0 is the server's end, a client's end has its cid.
    Memory {
        /// The name after `memory:`.
        name: Arc<str>,
        /// 0 for the server's end, the cid for a client's.
        port: u64,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Socket(addr) => addr.fmt(f),
            Endpoint::Memory { name, port } => write!(f, "memory:{name} (end {port})"),
        }
    }
}

/// Addresses and handle of a socket, for [`Conn::spawn`].
#[derive(Debug, Clone)]
pub struct SocketInfo {
    /// Remote address.
    pub peer_addr: Endpoint,
    /// Local address.
    pub local_addr: Endpoint,
    /// OS handle, or -1.
    pub fd: i64,
    /// `SSLSEC_*` level of the transport.
    pub ssl_seclevel: u32,
}

impl Conn {
    /// Starts a connection over the split halves of a stream: queues the Connected
    /// event, runs the role's start actions and spawns the reader and writer tasks on
    /// the current runtime.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spawn<R, W>(
        cid: u64,
        socket: SocketInfo,
        reader: R,
        writer: W,
        direct: Option<SharedTcp>,
        settings: Arc<Settings>,
        inbox: Arc<Inbox>,
        role: Arc<dyn Role>,
    ) -> Arc<Conn>
    where
        R: super::tasks::ReadSource,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let conn = Arc::new(Conn {
            cid,
            peer_addr: socket.peer_addr,
            local_addr: socket.local_addr,
            fd: socket.fd,
            inbox,
            role,
            state: AtomicU32::new(state::INIT),
            conntype: Mutex::new(CONNTYPE_NOTSET.to_owned()),
            ssl_seclevel: AtomicU32::new(socket.ssl_seclevel),
            closing: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            input_rejected: AtomicBool::new(false),
            init_pending: AtomicBool::new(false),
            init_done: Notify::new(),
            close_reason: Mutex::new(None),
            intended_reason: Mutex::new(None),
            cancel: CancellationToken::new(),
            outbox: Outbox::default(),
            out_bytes: AtomicUsize::new(0),
            write_progress: Notify::new(),
            undelivered: AtomicUsize::new(0),
            inbox_bytes: AtomicUsize::new(0),
            inbox_drained: Notify::new(),
            tasks_alive: AtomicU8::new(2),
            traffic: Traffic::default(),
            started: Instant::now(),
            last_input_us: AtomicU64::new(0),
            handshake_us: AtomicU64::new(UNKNOWN),
            rtt_us: AtomicU64::new(UNKNOWN),
            probes: Mutex::new(Probes::default()),
            heartbeat_on: AtomicBool::new(false),
            last_send_us: AtomicU64::new(0),
            shared_reader: direct
                .as_ref()
                .map(|tcp| tasks::SharedReader::new(tcp.clone(), &settings)),
            send_lock: Mutex::new(direct),
            settings,
        });
        conn.inbox.push(Event::Connected(conn.clone()));
        // No writer task until something is queued (see `outbox`): replies and
        // handshake packets are mostly written directly by their senders.
        let parked = conn.outbox.park(Box::new(writer));
        debug_assert!(parked.is_none(), "a new outbox held items");
        let start = conn.role.start(&conn);
        conn.apply(start);
        if conn.shared_reader.is_some() {
            // A plain TCP socket is read through the shared reader (`reader` is another
            // handle of the same socket and goes unused).
            drop(reader);
            conn.inbox.add_direct_reader(&conn);
            tokio::spawn(tasks::read_loop_tcp(conn.clone()));
        } else {
            tokio::spawn(tasks::read_loop(conn.clone(), reader));
        }
        if let Some(timeout) = conn.settings.handshake_timeout {
            timers::schedule(
                &conn,
                conn.started + timeout,
                Timer::HandshakeDeadline { timeout },
            );
        }
        conn
    }

    // --- state seen by Python -----------------------------------------------------

    /// The state as Python sees it: the last state set, except that a connection that
    /// is over reads as closed once none of its events wait to be dispatched.
    pub fn visible_state(&self) -> u32 {
        if self.finished.load(Ordering::SeqCst)
            && self.undelivered.load(Ordering::SeqCst) == 0
            && !self.inbox.is_dispatching()
        {
            state::CLOSED
        } else {
            self.state.load(Ordering::SeqCst)
        }
    }

    /// The last state set.
    pub fn state(&self) -> u32 {
        self.state.load(Ordering::SeqCst)
    }

    /// Sets the state (from the handshake rules or from Python).
    pub fn set_state(self: &Arc<Self>, value: u32) {
        self.state.store(value, Ordering::SeqCst);
        self.role.status_changed(self);
    }

    /// The connection type.
    pub fn conntype(&self) -> String {
        self.conntype.lock_anyway().clone()
    }

    /// Sets the connection type.
    pub fn set_conntype(&self, value: String) {
        *self.conntype.lock_anyway() = value;
    }

    /// The `SSLSEC_*` level.
    pub fn ssl_seclevel(&self) -> u32 {
        self.ssl_seclevel.load(Ordering::SeqCst)
    }

    /// Whether a close has started (nothing more can be sent).
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Whether the connection is over (its Closed event is queued).
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// Why the connection ended (`None` while it is open, or if no reason was given).
    pub fn close_reason(&self) -> Option<String> {
        self.close_reason.lock_anyway().clone()
    }

    /// Bytes queued for sending and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.out_bytes.load(Ordering::SeqCst)
    }

    /// Waits until at most `limit` bytes are queued, or the connection is closing
    /// (nothing more can be sent then). For senders that wait instead of queueing
    /// without bound (the asyncio API).
    pub async fn wait_queue_at_most(&self, limit: usize) {
        loop {
            let progress = self.write_progress.notified();
            tokio::pin!(progress);
            // Registered before the check, so a write finishing in between still wakes us.
            progress.as_mut().enable();
            if self.queued_bytes() <= limit || self.is_closing() {
                return;
            }
            progress.await;
        }
    }

    /// What went through the connection so far.
    pub fn traffic(&self) -> TrafficSnapshot {
        self.traffic.snapshot()
    }

    /// Statistics now.
    pub fn stats(&self) -> ConnStats {
        let micros = |field: &AtomicU64| match field.load(Ordering::Relaxed) {
            UNKNOWN => None,
            us => Some(Duration::from_micros(us)),
        };
        ConnStats {
            traffic: self.traffic.snapshot(),
            queued_bytes: self.queued_bytes(),
            uptime: self.started.elapsed(),
            handshake_time: micros(&self.handshake_us),
            rtt: micros(&self.rtt_us),
            heartbeat: self.heartbeat_on.load(Ordering::Relaxed),
        }
    }

    fn micros_since_start(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(UNKNOWN - 1)
    }

    /// Notes that input arrived now (for heartbeat timeouts).
    pub(super) fn note_input(&self) {
        self.last_input_us
            .store(self.micros_since_start(), Ordering::Relaxed);
    }

    /// How long ago input last arrived (or the connection started).
    pub(super) fn silence(&self) -> Duration {
        let last = Duration::from_micros(self.last_input_us.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    fn probes(&self) -> MutexGuard<'_, Probes> {
        self.probes.lock_anyway()
    }

    fn set_rtt(&self, sent: Instant) {
        let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(UNKNOWN - 1);
        self.rtt_us.store(us, Ordering::Relaxed);
    }

    /// The peer's shared settings.
    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    // --- sending --------------------------------------------------------------------

    /// Queues a complete frame whose body was `payload_len` bytes before compression
    /// (for the statistics). Returns false if the connection is closing.
    ///
    /// With nothing queued (and nothing being written), a plain TCP frame is written
    /// directly from the calling thread, as far as the socket takes it without
    /// waiting; only what remains goes through the writer task.
    pub fn queue_frame(self: &Arc<Self>, mut frame: Bytes, payload_len: usize) -> bool {
        let direct = self.send_lock.lock_anyway();
        if self.is_closing() {
            return false;
        }
        let full_len = frame.len();
        let now = self.micros_since_start();
        let previous = self.last_send_us.swap(now, Ordering::Relaxed);
        // Back-to-back sends (a stream) go through the writer task, which batches them
        // into few large writes; a send after a pause (a request, a reply) is written
        // at once. `out_bytes` counts bytes until they are written, so zero also means
        // that the writer task is idle.
        let streaming = now.saturating_sub(previous) < STREAMING_GAP_US;
        if let Some(direct) = direct
            .as_ref()
            .filter(|_| !streaming && self.queued_bytes() == 0)
        {
            // An error is left for the writer task to meet and report.
            let written = direct.try_write_now(&frame).unwrap_or(0);
            Traffic::add(&self.traffic.bytes_out, written);
            if written == full_len {
                self.count_queued(full_len, payload_len);
                return true;
            }
            frame = frame.slice(written..);
        }
        let len = frame.len();
        let queued = self.out_bytes.fetch_add(len, Ordering::SeqCst);
        if queued > 0 && queued + len > self.settings.write_queue_limit {
            // The peer is not reading what we send: waiting for it would let memory
            // grow without bound, and a close packet could not get through either.
            self.out_bytes.fetch_sub(len, Ordering::SeqCst);
            self.log_end(
                LogLevel::Warning,
                "dropping",
                format_args!("it does not read ({queued} bytes waiting)"),
            );
            self.abort(Some(reason::WRITE_QUEUE_FULL.to_owned()));
            return false;
        }
        if !self.push_outbound(Outbound::Frame(frame)) {
            self.out_bytes.fetch_sub(len, Ordering::SeqCst);
            return false;
        }
        self.count_queued(full_len, payload_len);
        true
    }

    /// Queues `item` for the writer, starting a writer task if the last one parked;
    /// false if the writer has ended.
    fn push_outbound(self: &Arc<Self>, item: Outbound) -> bool {
        match self.outbox.push(item) {
            Pushed::Refused => false,
            Pushed::Queued => true,
            Pushed::StartWriter(writer) => {
                self.start_writer(writer);
                true
            }
        }
    }

    fn start_writer(self: &Arc<Self>, writer: StreamWriter) {
        super::runtime::runtime().spawn(tasks::write_loop(self.clone(), writer));
    }

    /// The reader task has ended (and cancelled the connection): a parked writer is
    /// started so that it ends too, as a running one does.
    pub(super) fn reader_ended(self: &Arc<Self>) {
        if let Some(writer) = self.outbox.unpark() {
            self.start_writer(writer);
        }
        self.task_ended();
    }

    fn count_queued(&self, frame_len: usize, payload_len: usize) {
        Traffic::add(&self.traffic.frames_queued, 1);
        Traffic::add(
            &self.traffic.wire_body_out,
            frame_len.saturating_sub(packet::FRAME_OVERHEAD),
        );
        Traffic::add(&self.traffic.payload_out, payload_len);
    }

    /// Sends an internal packet built by the core and reports it to Python.
    fn send_internal(self: &Arc<Self>, packet_id: u32, body: &Value) {
        if packet_id == pid::HELLO || packet_id == pid::SETTYPE {
            self.probes().handshake = Some(Instant::now());
        }
        if let Some((frame, body)) = self.queue_core_packet(packet_id, body) {
            self.inbox.push(Event::Sent {
                conn: self.clone(),
                pid: packet_id,
                body: Bytes::from(body),
                frame,
            });
        }
    }

    /// Encodes and queues a packet built by the core; its frame and msgpack body if it
    /// was queued.
    fn queue_core_packet(
        self: &Arc<Self>,
        packet_id: u32,
        body: &Value,
    ) -> Option<(Bytes, Vec<u8>)> {
        let body = body.to_bytes();
        let mut out = Vec::with_capacity(body.len() + packet::FRAME_OVERHEAD);
        // Cannot fail: the core's bodies are far below 4 GiB.
        packet::encode_packet(packet_id, &body, &self.settings.compression, &mut out).ok()?;
        let frame = Bytes::from(out);
        self.queue_frame(frame.clone(), body.len())
            .then_some((frame, body))
    }

    // --- closing --------------------------------------------------------------------

    /// Closes gracefully: everything queued so far is sent, then a close packet with
    /// `reason`; then the connection is reported closed with that reason. If that takes
    /// longer than `close_timeout` (a peer that does not read), the connection is
    /// aborted instead.
    pub fn close(self: &Arc<Self>, reason: Option<String>) {
        // Under the send lock: once the close is queued, no frame may be written
        // directly any more (it could land inside the close packet).
        let order = self.send_lock.lock_anyway();
        if self.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        *self.intended_reason.lock_anyway() = Some(reason.clone());
        let queued = self.push_outbound(Outbound::Close(reason.clone()));
        drop(order);
        self.write_progress.notify_waiters();
        if !queued {
            self.finish(reason);
            return;
        }
        let conn = self.clone();
        let deadline = self.settings.close_timeout;
        super::runtime::runtime().spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(deadline) => conn.abort(reason),
                () = conn.cancel.cancelled() => {}
            }
        });
    }

    /// The peer sent a close packet: reported closed with its reason now; the socket is
    /// drained until the peer hangs up, for at most [`PEER_CLOSE_GRACE`].
    fn peer_closed(self: &Arc<Self>, reason: Option<String>) {
        self.finish(reason);
        let conn = self.clone();
        super::runtime::runtime().spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(PEER_CLOSE_GRACE) => conn.cancel.cancel(),
                () = conn.cancel.cancelled() => {}
            }
        });
    }

    /// Why the connection ended when the peer hung up without a close packet.
    pub(super) fn hangup_reason(&self) -> Option<String> {
        self.role.hangup_reason()
    }

    /// Ends the connection at once, without a close packet, reporting `reason`.
    pub fn abort(self: &Arc<Self>, reason: Option<String>) {
        self.finish(reason);
        self.cancel.cancel();
    }

    /// Reports the connection closed (once) and stops accepting input from it.
    pub(super) fn finish(self: &Arc<Self>, reason: Option<String>) {
        if self.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        let intended = self.intended_reason.lock_anyway().clone();
        let reason = intended.unwrap_or(reason);
        self.closing.store(true, Ordering::SeqCst);
        self.write_progress.notify_waiters();
        self.close_reason.lock_anyway().clone_from(&reason);
        self.inbox.push(Event::Closed {
            conn: self.clone(),
            reason,
        });
        self.init_done.notify_waiters();
        self.role.status_changed(self);
    }

    /// Refuses the rest of this connection's input because a packet body turned out to
    /// be invalid when Python decoded it; closes with `reason`.
    pub fn reject_input(self: &Arc<Self>, reason: String) {
        self.input_rejected.store(true, Ordering::SeqCst);
        self.close(Some(reason));
    }

    /// Whether [`Conn::reject_input`] was called: queued packets must be dropped.
    pub fn input_rejected(&self) -> bool {
        self.input_rejected.load(Ordering::SeqCst)
    }

    /// Closes the connection because its peer broke the protocol.
    pub(super) fn protocol_error(self: &Arc<Self>, err: &ProtocolError) {
        self.log_end(LogLevel::Warning, "closing", err);
        self.close(Some(format!("{}: {err}", reason::PROTOCOL_ERROR)));
    }

    /// Tells the log why the connection ends: "`{what}` connection `cid` from `addr`:
    /// `why`".
    fn log_end(self: &Arc<Self>, level: LogLevel, what: &str, why: impl std::fmt::Display) {
        self.inbox.push(Event::Log {
            conn: self.clone(),
            level,
            message: format!(
                "{what} connection {} from {}: {why}",
                self.cid, self.peer_addr
            ),
        });
    }

    // --- connection types whose init runs in Python ---------------------------------

    /// Python finished running a connection type's `init`: held internal packets may
    /// be processed now.
    pub fn init_done(&self) {
        self.init_pending.store(false, Ordering::SeqCst);
        self.init_done.notify_waiters();
    }

    pub(super) async fn wait_for_init(&self) {
        loop {
            let notified = self.init_done.notified();
            if !self.init_pending.load(Ordering::SeqCst) || self.is_finished() {
                return;
            }
            tokio::select! {
                () = notified => {}
                () = self.cancel.cancelled() => return,
            }
        }
    }

    // --- actions of the handshake rules ---------------------------------------------

    /// Carries out actions returned by the handshake rules (or requested by Python).
    pub fn apply(self: &Arc<Self>, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { pid, body } => self.send_internal(pid, &body),
                Action::SetState(value) => self.set_state(value),
                Action::SetConntype(name) => self.set_conntype(name),
                Action::HandshakeComplete => {
                    self.handshake_us
                        .store(self.micros_since_start(), Ordering::Relaxed);
                    self.inbox.push(Event::HandshakeComplete(self.clone()));
                    self.role.status_changed(self);
                }
                Action::DelegateInit(conntype) => {
                    self.init_pending.store(true, Ordering::SeqCst);
                    self.inbox.push(Event::DelegateInit {
                        conn: self.clone(),
                        conntype,
                    });
                }
                Action::AdoptTable(table) => self.role.adopt_table(table),
                Action::Close(reason) => self.close(Some(reason)),
                Action::PeerClosed(reason) => self.peer_closed(reason),
                Action::StartHeartbeat => self.start_heartbeat(),
            }
        }
    }

    // --- inbox accounting (called by the inbox) -------------------------------------

    pub(crate) fn note_event_queued(&self, event: &Event) {
        self.undelivered.fetch_add(1, Ordering::SeqCst);
        if let Event::Packet { body, .. } = event {
            self.inbox_bytes.fetch_add(body.len(), Ordering::SeqCst);
        }
    }

    pub(crate) fn note_event_taken(&self, event: &Event) {
        self.undelivered.fetch_sub(1, Ordering::SeqCst);
        if let Event::Packet { body, .. } = event {
            let before = self.inbox_bytes.fetch_sub(body.len(), Ordering::SeqCst);
            if before > self.settings.inbox_limit
                && before - body.len() <= self.settings.inbox_limit
            {
                self.inbox_drained.notify_waiters();
            }
        }
    }

    pub(super) async fn wait_for_inbox_room(&self) {
        loop {
            let notified = self.inbox_drained.notified();
            if self.inbox_bytes.load(Ordering::SeqCst) <= self.settings.inbox_limit {
                return;
            }
            tokio::select! {
                () = notified => {}
                () = self.cancel.cancelled() => return,
            }
        }
    }

    // --- receiving ------------------------------------------------------------------

    /// Handles one received frame now: app packets go to the inbox, internal ones
    /// through the handshake rules first. Gives the frame back, untouched, if it is an
    /// internal packet that must wait for a connection type's `init` in Python (see
    /// [`Conn::wait_for_init`]); the reader hands it back once that is done.
    pub(super) fn handle_frame_now(
        self: &Arc<Self>,
        frame: Frame,
        read_limits: ReadLimits,
    ) -> Result<Option<Frame>, ProtocolError> {
        let packet_id = frame.header.pid;
        let internal = packet_id < INTERNAL_ID_LIMIT;
        if internal && packet_id != pid::CLOSE {
            if self.init_pending.load(Ordering::SeqCst) && !self.is_finished() {
                return Ok(Some(frame));
            }
            if self.is_finished() {
                return Ok(None);
            }
        }
        let body = packet::open_body(&frame, &self.settings.limits)?;
        Traffic::add(&self.traffic.wire_body_in, frame.body.len());
        Traffic::add(&self.traffic.payload_in, body.len());
        let flags = frame.header.flags.bits();
        if !internal {
            self.inbox.push(Event::Packet {
                conn: self.clone(),
                pid: packet_id,
                flags,
                body,
            });
            return Ok(None);
        }
        let msg = Value::decode(&body, read_limits)?;
        if packet_id == pid::HEARTBEAT {
            // Heartbeats stay in the core: the registry does not know them.
            self.heartbeat_received(&msg);
            return Ok(None);
        }
        if let Some(sent) = self.probes().handshake.take() {
            self.set_rtt(sent);
        }
        let actions = self.role.internal_packet(self, packet_id, &msg);
        // The packet itself first (on_receive), then what it caused (on_close, ...).
        self.inbox.push(Event::Packet {
            conn: self.clone(),
            pid: packet_id,
            flags,
            body,
        });
        self.apply(actions);
        Ok(None)
    }

    /// Handles a frame that [`Conn::handle_frame_now`] gave back, once the connection
    /// type's `init` is done (dropped if the connection ends first).
    pub(super) async fn handle_frame_after_init(
        self: &Arc<Self>,
        mut frame: Frame,
        read_limits: ReadLimits,
    ) -> Result<(), ProtocolError> {
        loop {
            self.wait_for_init().await;
            if self.cancel.is_cancelled() || self.is_finished() {
                return Ok(());
            }
            match self.handle_frame_now(frame, read_limits)? {
                None => return Ok(()),
                Some(again) => frame = again,
            }
        }
    }

    /// Queues a packet for Python as if it had arrived on this connection (for the
    /// `receive_packet` compatibility methods). `raw` is a header and body, without the
    /// length prefix; internal packets are not run through the handshake rules.
    pub fn inject(self: &Arc<Self>, raw: &[u8]) -> Result<(), ProtocolError> {
        if raw.len() < HEADER_LEN {
            return Err(FrameError::TooShort {
                len: raw.len() as u32,
            }
            .into());
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&raw[..HEADER_LEN]);
        let frame = Frame {
            header: Header::decode(&header),
            body: Bytes::copy_from_slice(&raw[HEADER_LEN..]),
        };
        let body = packet::open_body(&frame, &self.settings.limits)?;
        self.inbox.push(Event::Packet {
            conn: self.clone(),
            pid: frame.header.pid,
            flags: frame.header.flags.bits(),
            body,
        });
        Ok(())
    }

    // --- heartbeats ---------------------------------------------------------------------

    /// Starts probing the peer every keepalive interval and closing the connection with
    /// "timeout" once nothing has arrived for the keepalive timeout.
    fn start_heartbeat(self: &Arc<Self>) {
        if self.settings.keepalive.is_none() {
            return;
        }
        if self.heartbeat_on.swap(true, Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        timers::schedule(self, now, Timer::Heartbeat { last_probe: now });
    }

    /// Does what `timer` came due for; returns the follow-up timer, if any.
    ///
    /// Heartbeats: a connection from which nothing (probe answers included) has
    /// arrived for the keepalive timeout is closed with "timeout"; otherwise the peer
    /// is probed every interval.
    pub(super) fn timer_due(self: &Arc<Self>, timer: Timer) -> Option<(Instant, Timer)> {
        if self.is_closing() || self.cancel.is_cancelled() {
            return None;
        }
        match timer {
            Timer::HandshakeDeadline { timeout } => {
                if self.state() < state::ACTIVE {
                    self.log_end(
                        LogLevel::Info,
                        "closing",
                        format_args!("no handshake within {timeout:?}"),
                    );
                    self.close(Some(reason::HANDSHAKE_TIMEOUT.to_owned()));
                }
                None
            }
            Timer::Heartbeat { mut last_probe } => {
                let keepalive = self.settings.keepalive?;
                let silence = self.silence();
                if silence >= keepalive.timeout {
                    self.log_end(
                        LogLevel::Info,
                        "closing",
                        format_args!("nothing received for {silence:?}"),
                    );
                    self.close(Some(reason::TIMEOUT.to_owned()));
                    return None;
                }
                let now = Instant::now();
                if now.duration_since(last_probe) >= keepalive.interval {
                    last_probe = now;
                    let seq = {
                        let mut probes = self.probes();
                        let seq = probes.next_heartbeat;
                        probes.next_heartbeat += 1;
                        probes.heartbeat = Some((seq, last_probe));
                        seq
                    };
                    self.send_heartbeat(&Value::map([("ping", Value::UInt(seq))]));
                }
                let until_probe = (last_probe + keepalive.interval).saturating_duration_since(now);
                let wait = until_probe.min(keepalive.timeout - silence);
                Some((now + wait, Timer::Heartbeat { last_probe }))
            }
        }
    }

    /// Queues a heartbeat packet (no `on_send`: it is not the app's packet).
    fn send_heartbeat(self: &Arc<Self>, body: &Value) {
        self.queue_core_packet(pid::HEARTBEAT, body);
    }

    /// Answers a probe; times the round trip of an answer to our last probe.
    fn heartbeat_received(self: &Arc<Self>, msg: &Value) {
        if let Some(seq) = msg.get("ping") {
            if !self.is_closing() {
                self.send_heartbeat(&Value::map([("pong", seq.clone())]));
            }
        } else if let Some(seq) = msg.get("pong").and_then(Value::as_i64) {
            let mut probes = self.probes();
            if let Some((sent_seq, sent)) = probes.heartbeat {
                if i64::try_from(sent_seq) == Ok(seq) {
                    probes.heartbeat = None;
                    drop(probes);
                    self.set_rtt(sent);
                }
            }
        }
    }

    /// Reads and handles what has arrived on the socket until it is empty, from a
    /// Python thread that waits for input (the GIL released), without waiting: one
    /// thread hand-off less per received packet than going through the reader task.
    /// Returns false if it read nothing (nothing there, not plain TCP, the reader task
    /// busy with the socket, input being dropped): the reader task then sees to the
    /// input as always.
    pub fn read_inline(self: &Arc<Self>) -> bool {
        tasks::read_inline(self)
    }

    /// A thread starts or stops waiting in `poll(2)` on this connection's socket.
    pub(super) fn set_watched(&self, watching: bool) {
        if let Some(reader) = &self.shared_reader {
            reader.set_watched(watching);
        }
    }

    /// After a thread stopped watching the socket: whether the reader task let data
    /// pass to it meanwhile (which the thread then reads).
    pub(super) fn take_skipped(&self) -> bool {
        self.shared_reader
            .as_ref()
            .is_some_and(tasks::SharedReader::take_skipped)
    }

    /// Whether a thread waiting for this connection's events reads its socket itself
    /// (plain TCP, among the first connections of the process).
    pub fn reads_directly(self: &Arc<Self>) -> bool {
        self.inbox.is_direct_reader(self)
    }

    /// Whether the inbox has room for more of this connection's packets.
    pub(super) fn inbox_has_room(&self) -> bool {
        self.inbox_bytes.load(Ordering::SeqCst) <= self.settings.inbox_limit
    }

    pub(super) fn task_ended(self: &Arc<Self>) {
        self.inbox.remove_direct_reader(self);
        if let Some(reader) = &self.shared_reader {
            reader.release_socket();
        }
        // Without the tasks nothing may be written any more, and the socket must close.
        self.send_lock.lock_anyway().take();
        if self.tasks_alive.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.role.gone(self);
        }
    }
}

/// The OS handle of a socket, for Python's `fileno()` (-1 where there is none).
#[cfg(unix)]
pub(crate) fn socket_handle<T: std::os::fd::AsRawFd>(socket: &T) -> i64 {
    i64::from(socket.as_raw_fd())
}

/// The OS handle of a socket, for Python's `fileno()` (-1 where there is none).
#[cfg(not(unix))]
pub(crate) fn socket_handle<T>(_socket: &T) -> i64 {
    -1
}
