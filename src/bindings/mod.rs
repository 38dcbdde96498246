//! The `peng3dnet._core` extension module: the only code that touches Python.
//!
//! * [`convert`]: msgpack <-> Python objects, identical to msgpack-python.
//! * [`codec`]: `packb`, `unpackb` and `FrameCodec` for Python callers.
//! * [`peer`]: `ServerCore`, `ClientCore` and `Connection`, the network cores that
//!   `peng3dnet.net` drives.
//! * [`errors`]: the single place where core errors become Python exceptions.
//!
//! Each file registers its own classes and functions.

mod codec;
mod convert;
mod errors;
mod peer;

use pyo3::prelude::*;
use pyo3::types::PyDict;

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

// The GIL stays in use until the core has been audited for free-threaded Python.
#[pymodule(gil_used = true)]
#[pyo3(name = "_core")]
fn peng3dnet_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(build_info, m)?)?;
    codec::register(m)?;
    peer::register(m)?;
    Ok(())
}
