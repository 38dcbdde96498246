//! Awaitables for the asyncio API (`peng3dnet.aio`): core futures handed to asyncio
//! through pyo3-async-runtimes.
//!
//! The futures only wait on the core's notifications (an event was queued, queued
//! bytes were written); they never run Python. They are polled on the bridge runtime
//! ([`bridge_runtime`]), whose thread also hands each result to the event loop under
//! the GIL, so the network runtime's workers never wait for the GIL. Cancelling the
//! asyncio future drops the core future.

use std::future::Future;

use pyo3::prelude::*;

use crate::transport::runtime::bridge_runtime;

/// An asyncio awaitable that completes with `None` when `wait` does. Must be called
/// from a coroutine running on the event loop.
pub(crate) fn awaitable<F>(py: Python<'_>, wait: F) -> PyResult<Bound<'_, PyAny>>
where
    F: Future<Output = ()> + Send + 'static,
{
    // Fails only when already set, which is what every call after the first finds.
    let _ = pyo3_async_runtimes::tokio::init_with_runtime(bridge_runtime());
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        wait.await;
        Ok(())
    })
}
