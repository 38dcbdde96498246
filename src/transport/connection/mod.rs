//! One connection's shared state ([`Conn`]): what its reader and writer tasks, its
//! peer and Python see of it, and how it starts and ends.
//!
//! `Conn` is driven, it does not run itself: its driver (`peer`, where a connected
//! stream becomes a connection) starts its reader task (`reader`), and gives it the
//! function that starts a writer task (`writer`) whenever something is queued and the
//! last writer parked. The reader turns bytes into frames, hands internal packets to
//! the peer's handshake rules ([`Role`]) and queues every packet for Python. The
//! writer drains the outbox in order, batching small frames into one write. Either
//! task ending cancels the other; the connection leaves its peer's table when both
//! have ended. Nothing here names the tasks or the threads that read its socket.
//!
//! Here: the state, statistics and carrying out the handshake rules' actions.
//! `event`: what it tells its peer's Python side, and the accounting of its events
//! in the inbox. `send`: queueing and writing frames. `receive`: handling frames,
//! connection-type `init` waits, heartbeats and timers. `close`: every way a
//! connection ends.
//!
//! Closing, from our side ([`Conn::close`]): the close packet is queued behind
//! everything already queued and flushed, and the connection is reported closed; the
//! socket then stays open, draining (and discarding) input, until the peer hangs up or
//! `linger` passes, so that the peer reads our close packet before it sees the end of
//! the stream. From the peer's side (EOF, reset): reported closed at once. The peer's
//! close packet is reported at once too, but we hang up only when the peer does or
//! [`PEER_CLOSE_GRACE`] has passed (see there). [`Conn::abort`] ends everything at
//! once without a close packet.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::budget::{Holder, MemoryBudget, Share, Tally};
use super::outbox::{Outbox, StreamWriter};
use super::settings::Settings;
use super::shared_tcp::SharedTcp;
use super::socket::{Endpoint, SocketInfo};
use super::stats::{ConnStats, Traffic, TrafficSnapshot};
use super::sync::{Cancel, Unpoisoned};
use super::timers::{self, Timer};
use crate::peer::constants::{reason, state, CONNTYPE_NOTSET};
use crate::peer::handshake::Action;
use crate::peer::heartbeat::Probes;
use crate::peer::table::PacketTable;
use crate::protocol::msgpack::Value;

/// After the peer's close packet, how long we wait for it to hang up before we do.
///
/// The original's client does not hang up after sending its close packet, and a
/// hang-up it sees before it has stopped is reported as "socketclose" instead of the
/// reason it sent. Its own server hangs up a few milliseconds later (after dispatching
/// the packet), by which time such a client has usually stopped. A peer of ours waits
/// for us to hang up (see `linger`), so between two of ours a close takes this long.
pub const PEER_CLOSE_GRACE: Duration = Duration::from_millis(100);

/// The side-specific part of a connection: the server's or the client's rules.
pub trait Role: Send + Sync + 'static {
    /// Actions when the connection starts.
    fn start(&self, conn: &Arc<Conn>) -> Vec<Action>;
    /// Actions for an internal packet (id below 64).
    fn internal_packet(&self, conn: &Arc<Conn>, packet_id: u32, msg: &Value) -> Vec<Action>;
    /// (client) The registry was synchronised: use this table from now on (None: the
    /// one in use agreed with the server's already).
    fn adopt_table(&self, _table: Option<PacketTable>) {}
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
    /// Why the connection ended, once it has.
    close_reason: Mutex<Option<String>>,
    /// The reason of a graceful close we started: whatever ends the connection after
    /// that (the peer hanging up first, the close timeout), this is what is reported.
    intended_reason: Mutex<Option<Option<String>>>,
    /// Stops both tasks.
    pub(super) cancel: Cancel,
    /// What waits for the writer task.
    pub(super) outbox: Outbox,
    /// Bytes queued in the outbox and not yet written.
    pub(super) out_bytes: AtomicUsize,
    /// Wakes every task waiting for this connection to change: queued bytes were
    /// written (asyncio senders waiting for room, [`Conn::wait_queue_at_most`]), a
    /// close started, the inbox drained below its limit (a reader waiting for room), a
    /// connection type's `init` ran in Python. One for all, to keep the connection
    /// small: each waiter checks its own condition again when woken.
    pub(super) changed: Notify,
    /// Events of this connection in the inbox, not yet taken by Python.
    undelivered: AtomicUsize,
    /// Body bytes of this connection's packets in the inbox (for back-pressure and the
    /// memory budget).
    queued_in: Tally,
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
    /// Whether the handshake deadline's timer entry starts the heartbeats when it
    /// comes due (`receive::DEADLINE_*`; see [`Conn::start_heartbeat`]).
    deadline_hand_off: AtomicU8,
    /// When the last frame was queued or written, in microseconds since `started`.
    last_send_us: AtomicU64,
    /// The socket, for writing directly from the sending thread when nothing is queued
    /// (plain TCP only; released when the tasks end, so that the socket closes then).
    /// Its lock is held while a frame is written directly or queued, and while a close
    /// is queued: a direct write must never interleave with the writer task's bytes.
    send_lock: Mutex<Option<SharedTcp>>,
    /// Starts a writer task (the driver's; see [`Conn::start`]).
    start_writer: StartWriter,
    /// The peer's memory budget, and this connection's part of it (see `budget`).
    budget: Arc<MemoryBudget>,
    pub(super) share: Share,
    /// Bytes of charged frames in the outbox and not yet written.
    queued_out: Tally,
}

/// How a connection has a writer task started when something is queued and its last
/// one parked: the driver (`peer`) passes `writer::start`, so that the state here
/// never names the tasks that run it.
pub type StartWriter = fn(Arc<Conn>, StreamWriter);

/// The value of an unset microsecond field of [`Conn`].
const UNKNOWN: u64 = u64::MAX;

mod close;
mod event;
mod receive;
mod send;

/// What [`Conn::queue_out_frame`] takes.
#[cfg(feature = "python")]
pub(crate) use crate::transport::outbox::OutFrame;
pub use event::{Event, Inbox, LogLevel};

/// Sends closer together than this (microseconds) count as a stream: they are queued
/// for the writer task to batch instead of being written one by one.
const STREAMING_GAP_US: u64 = 50;

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("cid", &self.cid)
            .field("peer", &self.peer_addr)
            .finish()
    }
}

impl Conn {
    /// The state of a new connection, whose driver then starts its reader: queues the
    /// Connected event, parks `writer` in the outbox (a writer task runs only while
    /// something is queued; see `outbox`) and runs the role's start actions. `direct`:
    /// the plain TCP socket, for senders that write directly when nothing is queued.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        cid: u64,
        socket: SocketInfo,
        writer: StreamWriter,
        start_writer: StartWriter,
        direct: Option<SharedTcp>,
        settings: Arc<Settings>,
        inbox: Arc<Inbox>,
        budget: Arc<MemoryBudget>,
        role: Arc<dyn Role>,
    ) -> Arc<Conn> {
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
            close_reason: Mutex::new(None),
            intended_reason: Mutex::new(None),
            cancel: Cancel::default(),
            outbox: Outbox::default(),
            out_bytes: AtomicUsize::new(0),
            changed: Notify::new(),
            undelivered: AtomicUsize::new(0),
            queued_in: Tally::default(),
            tasks_alive: AtomicU8::new(2),
            traffic: Traffic::default(),
            started: Instant::now(),
            last_input_us: AtomicU64::new(0),
            handshake_us: AtomicU64::new(UNKNOWN),
            rtt_us: AtomicU64::new(UNKNOWN),
            probes: Mutex::new(Probes::default()),
            heartbeat_on: AtomicBool::new(false),
            deadline_hand_off: AtomicU8::new(receive::DEADLINE_PENDING),
            last_send_us: AtomicU64::new(0),
            send_lock: Mutex::new(direct),
            start_writer,
            settings,
            budget,
            share: Share::default(),
            queued_out: Tally::default(),
        });
        conn.budget
            .register(Arc::downgrade(&conn) as std::sync::Weak<dyn Holder>);
        conn.inbox.push(Event::Connected(conn.clone()));
        // No writer task until something is queued (see `outbox`): replies and
        // handshake packets are mostly written directly by their senders.
        let parked = conn.outbox.park(writer);
        debug_assert!(parked.is_none(), "a new outbox held items");
        let start = conn.role.start(&conn);
        conn.apply(start);
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
            let progress = self.changed.notified();
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
            memory_held: self.share.held(),
        }
    }

    /// When the handshake completed, if it has.
    pub(super) fn handshake_done_at(&self) -> Option<Instant> {
        match self.handshake_us.load(Ordering::Relaxed) {
            UNKNOWN => None,
            us => Some(self.started + Duration::from_micros(us)),
        }
    }

    fn micros_since_start(&self) -> u64 {
        self.micros_at(Instant::now())
    }

    /// Microseconds from the connection's start to `at`.
    fn micros_at(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.started);
        u64::try_from(since.as_micros()).unwrap_or(UNKNOWN - 1)
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

    // --- actions of the handshake rules ---------------------------------------------

    /// Carries out actions returned by the handshake rules (or requested by Python).
    pub fn apply(self: &Arc<Self>, actions: Vec<Action>) {
        // A state set together with the end of the handshake is announced once the
        // handshake's event is queued: a `wait_for_connection` that returns can count
        // on a `process()` after it finding that event.
        let completing = actions
            .iter()
            .any(|action| matches!(action, Action::HandshakeComplete));
        for action in actions {
            match action {
                Action::Send { pid, body } => self.send_internal(pid, &body),
                Action::SetState(value) if completing => self.state.store(value, Ordering::SeqCst),
                Action::SetState(value) => self.set_state(value),
                Action::SetConntype(name) => self.set_conntype(name),
                Action::HandshakeComplete => {
                    self.handshake_us
                        .store(self.micros_since_start(), Ordering::Relaxed);
                    self.inbox.push(Event::HandshakeComplete(self.clone()));
                    self.role.status_changed(self);
                }
                Action::InitInPython(conntype) => {
                    self.init_pending.store(true, Ordering::SeqCst);
                    self.inbox.push(Event::InitInPython {
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

    // --- inbox accounting (see `event`) ---------------------------------------------

    pub(super) async fn wait_for_inbox_room(&self) {
        loop {
            let notified = self.changed.notified();
            if self.queued_in.bytes() <= self.settings.inbox_limit {
                return;
            }
            tokio::select! {
                () = notified => {}
                () = self.cancel.cancelled() => return,
            }
        }
    }

    /// Whether the inbox has room for more of this connection's packets.
    pub(super) fn inbox_has_room(&self) -> bool {
        self.queued_in.bytes() <= self.settings.inbox_limit
    }

    // --- memory (see `budget`) ---------------------------------------------------------

    /// Charges `n` bytes this connection is about to allocate, if the budget allows.
    pub(in crate::transport) fn try_charge_memory(&self, n: usize) -> bool {
        self.budget.try_charge(&self.share, n)
    }

    /// Charges `n` bytes this connection already holds.
    pub(in crate::transport) fn charge_memory(&self, n: usize) {
        self.budget.charge(&self.share, n);
    }

    /// Gives back `n` bytes this connection no longer holds.
    pub(in crate::transport) fn release_memory(&self, n: usize) {
        self.budget.release(&self.share, n);
    }

    /// A packet of `n` bytes was queued for Python; returns the bytes queued before.
    pub(super) fn queued_in_add(&self, n: usize) -> usize {
        self.budget.tally_add(&self.share, &self.queued_in, n)
    }

    /// Python took a packet of `n` bytes; returns the bytes queued before.
    pub(super) fn queued_in_sub(&self, n: usize) -> usize {
        self.budget.tally_sub(&self.share, &self.queued_in, n)
    }

    /// Charges a frame of `n` bytes queued for writing, if the budget allows.
    pub(super) fn try_queue_out(&self, n: usize) -> bool {
        self.budget.try_tally_add(&self.share, &self.queued_out, n)
    }

    /// Charges a frame of `n` bytes queued for writing, without asking.
    pub(super) fn force_queue_out(&self, n: usize) {
        self.budget.tally_add(&self.share, &self.queued_out, n);
    }

    /// `n` bytes of charged frames were written (or will never be).
    pub(in crate::transport) fn written_out(&self, n: usize) {
        if n > 0 {
            self.budget.tally_sub(&self.share, &self.queued_out, n);
        }
    }

    /// Whether the budget would let this connection take `n` more bytes now.
    pub(in crate::transport) fn memory_has_room(&self, n: usize) -> bool {
        self.budget.has_room(&self.share, n)
    }

    /// Waits until the budget would let this connection take `n` more bytes, or the
    /// connection is stopped.
    pub(in crate::transport) async fn wait_for_memory_room(&self, n: usize) {
        tokio::select! {
            () = self.budget.wait_for_room(&self.share, n) => {}
            () = self.cancel.cancelled() => {}
        }
    }

    /// `limit` once the handshake is complete; until then at most the handshake's
    /// frame limit (a handshake needs little, and a connection costs an attacker
    /// nothing). For frames and for inflated bodies alike.
    fn until_handshake(&self, limit: usize) -> usize {
        if self.handshake_us.load(Ordering::Relaxed) != UNKNOWN {
            limit
        } else {
            limit.min(self.settings.handshake_frame_len as usize)
        }
    }

    /// The largest frame accepted now.
    pub(in crate::transport) fn frame_limit(&self) -> u32 {
        let limit = self.settings.limits.max_frame_len;
        u32::try_from(self.until_handshake(limit as usize)).unwrap_or(limit)
    }

    /// The largest inflated body accepted now.
    pub(super) fn inflate_limit(&self) -> usize {
        self.until_handshake(self.settings.limits.max_inflated_len)
    }

    pub(super) fn task_ended(self: &Arc<Self>) {
        // Without the tasks nothing may be written any more, and the socket must close.
        self.send_lock.lock_anyway().take();
        if self.tasks_alive.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.role.gone(self);
        }
    }
}

/// Under lasting memory pressure the connection holding the most is dropped.
impl Holder for Conn {
    fn held(&self) -> usize {
        self.share.held()
    }

    fn evict(self: Arc<Self>, held: usize) {
        self.log_end(
            LogLevel::Warning,
            "dropping",
            format_args!("the memory budget is exhausted and it holds the most ({held} bytes)"),
        );
        self.abort(Some(reason::MEMORY_LIMIT.to_owned()));
    }
}
