//! The connections' timers (handshake deadlines and heartbeats) in one queue for the
//! whole process, served by one task while it holds entries.
//!
//! A task per connection for its timers cost a task cell and a timer of its own for
//! every connection, all the time (heartbeats are on by default); an entry here is a
//! few words. What a timer does when it fires is its owner's business (a connection:
//! `Conn::timer_due`, through [`Timed`]); this module only keeps time.
//!
//! Entries hold a weak reference: a connection that is gone is not kept for its timers,
//! and its entries are dropped when they come due.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::sync::Unpoisoned;

/// What comes due.
#[derive(Debug, Clone, Copy)]
pub(super) enum Timer {
    /// The handshake must be complete by now (`timeout` after the connection began).
    HandshakeDeadline { timeout: Duration },
    /// Time to look at the heartbeats: probe if the last probe went out an interval
    /// ago, close if nothing has arrived for the timeout.
    Heartbeat { last_probe: Instant },
}

/// What timers belong to.
pub(super) trait Timed: Send + Sync + 'static {
    /// Does what `timer` came due for; returns the follow-up timer, if any.
    fn due(self: Arc<Self>, timer: Timer) -> Option<(Instant, Timer)>;
}

struct Entry {
    due: Instant,
    /// Order of scheduling: entries due at the same instant fire in that order.
    seq: u64,
    owner: Weak<dyn Timed>,
    timer: Timer,
}

impl Entry {
    fn key(&self) -> (Instant, u64) {
        (self.due, self.seq)
    }
}

// The heap keeps the greatest on top; the earliest entry must be the greatest.
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key())
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Entry {}

#[derive(Default)]
struct Schedule {
    entries: BinaryHeap<Entry>,
    next_seq: u64,
    /// The serving task runs; it ends (and this turns false) when no entries are left.
    serving: bool,
}

#[derive(Default)]
struct TimerQueue {
    schedule: Mutex<Schedule>,
    /// Wakes the serving task when an entry due earlier than all others was added.
    earlier: Notify,
}

fn queue() -> &'static TimerQueue {
    static QUEUE: OnceLock<TimerQueue> = OnceLock::new();
    QUEUE.get_or_init(TimerQueue::default)
}

impl TimerQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.schedule.lock_anyway()
    }
}

/// Entries in the queue now (for tests and diagnosis: a connection should hold one).
pub fn queued_timers() -> usize {
    queue().lock().entries.len()
}

/// Has `timer` of `owner` come due at `due`.
pub(super) fn schedule<T: Timed>(owner: &Arc<T>, due: Instant, timer: Timer) {
    let owner: Arc<dyn Timed> = owner.clone();
    schedule_for(Arc::downgrade(&owner), due, timer);
}

fn schedule_for(owner: Weak<dyn Timed>, due: Instant, timer: Timer) {
    let queue = queue();
    let mut schedule = queue.lock();
    let seq = schedule.next_seq;
    schedule.next_seq += 1;
    let earliest = schedule.entries.peek().is_none_or(|top| due < top.due);
    schedule.entries.push(Entry {
        due,
        seq,
        owner,
        timer,
    });
    if !schedule.serving {
        schedule.serving = true;
        super::runtime::runtime().spawn(serve(queue));
    } else if earliest {
        // A permit is kept if the task is not waiting yet: it then does not sleep.
        queue.earlier.notify_one();
    }
}

/// Fires entries as they come due, until none are left.
async fn serve(queue: &'static TimerQueue) {
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        let next = {
            let mut schedule = queue.lock();
            while schedule.entries.peek().is_some_and(|top| top.due <= now) {
                due.extend(schedule.entries.pop());
            }
            match schedule.entries.peek() {
                Some(top) => Some(top.due),
                None if due.is_empty() => {
                    // Under the lock: the next `schedule` sees this and starts a task.
                    schedule.serving = false;
                    return;
                }
                None => None,
            }
        };
        if !due.is_empty() {
            // Without the lock: firing schedules the follow-ups.
            for entry in due {
                if let Some(owner) = entry.owner.upgrade() {
                    if let Some((at, timer)) = owner.due(entry.timer) {
                        schedule_for(entry.owner, at, timer);
                    }
                }
            }
            continue;
        }
        if let Some(next) = next {
            tokio::select! {
                () = tokio::time::sleep_until(next.into()) => {}
                () = queue.earlier.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nobody;

    impl Timed for Nobody {
        fn due(self: Arc<Self>, _timer: Timer) -> Option<(Instant, Timer)> {
            None
        }
    }

    #[test]
    fn the_earliest_entry_comes_first_and_ties_keep_their_order() {
        let start = Instant::now();
        let entry = |after_ms: u64, seq: u64| Entry {
            due: start + Duration::from_millis(after_ms),
            seq,
            owner: Weak::<Nobody>::new(),
            timer: Timer::HandshakeDeadline {
                timeout: Duration::ZERO,
            },
        };
        let mut heap: BinaryHeap<Entry> = [entry(30, 0), entry(10, 1), entry(20, 2), entry(10, 3)]
            .into_iter()
            .collect();
        let order: Vec<u64> = std::iter::from_fn(|| heap.pop().map(|e| e.seq)).collect();
        assert_eq!(order, [1, 3, 2, 0]);
    }
}
