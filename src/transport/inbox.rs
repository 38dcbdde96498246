//! The inbox: every event one peer's Python side must see, in the order it happened.
//!
//! Connection tasks push; the Python thread that calls `process()` takes events in
//! batches. Taking blocks on a condition variable (the caller releases the GIL first);
//! the asyncio API instead watches a wake-up socket ([`Inbox::wakeup_fd`]) from its
//! event loop, or awaits [`Inbox::ready`] where a loop cannot watch sockets, and then
//! takes without blocking.
//! Packet events are counted per connection so that a reader task can stop reading
//! while too much of its connection waits here (back-pressure reaches the sender
//! through TCP instead of growing memory).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::connection::Conn;
use super::sync::{deadline, wait_until, Unpoisoned};

/// Severity of a [`Event::Log`] record (mapped to Python `logging` levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Routine information (a connection closed because of a protocol error).
    Info,
    /// Something a peer did wrong.
    Warning,
}

/// One thing that happened on a connection.
#[derive(Debug)]
pub enum Event {
    /// A connection was established (server: accepted; client: connected).
    Connected(Arc<Conn>),
    /// A packet arrived. `body` is its msgpack bytes (already inflated).
    Packet {
        /// The connection.
        conn: Arc<Conn>,
        /// Packet id.
        pid: u32,
        /// Header flags as received.
        flags: u16,
        /// msgpack body.
        body: Bytes,
    },
    /// The core sent an internal packet (hello, handshake, ...) on its own.
    Sent {
        /// The connection.
        conn: Arc<Conn>,
        /// Packet id.
        pid: u32,
        /// msgpack body.
        body: Bytes,
        /// The complete frame as written.
        frame: Bytes,
    },
    /// The handshake completed.
    HandshakeComplete(Arc<Conn>),
    /// A connection type whose `init` lives in Python was chosen.
    DelegateInit {
        /// The connection.
        conn: Arc<Conn>,
        /// The connection type's name.
        conntype: String,
    },
    /// The connection is over; nothing more will arrive from it.
    Closed {
        /// The connection.
        conn: Arc<Conn>,
        /// Why (the peer's reason, ours, or "socketclose").
        reason: Option<String>,
    },
    /// A diagnostic about the peer rather than one connection (a refused client).
    PeerLog {
        /// Severity.
        level: LogLevel,
        /// Text.
        message: String,
    },
    /// A diagnostic for the Python `logging` module.
    Log {
        /// The connection concerned.
        conn: Arc<Conn>,
        /// Severity.
        level: LogLevel,
        /// Text.
        message: String,
    },
}

impl Event {
    /// The connection this event belongs to, if any.
    pub fn conn(&self) -> Option<&Arc<Conn>> {
        match self {
            Event::Connected(conn) | Event::HandshakeComplete(conn) => Some(conn),
            Event::Packet { conn, .. }
            | Event::Sent { conn, .. }
            | Event::DelegateInit { conn, .. }
            | Event::Closed { conn, .. }
            | Event::Log { conn, .. } => Some(conn),
            Event::PeerLog { .. } => None,
        }
    }
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Event>,
    /// Threads blocked in `take`; pushes only signal when someone waits.
    waiting: usize,
    /// Set by `interrupt`: the next (or current) `take` returns at once.
    interrupted: bool,
}

/// The event queue of one peer (a server and all its connections, or a client).
#[derive(Default)]
pub struct Inbox {
    queue: Mutex<Queue>,
    available: Condvar,
    /// Whether Python is between taking a batch and finishing its dispatch; while it
    /// is, connections whose close is in that batch do not yet read as closed.
    dispatching: AtomicBool,
    /// Set once an asyncio task waits with [`Inbox::ready`]: from then on every push
    /// also signals `ready` (threaded apps never pay for it).
    async_waiting: AtomicBool,
    /// Holds a permit when something was pushed since the last asyncio wait.
    ready: tokio::sync::Notify,
    /// The event loop's wake-up socket, once asked for ([`Inbox::wakeup_fd`]).
    wakeup: OnceLock<Wakeup>,
    /// Plain TCP connections whose sockets a waiting thread reads itself (of the
    /// process's first [`MAX_DIRECT_READERS`]; see [`Inbox::take`]).
    direct_readers: Mutex<Vec<Arc<Conn>>>,
    /// Wakes a thread that waits in `poll(2)` on those sockets when an event is pushed.
    /// Open while such a thread waits or such connections exist: a peer whose
    /// connections are over holds no descriptors, however long Python keeps it.
    poll_wakeup: Wakeup,
    /// Threads waiting in `poll(2)` now; guards opening and closing `poll_wakeup`.
    pollers: Mutex<usize>,
    /// The direct readers an event loop watches while it waits ([`Inbox::watch_sockets`]).
    loop_watched: Mutex<Vec<Arc<Conn>>>,
}

/// Plain TCP connections of the whole process whose sockets waiting threads read
/// themselves (the first ones made; see [`Inbox::add_direct_reader`]). Reading in the
/// waiting thread saves a thread hand-off per packet, which is what latency is made
/// of while the machine has CPU to spare; it also costs an I/O thread a wake-up that
/// finds nothing to do. With many connections (a server with hundreds of clients, a
/// process running a hundred clients) CPU is what runs out, and the I/O threads
/// reading and batching for everyone does better.
const MAX_DIRECT_READERS: usize = 8;

/// Connections read directly in this process now, and the most there may be.
pub fn direct_readers() -> (usize, usize) {
    (
        DIRECT_READERS_IN_PROCESS
            .load(Ordering::SeqCst)
            .min(MAX_DIRECT_READERS),
        MAX_DIRECT_READERS,
    )
}

/// Connections offered by [`Inbox::add_direct_reader`] in this process now.
static DIRECT_READERS_IN_PROCESS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// A socket pair whose read end a waiter watches: while armed, the next push writes
/// one byte to it. Waking a waiter this way costs one write from the network thread,
/// with no GIL and no thread of ours in between.
#[derive(Default)]
struct Wakeup {
    /// The pair (read end, write end) until [`Wakeup::close`].
    #[cfg(unix)]
    sockets: Mutex<
        Option<(
            std::os::unix::net::UnixStream,
            std::os::unix::net::UnixStream,
        )>,
    >,
    /// Set by the waiter just before it waits; cleared by the push that wakes it.
    armed: AtomicBool,
}

impl Wakeup {
    #[cfg(unix)]
    fn new() -> io::Result<Wakeup> {
        let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Wakeup {
            sockets: Mutex::new(Some((reader, writer))),
            armed: AtomicBool::new(false),
        })
    }

    /// Opens a new pair if there is none (the first time, or after [`Wakeup::close`]).
    #[cfg(unix)]
    fn reopen(&self) -> io::Result<()> {
        let mut sockets = self.sockets.lock_anyway();
        if sockets.is_none() {
            let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
            reader.set_nonblocking(true)?;
            writer.set_nonblocking(true)?;
            *sockets = Some((reader, writer));
        }
        Ok(())
    }

    #[cfg(not(unix))]
    fn new() -> io::Result<Wakeup> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "wake-up sockets need a Unix system",
        ))
    }

    /// The read end's descriptor, or -1 once closed.
    fn fd(&self) -> i64 {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let sockets = self.sockets.lock_anyway();
            sockets
                .as_ref()
                .map_or(-1, |(reader, _)| i64::from(reader.as_raw_fd()))
        }
        #[cfg(not(unix))]
        -1
    }

    fn close(&self) {
        self.armed.store(false, Ordering::SeqCst);
        #[cfg(unix)]
        self.sockets.lock_anyway().take();
    }

    /// Empties the read end.
    fn drain(&self) {
        #[cfg(unix)]
        {
            use std::io::Read;
            let sockets = self.sockets.lock_anyway();
            if let Some((reader, _)) = sockets.as_ref() {
                let mut sink = [0u8; 64];
                while matches!((&*reader).read(&mut sink), Ok(n) if n > 0) {}
            }
        }
    }

    /// Writes the wake-up byte if armed (and disarms).
    fn wake(&self) {
        if self.armed.load(Ordering::SeqCst) && self.armed.swap(false, Ordering::SeqCst) {
            #[cfg(unix)]
            if let Some((_, writer)) = self.sockets.lock_anyway().as_ref() {
                use std::io::Write;
                // A full socket already holds a wake-up: nothing is lost.
                let _ = (&*writer).write(&[1]);
            }
        }
    }
}

impl Inbox {
    /// A new, empty inbox.
    pub fn new() -> Arc<Inbox> {
        Arc::new(Inbox::default())
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock cannot leave the queue inconsistent (every
        // critical section is a single push or drain), so poisoning is ignored.
        self.queue.lock_anyway()
    }

    /// Appends an event.
    pub fn push(&self, event: Event) {
        if let Some(conn) = event.conn() {
            conn.note_event_queued(&event);
        }
        let mut queue = self.lock();
        queue.events.push_back(event);
        let waiting = queue.waiting > 0;
        drop(queue);
        if waiting {
            self.available.notify_one();
        }
        if self.async_waiting.load(Ordering::SeqCst) {
            self.ready.notify_one();
        }
        self.wake_waiters();
    }

    /// Wakes an event loop waiting on the armed wake-up socket, and a thread waiting
    /// in `poll(2)`.
    fn wake_waiters(&self) {
        if let Some(wakeup) = self.wakeup.get() {
            wakeup.wake();
        }
        self.poll_wakeup.wake();
    }

    /// Offers a plain TCP connection's socket for waiting threads to read (see
    /// [`Conn::read_inline`]); ignored once the process has [`MAX_DIRECT_READERS`].
    pub(super) fn add_direct_reader(&self, conn: &Arc<Conn>) {
        let mut readers = self.direct_readers.lock_anyway();
        if DIRECT_READERS_IN_PROCESS.fetch_add(1, Ordering::SeqCst) < MAX_DIRECT_READERS {
            readers.push(conn.clone());
        } else {
            DIRECT_READERS_IN_PROCESS.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Whether waiting threads read this connection's socket themselves.
    pub(super) fn is_direct_reader(&self, conn: &Arc<Conn>) -> bool {
        self.direct_readers
            .lock_anyway()
            .iter()
            .any(|other| Arc::ptr_eq(other, conn))
    }

    /// Withdraws a connection offered by [`Inbox::add_direct_reader`] (its tasks end).
    pub(super) fn remove_direct_reader(&self, conn: &Arc<Conn>) {
        let mut readers = self.direct_readers.lock_anyway();
        let before = readers.len();
        readers.retain(|other| !Arc::ptr_eq(other, conn));
        if readers.len() < before {
            DIRECT_READERS_IN_PROCESS.fetch_sub(1, Ordering::SeqCst);
        }
        let none_left = readers.is_empty();
        drop(readers);
        if none_left && *self.pollers() == 0 {
            self.poll_wakeup.close();
        }
    }

    fn pollers(&self) -> MutexGuard<'_, usize> {
        self.pollers.lock_anyway()
    }

    /// The file descriptor an event loop watches for readability to learn that events
    /// are queued (created on first call; -1 once closed). Unix only; elsewhere an
    /// error.
    pub fn wakeup_fd(&self) -> io::Result<i64> {
        if self.wakeup.get().is_none() {
            // Another thread may have won the race: its pair is kept, ours dropped.
            let _ = self.wakeup.set(Wakeup::new()?);
        }
        self.wakeup
            .get()
            .map(Wakeup::fd)
            .ok_or_else(|| io::Error::other("no wake-up socket"))
    }

    /// Closes the wake-up socket (the loop stopped watching it).
    pub fn close_wakeup(&self) {
        if let Some(wakeup) = self.wakeup.get() {
            wakeup.close();
        }
    }

    /// Arms the wake-up socket before the loop waits on it. Returns `false` (and stays
    /// unarmed) if events are already queued or an interrupt is pending: take them
    /// first instead of waiting.
    pub fn arm_wakeup(&self) -> bool {
        let Some(wakeup) = self.wakeup.get() else {
            return false;
        };
        self.arm(wakeup)
    }

    /// Arms `wakeup` unless events are queued or an interrupt is pending.
    fn arm(&self, wakeup: &Wakeup) -> bool {
        // Armed before the check: a push after the check then writes the byte.
        wakeup.armed.store(true, Ordering::SeqCst);
        let queue = self.lock();
        if !queue.events.is_empty() || queue.interrupted {
            wakeup.armed.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// For an event loop about to wait (after [`Inbox::arm_wakeup`]): marks the
    /// sockets of the direct readers as watched, so that their reader tasks leave
    /// arriving data to the loop, and returns their descriptors for the loop to watch
    /// (and to call [`Inbox::read_watched_sockets`] when one is readable).
    pub fn watch_sockets(&self) -> Vec<i64> {
        self.unwatch_sockets();
        let conns = self.direct_readers.lock_anyway().clone();
        for conn in &conns {
            conn.set_watched(true);
        }
        let fds = conns.iter().map(|conn| conn.fd).collect();
        *self.loop_watched.lock_anyway() = conns;
        fds
    }

    /// Reads and decodes what the watched sockets hold (a loop found one readable).
    /// Returns the descriptors the loop must stop watching (sockets that cannot be
    /// read this way, input being dropped or the connection over, would stay readable
    /// and keep waking the loop; their reader tasks see to them from now on) and
    /// whether events are queued now: the loop can stop waiting at once, without a
    /// round through the wake-up socket (which stays armed otherwise).
    pub fn read_watched_sockets(&self) -> (Vec<i64>, bool) {
        // Disarmed while reading: the events queued here need no wake-up byte.
        if let Some(wakeup) = self.wakeup.get() {
            wakeup.armed.store(false, Ordering::SeqCst);
        }
        let dropped = self.read_watched();
        let ready = match self.wakeup.get() {
            Some(wakeup) => !self.arm(wakeup),
            None => !self.is_empty(),
        };
        (dropped, ready)
    }

    fn read_watched(&self) -> Vec<i64> {
        let mut watched = self.loop_watched.lock_anyway();
        let mut dropped = Vec::new();
        watched.retain(|conn| {
            if conn.read_inline() {
                return true;
            }
            if conn.is_finished() || conn.input_rejected() {
                conn.set_watched(false);
                dropped.push(conn.fd);
                return false;
            }
            true
        });
        dropped
    }

    /// The loop stopped waiting: its sockets are the reader tasks' again, and whatever
    /// they left to it meanwhile is read now.
    pub fn unwatch_sockets(&self) {
        let watched = std::mem::take(&mut *self.loop_watched.lock_anyway());
        for conn in &watched {
            conn.set_watched(false);
            if conn.take_skipped() {
                conn.read_inline();
            }
        }
    }

    /// Empties the wake-up socket (the loop found it readable).
    pub fn drain_wakeup(&self) {
        if let Some(wakeup) = self.wakeup.get() {
            wakeup.drain();
        }
    }

    /// Waits (asynchronously) until an event is queued or [`Inbox::interrupt`] was
    /// called; takes nothing. The asyncio API awaits this, then takes without waiting.
    pub async fn ready(&self) {
        // Set before the check: a push after the check then leaves a permit behind.
        self.async_waiting.store(true, Ordering::SeqCst);
        loop {
            {
                let queue = self.lock();
                if !queue.events.is_empty() || queue.interrupted {
                    return;
                }
            }
            self.ready.notified().await;
        }
    }

    /// Wakes every thread blocked in [`Inbox::take`]; the next `take` returns at once
    /// even if nothing is queued.
    pub fn interrupt(&self) {
        let mut queue = self.lock();
        queue.interrupted = true;
        drop(queue);
        self.available.notify_all();
        self.ready.notify_one();
        self.wake_waiters();
    }

    /// Takes up to `max` events. With `wait`, blocks while the queue is empty, for at
    /// most `timeout` (forever if `None`) or until [`Inbox::interrupt`]. Must be called
    /// without holding the GIL.
    pub fn take(&self, max: usize, wait: bool, timeout: Option<Duration>) -> Vec<Event> {
        let deadline = deadline(timeout);
        if wait {
            self.wait_reading_sockets(deadline);
        }
        let mut queue = self.lock();
        if wait {
            queue.waiting += 1;
            queue = wait_until(&self.available, queue, deadline, |queue| {
                !queue.events.is_empty() || queue.interrupted
            })
            .0;
            queue.waiting -= 1;
        }
        queue.interrupted = false;
        let n = queue.events.len().min(max);
        let batch: Vec<Event> = queue.events.drain(..n).collect();
        drop(queue);
        if !batch.is_empty() {
            self.dispatching.store(true, Ordering::SeqCst);
        }
        for event in &batch {
            if let Some(conn) = event.conn() {
                conn.note_event_taken(event);
            }
        }
        batch
    }

    /// Waits for events the way a blocking socket would: in `poll(2)` on the sockets
    /// of the peer's plain TCP connections (and a wake-up socket for every other
    /// event), reading and decoding what arrives in this thread ([`Conn::read_inline`])
    /// instead of waiting for the reader task to hand it over: a thread wake-up less
    /// per received packet. Returns when events are queued, at `deadline`, or as soon
    /// as this way of waiting does not apply (no such connection, too many, a reader
    /// task busy with one of them); the caller then waits on the condition variable.
    #[cfg(unix)]
    fn wait_reading_sockets(&self, deadline: Option<Instant>) {
        let mut conns = self.direct_readers.lock_anyway().clone();
        // Never more than the process-wide cap; the poll array below is sized by it.
        conns.truncate(MAX_DIRECT_READERS);
        if conns.is_empty() {
            return;
        }
        let wakeup = &self.poll_wakeup;
        let wake_fd = {
            let mut pollers = self.pollers();
            if wakeup.reopen().is_err() {
                return; // out of descriptors: wait the ordinary way
            }
            *pollers += 1;
            wakeup.fd()
        };
        self.poll_reading(&mut conns, wake_fd, deadline);
        let mut pollers = self.pollers();
        *pollers -= 1;
        let no_readers = self.direct_readers.lock_anyway().is_empty();
        if *pollers == 0 && no_readers {
            wakeup.close();
        }
    }

    /// The loop of [`Inbox::wait_reading_sockets`], with the wake-up socket open.
    #[cfg(unix)]
    fn poll_reading(&self, conns: &mut Vec<Arc<Conn>>, wake_fd: i64, deadline: Option<Instant>) {
        let wakeup = &self.poll_wakeup;
        while !conns.is_empty() {
            if !self.arm(wakeup) {
                return;
            }
            let timeout_ms = match deadline {
                None => -1,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        wakeup.armed.store(false, Ordering::SeqCst);
                        return;
                    }
                    // Rounded up: poll(2) must not return before the deadline.
                    i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
                }
            };
            // On the stack: this runs once per wait, often once per packet.
            let unused = libc::pollfd {
                fd: -1,
                events: 0,
                revents: 0,
            };
            let mut all_fds = [unused; MAX_DIRECT_READERS + 1];
            let fds = &mut all_fds[..=conns.len()];
            let watched = conns
                .iter()
                .map(|conn| conn.fd)
                .chain(std::iter::repeat(wake_fd));
            for (slot, fd) in fds.iter_mut().zip(watched) {
                *slot = libc::pollfd {
                    fd: fd as libc::c_int,
                    events: libc::POLLIN,
                    revents: 0,
                };
            }
            for conn in conns.iter() {
                conn.set_watched(true);
            }
            // SAFETY: `fds` is a valid array of `fds.len()` pollfd records for the
            // duration of the call; the descriptors stay open (their connections are
            // held in `conns`, the wake-up pair by `self`).
            let ready =
                unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
            wakeup.armed.store(false, Ordering::SeqCst);
            for conn in conns.iter() {
                conn.set_watched(false);
            }
            if ready < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            if fds.last().is_some_and(|wake| wake.revents != 0) {
                wakeup.drain();
            }
            let mut index = 0;
            conns.retain(|conn| {
                let readable = fds[index].revents != 0;
                index += 1;
                // Data the reader task left to us (it may have come after poll(2)
                // returned) is read too, to the end: the task waits for new data.
                let skipped = conn.take_skipped();
                if !readable && !skipped {
                    return true;
                }
                let read = conn.read_inline();
                // A socket that cannot be read here is left to its reader task (which
                // queues what it reads and so wakes us); watching it would spin.
                read || !readable
            });
        }
    }

    #[cfg(not(unix))]
    fn wait_reading_sockets(&self, _deadline: Option<Instant>) {}

    /// Python finished dispatching the batches it took.
    pub fn dispatch_done(&self) {
        self.dispatching.store(false, Ordering::SeqCst);
    }

    /// Whether a taken batch is still being dispatched.
    pub fn is_dispatching(&self) -> bool {
        self.dispatching.load(Ordering::SeqCst)
    }

    /// Number of queued events.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
