//! Bulk work: CPU-heavy work that a peer's input makes us do (inflating large
//! compressed bodies), on threads of its own at a lower CPU priority.
//!
//! Why: a few peers sending zlib streams of hundreds of MiB can keep every I/O
//! thread inflating for seconds, and on a small machine the threads that answer
//! everybody else (the I/O threads reading small packets, the Python thread in
//! `process()`) then wait for a core. Here that work runs on `min(cores, 4)` threads
//! at niceness +10 (Linux; elsewhere at normal priority): with a core to spare it goes
//! as fast as before, and when cores are short the latency-bound threads run first.
//! The threads start at the first job and stay (idle ones block on the queue).

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

use super::sync::Unpoisoned;

type Job = Box<dyn FnOnce() + Send>;

/// How much lower than the process's own priority the bulk threads run.
#[cfg(target_os = "linux")]
const NICENESS_ADDED: libc::c_int = 10;

/// The queue of the bulk threads, started on first use.
fn queue() -> &'static Sender<Job> {
    static QUEUE: OnceLock<Sender<Job>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
        for index in 0..threads {
            let receiver = receiver.clone();
            // If no thread starts, jobs wait forever: the callers' connections then
            // end by their timeouts. (Spawning only fails when the process is out of
            // threads, where nothing else would work either.)
            let _ = std::thread::Builder::new()
                .name(format!("peng3dnet-bulk-{index}"))
                .spawn(move || work(&receiver));
        }
        sender
    })
}

fn work(receiver: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        let job = receiver.lock_anyway().recv();
        let Ok(job) = job else { return };
        // A job that panics drops its answer (its caller sees an error); the thread
        // goes on with the next one.
        let _ = panic::catch_unwind(AssertUnwindSafe(job));
    }
}

/// Runs `job` on a bulk thread and waits for its result; `None` if the job panicked.
pub(super) async fn run<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (answer, result) = oneshot::channel();
    let job: Job = Box::new(move || {
        // If the caller stopped waiting, the result is dropped here, on this thread.
        let _ = answer.send(job());
    });
    queue().send(job).ok()?;
    result.await.ok()
}

/// Lowers the calling thread's priority by [`NICENESS_ADDED`] (Linux: niceness is
/// per thread). Failing to is harmless: the work then runs at normal priority.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: plain system calls on the calling thread's own id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, (current + NICENESS_ADDED).min(19));
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_and_a_panicking_one_reports_none() {
        assert_eq!(run(|| 6 * 7).await, Some(42));
        assert_eq!(run(|| -> u8 { panic!("a bulk job panics") }).await, None);
        // The threads survive a panic.
        let names = run(|| std::thread::current().name().map(str::to_owned)).await;
        assert!(names.flatten().unwrap().starts_with("peng3dnet-bulk-"));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn bulk_threads_run_at_a_lower_priority() {
        // SAFETY: getpriority on the calling thread.
        let own = || unsafe {
            libc::getpriority(
                libc::PRIO_PROCESS,
                libc::syscall(libc::SYS_gettid) as libc::id_t,
            )
        };
        let here = own();
        let there = run(own).await.unwrap();
        assert_eq!(there, (here + NICENESS_ADDED).min(19));
    }
}
