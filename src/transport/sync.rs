//! Locks and waits as the transport uses them.
//!
//! Every critical section in the crate leaves the data it guards consistent before
//! anything in it can panic (a push, a pop, a field set), so a lock poisoned by a panic
//! elsewhere still guards good data: [`Unpoisoned`] takes such locks anyway, where a
//! plain `lock().unwrap()` would turn one panic into a panic on every later use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Taking a lock whether or not it is poisoned (see the module documentation).
pub trait Unpoisoned<T: ?Sized> {
    /// The guard of this lock.
    type Guard<'a>
    where
        Self: 'a;

    /// Takes the lock (for an `RwLock`: to write), poisoned or not.
    fn lock_anyway(&self) -> Self::Guard<'_>;
}

impl<T: ?Sized> Unpoisoned<T> for Mutex<T> {
    type Guard<'a>
        = MutexGuard<'a, T>
    where
        T: 'a;

    fn lock_anyway(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: ?Sized> Unpoisoned<T> for RwLock<T> {
    type Guard<'a>
        = RwLockWriteGuard<'a, T>
    where
        T: 'a;

    fn lock_anyway(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reading an `RwLock` whether or not it is poisoned.
pub trait ReadAnyway<T: ?Sized> {
    /// Takes the lock to read, poisoned or not.
    fn read_anyway(&self) -> RwLockReadGuard<'_, T>;
}

impl<T: ?Sized> ReadAnyway<T> for RwLock<T> {
    fn read_anyway(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Waits on `condvar` until `done` holds or `deadline` passes (never, if `None`);
/// returns the guard and whether `done` held. Call without the GIL.
pub fn wait_until<'a, T>(
    condvar: &Condvar,
    mut guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
    mut done: impl FnMut(&mut T) -> bool,
) -> (MutexGuard<'a, T>, bool) {
    loop {
        if done(&mut guard) {
            return (guard, true);
        }
        guard = match deadline {
            None => condvar.wait(guard).unwrap_or_else(|p| p.into_inner()),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return (guard, false);
                }
                condvar
                    .wait_timeout(guard, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
        };
    }
}

/// The deadline `timeout` from now (`None`: no deadline).
pub fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

/// Where one task that polls (instead of awaiting a `Notify`) leaves its waker. A
/// `Notified` future is ~80 bytes inside the task that waits, for as long as it waits;
/// this slot is 24 bytes, once, in what the task waits on.
#[derive(Default)]
pub struct WakerSlot(Mutex<Option<Waker>>);

impl WakerSlot {
    /// Leaves the waker of `cx` here (replacing an earlier one). Check the condition
    /// waited for after this, so that a change just before is not missed.
    pub fn register(&self, cx: &Context<'_>) {
        let mut slot = self.0.lock_anyway();
        if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *slot = Some(cx.waker().clone());
        }
    }

    /// Wakes the task whose waker is here, if any (once: the slot empties).
    pub fn wake(&self) {
        let waker = self.0.lock_anyway().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Forgets the waker (the task stopped waiting), so that it does not keep the
    /// task's memory.
    pub fn clear(&self) {
        self.0.lock_anyway().take();
    }
}

/// A flag that tasks can await: set once by [`Cancel::cancel`], never cleared. What a
/// connection's tasks select on to stop. Held inline in the connection (a
/// `CancellationToken` allocates a tree node of its own, ~112 bytes per connection,
/// for parent/child links nothing here uses).
#[derive(Default)]
pub struct Cancel {
    cancelled: AtomicBool,
    notify: Notify,
    /// The one task that polls for the flag ([`Cancel::poll_cancelled`]): a plain TCP
    /// connection's reader task, whose idle wait must stay small.
    poller: WakerSlot,
}

impl Cancel {
    /// Sets the flag and wakes every task awaiting [`Cancel::cancelled`] or polling
    /// [`Cancel::poll_cancelled`].
    pub fn cancel(&self) {
        if !self.cancelled.swap(true, Ordering::SeqCst) {
            self.notify.notify_waiters();
            self.poller.wake();
        }
    }

    /// Ready once [`Cancel::cancel`] was called. For one task at a time (a second
    /// poller would replace the first's waker); [`Cancel::stop_polling`] when done.
    pub fn poll_cancelled(&self, cx: &Context<'_>) -> Poll<()> {
        if self.is_cancelled() {
            return Poll::Ready(());
        }
        self.poller.register(cx);
        if self.is_cancelled() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The polling task no longer waits: its waker is dropped.
    pub fn stop_polling(&self) {
        self.poller.clear();
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Completes once [`Cancel::cancel`] was called (at once if it was).
    pub async fn cancelled(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the flag is read: a cancel after the read wakes it (and
        // only a cancel notifies).
        notified.as_mut().enable();
        if !self.is_cancelled() {
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_poisoned_lock_is_still_taken() {
        let mutex = Arc::new(Mutex::new(1));
        let rw = Arc::new(RwLock::new(2));
        let (m, r) = (mutex.clone(), rw.clone());
        let _ = std::thread::spawn(move || {
            let _guards = (m.lock().unwrap(), r.write().unwrap());
            panic!("poison both");
        })
        .join();
        assert!(mutex.is_poisoned() && rw.is_poisoned());
        assert_eq!(*mutex.lock_anyway(), 1);
        assert_eq!(*rw.read_anyway(), 2);
        *rw.lock_anyway() = 3;
        assert_eq!(*rw.read_anyway(), 3);
    }

    #[test]
    fn cancel_wakes_every_waiter_and_later_ones_at_once() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cancel = Arc::new(Cancel::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let cancel = cancel.clone();
                runtime.spawn(async move { cancel.cancelled().await })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!cancel.is_cancelled());
        cancel.cancel();
        cancel.cancel();
        runtime.block_on(async {
            for waiter in waiters {
                tokio::time::timeout(Duration::from_secs(5), waiter)
                    .await
                    .expect("a waiter was not woken")
                    .unwrap();
            }
            tokio::time::timeout(Duration::from_secs(5), cancel.cancelled())
                .await
                .expect("awaiting after the cancel must end at once");
        });
        assert!(cancel.is_cancelled());
    }
}
