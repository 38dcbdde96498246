//! Direct reading: a Python thread (or event loop) that waits for a peer's events
//! reads the sockets of its plain TCP connections itself, instead of waiting for their
//! reader tasks to read and hand the packets over.
//!
//! Reading in the waiting thread saves a thread hand-off per packet, which is what
//! latency is made of while the machine has CPU to spare; it also costs an I/O thread
//! a wake-up that finds nothing to do. With many connections (a server with hundreds
//! of clients, a process running a hundred clients) CPU is what runs out, and the I/O
//! threads reading and batching for everyone do better: only the process's first
//! `MAX_DIRECT_READERS` connections are read this way.
//!
//! Three parties may read such a socket: its reader task, a thread blocked in
//! [`DirectReaders::wait`] (in `poll(2)`), and an event loop that watches the socket
//! ([`DirectReaders::watch_sockets`]). Whoever holds the connection's read state
//! (`reader::TcpReader`, here a [`DirectSocket`]) reads, so frames stay in order; while a thread or loop
//! watches a socket, its reader task leaves arriving data to it, and notes that it
//! did, so that nothing stays unread when the watcher stops watching.
//!
//! The waiting thread calls [`DirectReaders::wait`] first, then takes from the inbox;
//! the inbox itself knows nothing of sockets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::inbox::{Inbox, Queued};
use super::sync::Unpoisoned;

/// How many connections of the whole process are read directly at most.
const MAX_DIRECT_READERS: usize = 8;

/// Connections offered by [`DirectReaders::add`] in this process now.
static DIRECT_READERS_IN_PROCESS: AtomicUsize = AtomicUsize::new(0);

/// Connections read directly in this process now, and the most there may be.
pub fn direct_readers() -> (usize, usize) {
    (
        DIRECT_READERS_IN_PROCESS
            .load(Ordering::SeqCst)
            .min(MAX_DIRECT_READERS),
        MAX_DIRECT_READERS,
    )
}

/// The reading side of a plain TCP connection, as a thread or event loop that reads
/// it sees it.
pub trait DirectSocket: Send + Sync {
    /// What its reads queue in the peer's inbox.
    type Event: Queued;
    /// The socket's descriptor (to wait on in `poll(2)` or in an event loop).
    fn fd(&self) -> i64;
    /// Reads and handles what the socket holds now, without waiting; false if it
    /// read nothing (nothing there, its reader task busy with it, input over).
    fn read_now(&self) -> bool;
    /// A thread or loop starts (`true`) or stops watching the socket: its reader
    /// task leaves arriving data to the watcher meanwhile.
    fn set_watched(&self, watching: bool);
    /// After watching: whether the reader task left data to the watcher since the
    /// last call (which the watcher then reads).
    fn take_skipped(&self) -> bool;
    /// Whether input is over (the connection ended, or its input is dropped): the
    /// socket may stay readable, but reading it is its reader task's business.
    fn input_over(&self) -> bool;
}

/// The connections of one peer whose sockets its waiting threads read.
pub struct DirectReaders<S: DirectSocket> {
    /// The peer's inbox: what the readers queue, and whose wake-up sockets interrupt
    /// a wait.
    inbox: Arc<Inbox<S::Event>>,
    /// Plain TCP connections offered while the process had fewer than the maximum.
    conns: Mutex<Vec<Arc<S>>>,
    /// Threads waiting in `poll(2)` now; guards opening and closing the inbox's
    /// `poll_wakeup`: it is open while a thread waits or direct readers exist, so a
    /// peer whose connections are over holds no descriptors however long Python
    /// keeps it.
    pollers: Mutex<usize>,
    /// The connections an event loop watches while it waits.
    loop_watched: Mutex<Vec<Arc<S>>>,
    /// Watched sockets the loop was told to stop watching ([`DirectReaders::
    /// read_watched_sockets`]): held until it has ([`DirectReaders::unwatch_sockets`]),
    /// so that none closes, and its descriptor is not reused, while still registered in
    /// the loop.
    loop_dropped: Mutex<Vec<Arc<S>>>,
}

impl<S: DirectSocket> DirectReaders<S> {
    /// No direct readers yet, for the peer with `inbox`.
    pub fn new(inbox: Arc<Inbox<S::Event>>) -> Arc<DirectReaders<S>> {
        Arc::new(DirectReaders {
            inbox,
            conns: Mutex::new(Vec::new()),
            pollers: Mutex::new(0),
            loop_watched: Mutex::new(Vec::new()),
            loop_dropped: Mutex::new(Vec::new()),
        })
    }

    /// Offers a plain TCP connection's socket for waiting threads to read (see
    /// [`DirectSocket::read_now`]); ignored once the process has [`MAX_DIRECT_READERS`].
    pub(super) fn add(&self, conn: &Arc<S>) {
        let mut conns = self.conns.lock_anyway();
        if DIRECT_READERS_IN_PROCESS.fetch_add(1, Ordering::SeqCst) < MAX_DIRECT_READERS {
            conns.push(conn.clone());
        } else {
            DIRECT_READERS_IN_PROCESS.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Whether waiting threads read the socket `fd` themselves.
    pub fn reads(&self, fd: i64) -> bool {
        self.conns.lock_anyway().iter().any(|conn| conn.fd() == fd)
    }

    /// Withdraws a connection offered by [`DirectReaders::add`] (its tasks end).
    pub(super) fn remove(&self, conn: &Arc<S>) {
        let mut conns = self.conns.lock_anyway();
        let before = conns.len();
        conns.retain(|other| !Arc::ptr_eq(other, conn));
        if conns.len() < before {
            DIRECT_READERS_IN_PROCESS.fetch_sub(1, Ordering::SeqCst);
        }
        let none_left = conns.is_empty();
        drop(conns);
        if none_left && *self.pollers() == 0 {
            self.inbox.poll_wakeup.close();
        }
    }

    fn pollers(&self) -> MutexGuard<'_, usize> {
        self.pollers.lock_anyway()
    }

    // --- a thread that blocks -------------------------------------------------------

    /// Waits for events the way a blocking socket would: in `poll(2)` on the sockets
    /// of the direct readers (and the inbox's wake-up socket for every other event),
    /// reading and decoding what arrives in this thread. Returns when events are
    /// queued, at `deadline`, or as soon as this way of waiting does not apply (no
    /// such connection, a reader task busy with one of them); the caller then takes
    /// from the inbox, waiting there for what is left of the time.
    #[cfg(unix)]
    pub fn wait(&self, deadline: Option<Instant>) {
        let mut conns = self.conns.lock_anyway().clone();
        // Never more than the process-wide cap; the poll array below is sized by it.
        conns.truncate(MAX_DIRECT_READERS);
        if conns.is_empty() {
            return;
        }
        let wakeup = &self.inbox.poll_wakeup;
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
        let no_readers = self.conns.lock_anyway().is_empty();
        if *pollers == 0 && no_readers {
            wakeup.close();
        }
    }

    /// Elsewhere threads wait on the inbox alone.
    #[cfg(not(unix))]
    pub fn wait(&self, _deadline: Option<Instant>) {}

    /// The loop of [`DirectReaders::wait`], with the wake-up socket open.
    #[cfg(unix)]
    fn poll_reading(&self, conns: &mut Vec<Arc<S>>, wake_fd: i64, deadline: Option<Instant>) {
        let wakeup = &self.inbox.poll_wakeup;
        while !conns.is_empty() {
            if !self.inbox.arm(wakeup) {
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
                .map(|conn| conn.fd())
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
            // held in `conns`, the wake-up pair by the inbox).
            let ready =
                unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
            wakeup.armed.store(false, Ordering::SeqCst);
            if ready < 0 {
                for conn in conns.iter() {
                    conn.set_watched(false);
                }
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
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
                // Read while still watched: the reader task, woken by the same data,
                // leaves it to us instead of waiting for the read state we hold.
                let read = readable && conn.read_now();
                conn.set_watched(false);
                // Data the reader task left to us (it may have come after poll(2)
                // returned, or while we read) is read too, to the end: the task waits
                // for new data.
                if conn.take_skipped() {
                    conn.read_now();
                }
                // A socket that cannot be read here is left to its reader task (which
                // queues what it reads and so wakes us); watching it would spin.
                read || !readable
            });
        }
    }

    // --- an event loop --------------------------------------------------------------

    /// For an event loop about to wait (after [`Inbox::arm_wakeup`]): marks the
    /// sockets of the direct readers as watched, so that their reader tasks leave
    /// arriving data to the loop, and returns their descriptors for the loop to watch
    /// (and to call [`DirectReaders::read_watched_sockets`] when one is readable).
    pub fn watch_sockets(&self) -> Vec<i64> {
        self.unwatch_sockets();
        let conns = self.conns.lock_anyway().clone();
        for conn in &conns {
            conn.set_watched(true);
        }
        let fds = conns.iter().map(|conn| conn.fd()).collect();
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
        self.inbox.disarm_wakeup();
        let dropped = self.read_watched();
        (dropped, self.inbox.rearm_wakeup())
    }

    fn read_watched(&self) -> Vec<i64> {
        let mut watched = self.loop_watched.lock_anyway();
        // Allocates only when a socket is dropped (this runs for every readable socket).
        let mut dropped = Vec::new();
        watched.retain(|conn| {
            if conn.read_now() || !conn.input_over() {
                return true;
            }
            conn.set_watched(false);
            dropped.push(conn.clone());
            false
        });
        drop(watched);
        let fds = dropped.iter().map(|conn| conn.fd()).collect();
        self.loop_dropped.lock_anyway().append(&mut dropped);
        fds
    }

    /// The loop stopped waiting: its sockets are the reader tasks' again, and whatever
    /// they left to it meanwhile is read now.
    pub fn unwatch_sockets(&self) {
        // The loop has removed every socket it watched by now: dropped ones may close.
        self.loop_dropped.lock_anyway().clear();
        let watched = std::mem::take(&mut *self.loop_watched.lock_anyway());
        for conn in &watched {
            conn.set_watched(false);
            if conn.take_skipped() {
                conn.read_now();
            }
        }
    }
}
