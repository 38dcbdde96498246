//! The `peng3dnet._core` extension module: the only code that touches Python.
//!
//! * [`convert`]: msgpack <-> Python objects, identical to msgpack-python, and the
//!   encoding of a Python message into a frame.
//! * [`codec`]: `packb`, `unpackb` and `FrameCodec` for Python callers.
//! * [`cores`]: `PeerCore`, `ServerCore` and `ClientCore`, the network cores that
//!   `peng3dnet.net` drives.
//! * [`connection`]: `Connection`, the handle of one connection.
//! * [`events`]: the event tuples Python's dispatch loop reads.
//! * [`errors`]: where the core's error types become Python exceptions.
//! * [`aio`]: awaitables for the asyncio API.
//!
//! The module function at the end of this file registers the classes, functions and
//! constants; `codec` registers its own.

mod aio;
mod codec;
mod connection;
mod convert;
mod cores;
mod errors;
mod events;
mod stats;

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A timeout given in seconds from Python: `None` or infinity means no limit.
pub(crate) fn duration(seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) if s.is_infinite() && s > 0.0 => Ok(None),
        Some(s) => Err(PyValueError::new_err(format!(
            "timeout must be a non-negative number of seconds, not {s}"
        ))),
    }
}

/// What the Rust core was built from and how, for `peng3dnet version` and bug reports.
#[pyfunction]
fn build_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let info = PyDict::new(py);
    info.set_item("version", env!("CARGO_PKG_VERSION"))?;
    info.set_item(
        "profile",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )?;
    info.set_item(
        "target",
        format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
    )?;
    info.set_item("zlib", "zlib-rs (flate2)")?;
    Ok(info)
}

/// Tasks alive on the network runtime, or `None` before the first bind or connect.
#[pyfunction]
fn runtime_tasks() -> Option<usize> {
    crate::transport::runtime::alive_tasks()
}

/// Entries in the process's timer queue (handshake deadlines and heartbeats).
#[pyfunction]
fn timer_entries() -> usize {
    crate::transport::queued_timers()
}

/// Plain TCP connections whose sockets waiting threads (or event loops) read
/// themselves now, and how many may be (the process's first ones).
#[pyfunction]
fn direct_readers() -> (usize, usize) {
    crate::transport::direct_read::direct_readers()
}

// The GIL stays in use until the core has been audited for free-threaded Python.
#[pymodule(gil_used = true)]
#[pyo3(name = "_core")]
fn peng3dnet_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(build_info, m)?)?;
    m.add_function(wrap_pyfunction!(runtime_tasks, m)?)?;
    m.add_function(wrap_pyfunction!(direct_readers, m)?)?;
    m.add_function(wrap_pyfunction!(timer_entries, m)?)?;
    codec::register(m)?;
    m.add_class::<connection::Connection>()?;
    m.add_class::<cores::PeerCore>()?;
    m.add_class::<cores::ServerCore>()?;
    m.add_class::<cores::ClientCore>()?;
    m.add_class::<events::EventBatch>()?;
    for (name, value) in [
        ("EV_CONNECTED", events::EV_CONNECTED),
        ("EV_PACKET", events::EV_PACKET),
        ("EV_SENT", events::EV_SENT),
        ("EV_HANDSHAKE_COMPLETE", events::EV_HANDSHAKE_COMPLETE),
        ("EV_INIT", events::EV_INIT),
        ("EV_CLOSED", events::EV_CLOSED),
        ("EV_LOG", events::EV_LOG),
    ] {
        m.add(name, value)?;
    }
    // The protocol's decisions that the Python side needs, owned here: ids below the
    // limit are internal (no connection type sees them); the internal packets as both
    // sides register them; the close packet's id.
    m.add("INTERNAL_ID_LIMIT", crate::protocol::INTERNAL_ID_LIMIT)?;
    m.add(
        "INTERNAL_PACKETS",
        crate::peer::constants::INTERNAL_PACKETS.to_vec(),
    )?;
    m.add("PID_CLOSE", crate::peer::constants::pid::CLOSE)?;
    Ok(())
}
