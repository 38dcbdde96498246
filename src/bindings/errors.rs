//! Turning the core's error types into Python exceptions. (Arguments that Python
//! passes wrongly raise `ValueError`/`TypeError` where they are read.)
//!
//! The exception classes themselves are defined once, in Python
//! (`peng3dnet.errors`, and msgpack's own for the msgpack functions), so that
//! `except peng3dnet.errors.X` and pickling behave exactly as in the original
//! library. This module looks them up once and raises them.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::protocol::msgpack::DecodeError;
use crate::protocol::ProtocolError;
use crate::transport::tls::{TlsHandshakeError, TlsSetupError};

static PROTOCOL_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TLS_CONFIG_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TLS_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static MSGPACK_FORMAT_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static MSGPACK_STACK_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// An exception of the class `module.name`, falling back to `ValueError` if the class
/// cannot be imported (it always can in an installed package).
fn raise_class(
    py: Python<'_>,
    cell: &PyOnceLock<Py<PyType>>,
    module: &str,
    name: &str,
    message: String,
) -> PyErr {
    match cell.import(py, module, name) {
        Ok(class) => PyErr::from_type(class.clone(), message),
        Err(_) => PyValueError::new_err(message),
    }
}

/// `peng3dnet.errors.ProtocolError` with the text of `err`.
pub(crate) fn protocol_error(py: Python<'_>, err: &ProtocolError) -> PyErr {
    protocol_error_text(py, err.to_string())
}

/// `peng3dnet.errors.ProtocolError` with the given message.
pub(crate) fn protocol_error_text(py: Python<'_>, message: String) -> PyErr {
    raise_class(
        py,
        &PROTOCOL_ERROR,
        "peng3dnet.errors",
        "ProtocolError",
        message,
    )
}

/// `peng3dnet.errors.TLSConfigError`: a `net.ssl.*` option that cannot be used.
pub(crate) fn tls_config_error(py: Python<'_>, err: &TlsSetupError) -> PyErr {
    raise_class(
        py,
        &TLS_CONFIG_ERROR,
        "peng3dnet.errors",
        "TLSConfigError",
        err.to_string(),
    )
}

/// A connection error: `peng3dnet.errors.TLSError` if the TLS handshake failed, else
/// the matching `OSError` subclass.
pub(crate) fn connect_error(py: Python<'_>, err: std::io::Error) -> PyErr {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsHandshakeError>())
    {
        Some(tls) => raise_class(
            py,
            &TLS_ERROR,
            "peng3dnet.errors",
            "TLSError",
            tls.to_string(),
        ),
        None => PyErr::from(err),
    }
}

/// The exception `msgpack.unpackb` raises for the same input.
pub(crate) fn msgpack_decode_error(py: Python<'_>, err: &DecodeError) -> PyErr {
    match err {
        DecodeError::Truncated { .. } => PyValueError::new_err("Unpack failed: incomplete input"),
        DecodeError::ReservedMarker { .. } => raise_class(
            py,
            &MSGPACK_FORMAT_ERROR,
            "msgpack.exceptions",
            "FormatError",
            err.to_string(),
        ),
        DecodeError::DepthExceeded { .. } => raise_class(
            py,
            &MSGPACK_STACK_ERROR,
            "msgpack.exceptions",
            "StackError",
            err.to_string(),
        ),
        DecodeError::InvalidMapKey { kind, .. } => PyValueError::new_err(format!(
            "{kind} is not allowed for map key when strict_map_key=True"
        )),
        _ => PyValueError::new_err(err.to_string()),
    }
}

/// `errno.EADDRINUSE` as Python reports it on this platform (Windows' Python uses the
/// Winsock number, not the C library's).
#[cfg(unix)]
const ADDRESS_IN_USE: i32 = libc::EADDRINUSE;
#[cfg(windows)]
const ADDRESS_IN_USE: i32 = 10048; // WSAEADDRINUSE
#[cfg(not(any(unix, windows)))]
const ADDRESS_IN_USE: i32 = 98;

/// An error of the in-process transport: the `OSError` a socket would raise in the
/// same situation (`ConnectionRefusedError` with no server; errno `EADDRINUSE` for a
/// name in use; `ValueError` for a malformed name).
pub(crate) fn memory_error(err: std::io::Error) -> PyErr {
    use pyo3::exceptions::{PyConnectionRefusedError, PyOSError};
    let message = err.to_string();
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => PyConnectionRefusedError::new_err(message),
        std::io::ErrorKind::AddrInUse => PyOSError::new_err((ADDRESS_IN_USE, message)),
        std::io::ErrorKind::InvalidInput => PyValueError::new_err(message),
        _ => PyOSError::new_err(message),
    }
}
