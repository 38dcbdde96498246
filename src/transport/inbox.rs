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

use super::sync::{deadline, wait_until, Unpoisoned};
use super::wakeup::Wakeup;

/// What the inbox tells an event as it is queued and taken: a connection counts its
/// events waiting here, for back-pressure.
pub trait Queued {
    /// The event was appended to the queue.
    fn queued(&self);
    /// Python took the event.
    fn taken(&self);
    /// Bytes the event carries (a packet's body), which become Python objects when it
    /// is taken: a batch stops growing at [`BATCH_WEIGHT`].
    fn weight(&self) -> usize {
        0
    }
}

/// A batch of taken events carries at most this many bytes (plus its last event): a
/// batch's bodies all become Python objects at once, outside the memory budget.
pub const BATCH_WEIGHT: usize = 1024 * 1024;

struct Queue<E> {
    events: VecDeque<E>,
    /// Threads blocked in `take`; pushes only signal when someone waits.
    waiting: usize,
    /// Set by `interrupt`: the next (or current) `take` returns at once.
    interrupted: bool,
}

/// The event queue of one peer (a server and all its connections, or a client); its
/// events are `transport::connection::Event`s.
pub struct Inbox<E> {
    queue: Mutex<Queue<E>>,
    available: Condvar,
    /// Whether Python is between taking a batch and finishing its dispatch; while it
    /// is, connections whose close is in that batch do not yet read as closed.
    dispatching: AtomicBool,
    /// Whether a take would find anything (events, or an interrupt to clear): kept
    /// with the queue under its lock, read without it by [`Inbox::has_work`] (one
    /// thread may ask hundreds of idle clients in turn).
    pending: AtomicBool,
    /// Set once an asyncio task waits with [`Inbox::ready`]: from then on every push
    /// also signals `ready` (threaded apps never pay for it).
    async_waiting: AtomicBool,
    /// Holds a permit when something was pushed since the last asyncio wait.
    ready: tokio::sync::Notify,
    /// The event loop's wake-up socket, once asked for ([`Inbox::wakeup_fd`]).
    wakeup: OnceLock<Wakeup>,
    /// Wakes a thread that waits in `poll(2)` (see `direct_read`) when an event is
    /// pushed; opened and closed by the direct readers.
    pub(super) poll_wakeup: Wakeup,
}

impl<E: Queued> Inbox<E> {
    /// A new, empty inbox.
    pub fn new() -> Arc<Inbox<E>> {
        Arc::new(Inbox {
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                waiting: 0,
                interrupted: false,
            }),
            available: Condvar::new(),
            dispatching: AtomicBool::new(false),
            pending: AtomicBool::new(false),
            async_waiting: AtomicBool::new(false),
            ready: tokio::sync::Notify::new(),
            wakeup: OnceLock::new(),
            poll_wakeup: Wakeup::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queue<E>> {
        // A panic while holding this lock cannot leave the queue inconsistent (every
        // critical section is a single push or drain), so poisoning is ignored.
        self.queue.lock_anyway()
    }

    /// Appends an event.
    pub fn push(&self, event: E) {
        event.queued();
        let mut queue = self.lock();
        queue.events.push_back(event);
        self.pending.store(true, Ordering::Release);
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
    pub(super) fn arm(&self, wakeup: &Wakeup) -> bool {
        // Armed before the check: a push after the check then writes the byte.
        wakeup.armed.store(true, Ordering::SeqCst);
        let queue = self.lock();
        if !queue.events.is_empty() || queue.interrupted {
            wakeup.armed.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Disarms the event loop's wake-up socket: the caller queues events itself and
    /// looks at the queue afterwards ([`Inbox::rearm_wakeup`]).
    pub(super) fn disarm_wakeup(&self) {
        if let Some(wakeup) = self.wakeup.get() {
            wakeup.armed.store(false, Ordering::SeqCst);
        }
    }

    /// After [`Inbox::disarm_wakeup`]: whether events are queued now; if not, the
    /// wake-up socket is armed again.
    pub(super) fn rearm_wakeup(&self) -> bool {
        match self.wakeup.get() {
            Some(wakeup) => !self.arm(wakeup),
            None => !self.is_empty(),
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
        self.pending.store(true, Ordering::Release);
        drop(queue);
        self.available.notify_all();
        self.ready.notify_one();
        self.wake_waiters();
    }

    /// Takes up to `max` events (fewer once they carry [`BATCH_WEIGHT`] bytes). With
    /// `wait`, blocks while the queue is empty, for at
    /// most `timeout` (forever if `None`) or until [`Inbox::interrupt`]. Must be called
    /// without holding the GIL.
    pub fn take(&self, max: usize, wait: bool, timeout: Option<Duration>) -> Vec<E> {
        self.take_until(max, wait, deadline(timeout))
    }

    /// [`Inbox::take`] with a deadline instead of a timeout (`None`: none).
    pub fn take_until(&self, max: usize, wait: bool, deadline: Option<Instant>) -> Vec<E> {
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
        let mut n = 0;
        let mut weight = 0;
        for event in queue.events.iter().take(max) {
            n += 1;
            weight += event.weight();
            if weight >= BATCH_WEIGHT {
                break;
            }
        }
        let batch: Vec<E> = queue.events.drain(..n).collect();
        self.pending
            .store(!queue.events.is_empty(), Ordering::Release);
        drop(queue);
        if !batch.is_empty() {
            self.dispatching.store(true, Ordering::SeqCst);
        }
        for event in &batch {
            event.taken();
        }
        batch
    }

    /// Python finished dispatching the batches it took.
    pub fn dispatch_done(&self) {
        self.dispatching.store(false, Ordering::SeqCst);
    }

    /// Whether a taken batch is still being dispatched.
    pub fn is_dispatching(&self) -> bool {
        self.dispatching.load(Ordering::SeqCst)
    }

    /// Whether a take would find anything to do: queued events, or an interrupt to
    /// clear. What a `process()` without waiting asks first.
    pub fn has_work(&self) -> bool {
        self.pending.load(Ordering::Acquire)
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
