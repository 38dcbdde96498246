//! The one Tokio runtime of the process.
//!
//! Built lazily by the first server bind or client connect, never at import time, so
//! that importing the package does not start threads (which would break `fork`).
//! Python threads hand work to it and wait on plain condition variables with the GIL
//! released; its worker threads never touch Python.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Environment variable that sets the number of I/O worker threads (default: 2).
pub const WORKER_THREADS_ENV: &str = "PENG3DNET_IO_THREADS";

/// The shared runtime, built on first use.
pub fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        let workers = std::env::var(WORKER_THREADS_ENV)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(2);
        Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("peng3dnet-io")
            .enable_all()
            .build()
            .expect("the Tokio runtime could not start (out of threads or file descriptors?)")
    })
}

/// Tasks alive on the runtime (connection readers, writers, timers), or `None` if the
/// runtime has not been started. For leak checks and diagnostics.
pub fn alive_tasks() -> Option<usize> {
    RUNTIME.get().map(|rt| rt.metrics().num_alive_tasks())
}

/// The runtime on which the asyncio API's awaitables complete (see
/// `bindings::aio`): one worker of its own, so that handing a result back to Python
/// (which takes the GIL) never holds up an I/O worker. Built on first use.
pub fn bridge_runtime() -> &'static Runtime {
    static BRIDGE: OnceLock<Runtime> = OnceLock::new();
    BRIDGE.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .thread_name("peng3dnet-aio")
            .enable_all()
            .build()
            .expect("the Tokio runtime of the asyncio API could not start")
    })
}
