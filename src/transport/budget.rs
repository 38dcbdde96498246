//! The memory budget of one peer (a server with all its connections, or a client):
//! the bytes its connections hold because of what their peers do — partial frames
//! being received, bodies being inflated, packets waiting for `process()` and bytes
//! waiting to be written — counted against one limit, however many connections there
//! are.
//!
//! The rules, in the order they act:
//! * A connection asks before it allocates to read or inflate ([`MemoryBudget::try_charge`]).
//!   A connection that holds little (under [`SMALL_SHARE`]) may use the whole budget;
//!   one that holds more only up to seven eighths of it, so the last eighth stays for
//!   honest connections with small messages while large holders are refused.
//! * Refused reading waits (back-pressure: the peer's sends then wait in TCP); a
//!   refused inflate or send ends the connection that asked.
//! * What already exists is charged without asking (a decoded packet moving to the
//!   inbox, a small reply): the total may pass the limit by that much.
//! * While someone is refused or waits, a watchdog runs; if the pressure lasts longer
//!   than the grace time, it evicts the connection holding the most ([`Holder::evict`]),
//!   then waits the grace time again before the next.
//!
//! The budget knows connections only as [`Holder`]s and reports to its peer through
//! the [`Notice`] callback it is given; it names nothing above it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::sync::Unpoisoned;

/// A connection holding less than this (after a charge) may use the whole budget.
pub const SMALL_SHARE: usize = 256 * 1024;

/// After the pressure ends, freed memory is given back to the system at once and again
/// this much later.
const TRIM_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// Smallest budget accepted: below this a single read buffer would not fit.
pub const MIN_BUDGET: usize = 4 * 1024 * 1024;

/// What holds memory under the budget: a connection.
pub trait Holder: Send + Sync {
    /// Bytes it has charged now.
    fn held(&self) -> usize;
    /// It holds the most while the budget stays exhausted: it must end and give back
    /// what it holds (`held` bytes when it was chosen).
    fn evict(self: Arc<Self>, held: usize);
}

/// One holder's part of the budget: what it has charged and not released.
#[derive(Debug, Default)]
pub struct Share {
    held: AtomicUsize,
}

impl Share {
    /// Bytes charged now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// Bytes a [`Tally`] charges at a time.
pub const STEP: usize = 64 * 1024;

/// A running count of bytes of one kind that a holder keeps (its packets waiting for
/// Python, its frames waiting to be written), charged to the budget in whole
/// [`STEP`]s: one charge per step crossed instead of one per packet keeps the budget's
/// shared counter off the path of every packet. What is charged is at least the count,
/// at most two steps more while the count is not zero, and nothing once it is (a
/// concurrent add and remove may leave one packet uncharged until the next add).
#[derive(Debug, Default)]
pub struct Tally {
    bytes: AtomicUsize,
    charged: AtomicUsize,
}

impl Tally {
    /// The count now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::SeqCst)
    }
}

fn whole_steps(n: usize) -> usize {
    n.div_ceil(STEP).saturating_mul(STEP)
}

/// What the budget tells its peer (which logs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The budget is exhausted: large holders are refused, reading pauses.
    Pressure {
        /// Bytes in use.
        used: usize,
        /// The limit.
        limit: usize,
    },
    /// Nobody has been refused or waited for a while.
    Relieved {
        /// How long the pressure lasted.
        lasted: Duration,
        /// Connections evicted meanwhile.
        evicted: u64,
    },
}

/// A snapshot for statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetStats {
    /// The limit in bytes.
    pub limit: usize,
    /// Bytes in use now.
    pub used: usize,
    /// The most ever in use at once.
    pub peak: usize,
    /// Connections evicted so far.
    pub evictions: u64,
    /// Whether reading is paused or requests are refused now.
    pub pressure: bool,
}

/// Holders, for the watchdog to choose whom to evict.
#[derive(Default)]
struct Holders {
    all: Vec<Weak<dyn Holder>>,
    /// Gone holders are pruned when the list has grown to this length.
    prune_at: usize,
}

/// The budget of one peer (see the module documentation).
pub struct MemoryBudget {
    limit: AtomicUsize,
    grace_us: AtomicU64,
    used: AtomicUsize,
    peak: AtomicUsize,
    evictions: AtomicU64,
    /// Refusals since the watchdog last looked.
    refusals: AtomicU64,
    /// Readers waiting for room now.
    waiting: AtomicUsize,
    /// Signalled when memory was released while someone waits.
    room: Notify,
    holders: Mutex<Holders>,
    watchdog: AtomicBool,
    notice: OnceLock<Box<dyn Fn(Notice) + Send + Sync>>,
}

impl std::fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Readers waiting for room: counted while they wait, also when their wait is dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl MemoryBudget {
    /// A budget of `limit` bytes (at least [`MIN_BUDGET`]) whose watchdog evicts after
    /// `grace` of lasting pressure.
    pub fn new(limit: usize, grace: Duration) -> Arc<MemoryBudget> {
        let budget = Arc::new(MemoryBudget {
            limit: AtomicUsize::new(0),
            grace_us: AtomicU64::new(0),
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            room: Notify::new(),
            holders: Mutex::new(Holders::default()),
            watchdog: AtomicBool::new(false),
            notice: OnceLock::new(),
        });
        budget.configure(limit, grace);
        budget
    }

    /// Changes the limit and the grace time (for connections from now on as well as
    /// the current ones).
    pub fn configure(&self, limit: usize, grace: Duration) {
        self.limit.store(limit.max(MIN_BUDGET), Ordering::SeqCst);
        let grace_us = u64::try_from(grace.as_micros()).unwrap_or(u64::MAX);
        self.grace_us.store(grace_us, Ordering::SeqCst);
        self.room.notify_waiters();
    }

    /// Sets what receives the budget's notices (once; later calls are ignored).
    pub fn on_notice(&self, notice: Box<dyn Fn(Notice) + Send + Sync>) {
        let _ = self.notice.set(notice);
    }

    /// Registers a holder, which the watchdog may evict.
    pub fn register(&self, holder: Weak<dyn Holder>) {
        let mut holders = self.holders.lock_anyway();
        if holders.all.len() >= holders.prune_at {
            holders.all.retain(|h| h.strong_count() > 0);
            holders.prune_at = (holders.all.len() * 2).max(64);
        }
        holders.all.push(holder);
    }

    fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Whether `share` may take `n` more bytes with `used` in use.
    fn allows(&self, share: &Share, used: usize, n: usize) -> bool {
        let limit = self.limit();
        let after = used.saturating_add(n);
        after <= limit - limit / 8
            || (share.held().saturating_add(n) <= SMALL_SHARE && after <= limit)
    }

    /// Whether `share` could take `n` more bytes now.
    pub fn has_room(&self, share: &Share, n: usize) -> bool {
        self.allows(share, self.used.load(Ordering::SeqCst), n)
    }

    /// Charges `n` bytes to `share` if the rules allow; otherwise counts a refusal
    /// (starting the watchdog) and returns false.
    pub fn try_charge(self: &Arc<Self>, share: &Share, n: usize) -> bool {
        let mut used = self.used.load(Ordering::SeqCst);
        loop {
            if !self.allows(share, used, n) {
                self.refusals.fetch_add(1, Ordering::SeqCst);
                self.start_watchdog();
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + n,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(now) => used = now,
            }
        }
        share.held.fetch_add(n, Ordering::SeqCst);
        if used + n > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(used + n, Ordering::Relaxed);
        }
        true
    }

    /// Charges `n` bytes that are already allocated, without asking; the total may
    /// pass the limit (the watchdog then starts).
    pub fn charge(self: &Arc<Self>, share: &Share, n: usize) {
        if n == 0 {
            return;
        }
        share.held.fetch_add(n, Ordering::SeqCst);
        let used = self.used.fetch_add(n, Ordering::SeqCst) + n;
        if used > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(used, Ordering::Relaxed);
        }
        if used > self.limit() {
            self.start_watchdog();
        }
    }

    /// Gives back up to `n` bytes of `share` (never more than it holds).
    pub fn release(&self, share: &Share, n: usize) {
        if n == 0 {
            return;
        }
        let mut held = share.held.load(Ordering::SeqCst);
        let released = loop {
            let released = n.min(held);
            match share.held.compare_exchange_weak(
                held,
                held - released,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break released,
                Err(now) => held = now,
            }
        };
        debug_assert_eq!(released, n, "released more than was charged");
        self.used.fetch_sub(released, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.room.notify_waiters();
        }
    }

    /// Adds `n` bytes that already exist to `tally`, charging whole steps without
    /// asking; returns the count before.
    pub fn tally_add(self: &Arc<Self>, share: &Share, tally: &Tally, n: usize) -> usize {
        let before = tally.bytes.fetch_add(n, Ordering::SeqCst);
        let total = before + n;
        let mut charged = tally.charged.load(Ordering::SeqCst);
        while total > charged {
            let target = whole_steps(total);
            match tally.charged.compare_exchange_weak(
                charged,
                target,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    self.charge(share, target - charged);
                    break;
                }
                Err(now) => charged = now,
            }
        }
        before
    }

    /// Adds `n` bytes to `tally` if the budget allows the steps that takes (see
    /// [`MemoryBudget::try_charge`]); false, and nothing added, if not.
    pub fn try_tally_add(self: &Arc<Self>, share: &Share, tally: &Tally, n: usize) -> bool {
        let total = tally.bytes.fetch_add(n, Ordering::SeqCst) + n;
        let mut charged = tally.charged.load(Ordering::SeqCst);
        while total > charged {
            let target = whole_steps(total);
            if !self.try_charge(share, target - charged) {
                self.tally_sub(share, tally, n);
                return false;
            }
            match tally.charged.compare_exchange_weak(
                charged,
                target,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(now) => {
                    self.release(share, target - charged);
                    charged = now;
                }
            }
        }
        true
    }

    /// Removes `n` bytes from `tally`, giving back the steps no longer needed (all of
    /// them once the count is zero); returns the count before.
    pub fn tally_sub(&self, share: &Share, tally: &Tally, n: usize) -> usize {
        let before = tally.bytes.fetch_sub(n, Ordering::SeqCst);
        debug_assert!(before >= n, "a tally went below zero");
        let total = before.saturating_sub(n);
        let (keep, slack) = if total == 0 {
            (0, 0)
        } else {
            (whole_steps(total), STEP)
        };
        let mut charged = tally.charged.load(Ordering::SeqCst);
        while charged > keep + slack {
            match tally.charged.compare_exchange_weak(
                charged,
                keep,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    self.release(share, charged - keep);
                    break;
                }
                Err(now) => charged = now,
            }
        }
        before
    }

    /// Waits until `share` could take `n` more bytes (see [`MemoryBudget::has_room`]).
    pub async fn wait_for_room(self: &Arc<Self>, share: &Share, n: usize) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        self.start_watchdog();
        loop {
            let released = self.room.notified();
            tokio::pin!(released);
            // Registered before the check: a release in between still wakes us.
            released.as_mut().enable();
            if self.has_room(share, n) {
                return;
            }
            released.await;
        }
    }

    /// The budget now.
    pub fn stats(&self) -> BudgetStats {
        BudgetStats {
            limit: self.limit(),
            used: self.used.load(Ordering::Relaxed),
            peak: self.peak.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            pressure: self.watchdog.load(Ordering::Relaxed),
        }
    }

    fn notify(&self, notice: Notice) {
        if let Some(notify) = self.notice.get() {
            notify(notice);
        }
    }

    fn grace(&self) -> Duration {
        Duration::from_micros(self.grace_us.load(Ordering::Relaxed))
    }

    /// Starts the watchdog unless it runs.
    fn start_watchdog(self: &Arc<Self>) {
        if self.watchdog.swap(true, Ordering::SeqCst) {
            return;
        }
        self.notify(Notice::Pressure {
            used: self.used.load(Ordering::SeqCst),
            limit: self.limit(),
        });
        let budget = self.clone();
        super::runtime::runtime().spawn(async move { budget.watch().await });
    }

    /// Whether anyone was refused, waits, or the total is over the limit.
    fn pressed(&self) -> bool {
        self.refusals.swap(0, Ordering::SeqCst) > 0
            || self.waiting.load(Ordering::SeqCst) > 0
            || self.used.load(Ordering::SeqCst) > self.limit()
    }

    /// The watchdog: evicts the largest holder each time the pressure has lasted the
    /// grace time; ends after a quiet tick.
    async fn watch(self: Arc<Self>) {
        let started = Instant::now();
        let evictions_before = self.evictions.load(Ordering::Relaxed);
        let mut since = started;
        loop {
            let tick =
                (self.grace() / 4).clamp(Duration::from_millis(5), Duration::from_millis(100));
            tokio::time::sleep(tick).await;
            if !self.pressed() {
                self.watchdog.store(false, Ordering::SeqCst);
                // Pressure that came back between the check and the store restarts us.
                if self.pressed() && !self.watchdog.swap(true, Ordering::SeqCst) {
                    continue;
                }
                self.notify(Notice::Relieved {
                    lasted: started.elapsed(),
                    evicted: self.evictions.load(Ordering::Relaxed) - evictions_before,
                });
                give_back_to_the_system();
                // Connections dropped by then may still be ending (a writer task
                // dropping its queue): once more, a moment later.
                tokio::time::sleep(TRIM_AGAIN_AFTER).await;
                give_back_to_the_system();
                return;
            }
            if since.elapsed() >= self.grace() {
                self.evict_largest();
                since = Instant::now();
            }
        }
    }

    /// Evicts the holder that holds the most (nothing if nobody holds anything).
    fn evict_largest(&self) {
        let largest = {
            let holders = self.holders.lock_anyway();
            holders
                .all
                .iter()
                .filter_map(Weak::upgrade)
                .map(|holder| (holder.held(), holder))
                .max_by_key(|(held, _)| *held)
        };
        if let Some((held, holder)) = largest.filter(|(held, _)| *held > 0) {
            self.evictions.fetch_add(1, Ordering::Relaxed);
            holder.evict(held);
        }
    }
}

/// Makes the allocator give large blocks back to the system as soon as they are freed
/// (once per process, when the first peer is made).
///
/// glibc serves a block from its heaps instead of mapping it when it is smaller than
/// its mmap threshold, which rises to the size of each mapped block freed (up to 32
/// MiB). Frames and inflated bodies are such blocks: once they came from the heaps,
/// every thread's heap kept the freed ones, and a server under attack grew to twice its
/// budget and stayed there. A fixed threshold of 4 MiB maps every larger block and
/// unmaps it when freed. Fixing it also fixes the trim threshold, at 128 KiB unless
/// set: heaps were then given back and faulted in again around every 64 KiB read
/// buffer (fan-out 17% slower); at 8 MiB, each thread's heap kept up to that much
/// after an attack. 1 MiB costs neither (A/B in `benches/RESULTS.md`).
pub fn map_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes the allocator's parameters.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024);
            }
        });
    }
}

/// Returns freed heap memory to the operating system once the pressure is over
/// (glibc keeps freed blocks below its mmap threshold, which grows after large frees,
/// so the memory of evicted connections would otherwise stay in the process).
fn give_back_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn large_holders_stop_at_seven_eighths_small_ones_at_the_limit() {
        let budget = MemoryBudget::new(8 * MIB, Duration::from_secs(60));
        let (large, small) = (Share::default(), Share::default());
        assert!(budget.try_charge(&large, 7 * MIB));
        assert!(!budget.try_charge(&large, 1), "a large holder passed 7/8");
        assert!(
            budget.try_charge(&small, SMALL_SHARE),
            "a small holder was refused"
        );
        assert!(
            !budget.try_charge(&small, 1),
            "a holder grew past the small share"
        );
        budget.release(&large, 7 * MIB);
        assert!(budget.try_charge(&small, 1));
        assert_eq!(budget.stats().used, SMALL_SHARE + 1);
        assert_eq!(budget.stats().peak, 7 * MIB + SMALL_SHARE);
        budget.release(&small, SMALL_SHARE + 1);
        assert_eq!(budget.stats().used, 0);
    }

    #[test]
    fn forced_charges_pass_the_limit_and_releases_wake_waiters() {
        let budget = MemoryBudget::new(4 * MIB, Duration::from_secs(60));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (holder, waiter) = (Share::default(), Arc::new(Share::default()));
        budget.charge(&holder, 5 * MIB);
        assert_eq!(budget.stats().used, 5 * MIB);
        assert!(!budget.has_room(&waiter, 1));
        runtime.block_on(async {
            let wait = {
                let (budget, waiter) = (budget.clone(), waiter.clone());
                tokio::spawn(async move { budget.wait_for_room(&waiter, MIB).await })
            };
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert!(!wait.is_finished());
            budget.release(&holder, 3 * MIB);
            tokio::time::timeout(Duration::from_secs(5), wait)
                .await
                .expect("the waiter was not woken")
                .unwrap();
        });
        assert_eq!(budget.waiting.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_tally_charges_whole_steps_and_gives_everything_back_when_empty() {
        let budget = MemoryBudget::new(8 * MIB, Duration::from_secs(60));
        let (share, tally) = (Share::default(), Tally::default());
        for _ in 0..100 {
            budget.tally_add(&share, &tally, 100);
        }
        assert_eq!(tally.bytes(), 10_000);
        assert_eq!(budget.stats().used, STEP, "one step for 100 small packets");
        budget.tally_add(&share, &tally, STEP);
        assert_eq!(budget.stats().used, 2 * STEP);
        budget.tally_sub(&share, &tally, STEP);
        // One step of slack while packets remain: no release for each packet taken.
        assert_eq!(budget.stats().used, 2 * STEP);
        for _ in 0..100 {
            budget.tally_sub(&share, &tally, 100);
        }
        assert_eq!(
            (tally.bytes(), budget.stats().used, share.held()),
            (0, 0, 0)
        );
        // Refused: nothing added, nothing charged.
        let hog = Share::default();
        budget.charge(&hog, 8 * MIB - STEP / 2);
        assert!(!budget.try_tally_add(&share, &tally, STEP));
        assert_eq!((tally.bytes(), share.held()), (0, 0));
    }

    struct Conn {
        share: Share,
        evicted: AtomicUsize,
    }

    impl Holder for Conn {
        fn held(&self) -> usize {
            self.share.held()
        }
        fn evict(self: Arc<Self>, held: usize) {
            self.evicted.store(held, Ordering::SeqCst);
        }
    }

    #[test]
    fn lasting_pressure_evicts_the_largest_holder_and_ends_with_a_notice() {
        let budget = MemoryBudget::new(4 * MIB, Duration::from_millis(200));
        let notices = Arc::new(Mutex::new(Vec::new()));
        {
            let notices = notices.clone();
            budget.on_notice(Box::new(move |n| notices.lock().unwrap().push(n)));
        }
        let conns: Vec<Arc<Conn>> = (0..3)
            .map(|_| {
                Arc::new(Conn {
                    share: Share::default(),
                    evicted: AtomicUsize::new(0),
                })
            })
            .collect();
        for conn in &conns {
            budget.register(Arc::downgrade(conn) as Weak<dyn Holder>);
        }
        budget.charge(&conns[0].share, MIB);
        budget.charge(&conns[1].share, 3 * MIB);
        budget.charge(&conns[2].share, MIB);
        let deadline = Instant::now() + Duration::from_secs(5);
        while conns[1].evicted.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "nobody was evicted");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(conns[1].evicted.load(Ordering::SeqCst), 3 * MIB);
        budget.release(&conns[1].share, 3 * MIB);
        while budget.stats().pressure {
            assert!(Instant::now() < deadline, "the pressure did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(conns[0].evicted.load(Ordering::SeqCst), 0);
        let notices = notices.lock().unwrap();
        assert!(matches!(notices[0], Notice::Pressure { used, .. } if used == 5 * MIB));
        assert!(
            matches!(notices[1], Notice::Relieved { evicted: 1, .. }),
            "{notices:?}"
        );
        assert_eq!(budget.stats().evictions, 1);
    }
}
