//! The codec as Python sees it: `packb`/`unpackb` (drop-in for msgpack-python's
//! functions of the same name) and `FrameCodec`, a complete packet encoder and
//! incremental decoder with the library's compression rule and decoding limits.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use super::convert::{self, UnpackError};
use super::errors;
use crate::protocol::msgpack::ReadLimits;
use crate::protocol::packet::{self, Compression};
use crate::protocol::{FrameDecoder, Limits};
use crate::transport::sync::Unpoisoned;

/// `msgpack.packb(obj)`, byte for byte.
#[pyfunction]
fn packb<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::new();
    convert::pack(obj, &mut out)?;
    Ok(PyBytes::new(obj.py(), &out))
}

/// `msgpack.unpackb(data)` with its defaults, plus limits on nesting and container size.
#[pyfunction]
#[pyo3(signature = (data, *, max_depth = Limits::DEFAULT_MAX_DEPTH, max_container_len = None))]
fn unpackb<'py>(
    py: Python<'py>,
    data: &[u8],
    max_depth: usize,
    max_container_len: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let limits = ReadLimits {
        max_depth,
        max_container_len: max_container_len.unwrap_or(usize::MAX),
    };
    convert::unpackb(py, data, limits)
}

/// Encodes packets into frames and decodes a byte stream back into packets.
///
/// Encoding compresses bodies longer than `compress_threshold` (when `compress` is
/// true). Decoding accepts bytes split anywhere and enforces the limits; after a
/// `ProtocolError` the stream cannot be resynchronised and the codec refuses further
/// input.
#[pyclass(frozen, module = "peng3dnet._core")]
pub(crate) struct FrameCodec {
    compression: Compression,
    limits: Limits,
    /// The incremental decoder; `None` once the stream has failed.
    decoder: Mutex<Option<FrameDecoder>>,
}

#[pymethods]
impl FrameCodec {
    #[new]
    #[pyo3(signature = (
        *,
        compress = true,
        compress_threshold = 8192,
        compress_level = 6,
        max_frame_len = Limits::DEFAULT_MAX_FRAME_LEN,
        max_inflated_len = Limits::DEFAULT_MAX_INFLATED_LEN,
        max_depth = Limits::DEFAULT_MAX_DEPTH,
        max_container_len = None,
    ))]
    fn py_new(
        compress: bool,
        compress_threshold: usize,
        compress_level: i32,
        max_frame_len: u32,
        max_inflated_len: usize,
        max_depth: usize,
        max_container_len: Option<usize>,
    ) -> PyResult<Self> {
        let level = compression_level(compress_level)?;
        let limits = Limits {
            max_frame_len,
            max_inflated_len,
            max_depth,
            max_container_len: max_container_len.unwrap_or(usize::MAX),
        };
        Ok(FrameCodec {
            compression: Compression {
                enabled: compress,
                threshold: compress_threshold,
                level,
            },
            limits,
            decoder: Mutex::new(Some(FrameDecoder::new(max_frame_len))),
        })
    }

    /// The complete frame (prefix, header, body) for packet `pid` carrying `msg`.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        pid: u32,
        msg: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (frame, _) = convert::encode_frame(py, pid, msg, &self.compression)?;
        Ok(PyBytes::new(py, &frame))
    }

    /// Appends received bytes and returns every packet completed by them, as
    /// `(pid, flags, msg)` tuples. Raises `peng3dnet.errors.ProtocolError` if the stream
    /// breaks the format or a limit.
    fn feed<'py>(&self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let mut guard = self.decoder.lock_anyway();
        let Some(decoder) = guard.as_mut() else {
            return Err(errors::protocol_error_text(
                py,
                "this stream already failed; decode a new stream with a new FrameCodec".to_owned(),
            ));
        };
        decoder.extend_from_slice(data);
        let packets = PyList::empty(py);
        loop {
            match self.next_packet(py, decoder) {
                Ok(Some(packet)) => packets.append(packet)?,
                Ok(None) => return Ok(packets),
                Err(err) => {
                    *guard = None;
                    return Err(err);
                }
            }
        }
    }

    /// Bytes received but not yet returned as packets.
    #[getter]
    fn buffered(&self) -> usize {
        self.decoder
            .lock_anyway()
            .as_ref()
            .map_or(0, FrameDecoder::buffered)
    }
}

impl FrameCodec {
    fn next_packet<'py>(
        &self,
        py: Python<'py>,
        decoder: &mut FrameDecoder,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let frame = match decoder.decode() {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(None),
            Err(err) => return Err(errors::protocol_error(py, &err.into())),
        };
        let body = packet::open_body(&frame, &self.limits)
            .map_err(|err| errors::protocol_error(py, &err))?;
        let msg =
            convert::unpack(py, &body, ReadLimits::from(&self.limits)).map_err(
                |err| match err {
                    UnpackError::Decode(err) => errors::protocol_error(py, &err.into()),
                    UnpackError::Python(err) => {
                        let wrapped =
                            errors::protocol_error_text(py, format!("invalid packet body: {err}"));
                        wrapped.set_cause(py, Some(err));
                        wrapped
                    }
                },
            )?;
        let header = frame.header;
        Ok(Some(PyTuple::new(
            py,
            [
                header.pid.into_pyobject(py)?.into_any(),
                header.flags.bits().into_pyobject(py)?.into_any(),
                msg,
            ],
        )?))
    }
}

/// Validates a zlib level as Python's `zlib.compress` accepts it (-1 means 6).
pub(crate) fn compression_level(level: i32) -> PyResult<u32> {
    match level {
        -1 => Ok(6),
        0..=9 => Ok(level as u32),
        _ => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "net.compress.level must be -1 or between 0 and 9, not {level}"
        ))),
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(packb, m)?)?;
    m.add_function(wrap_pyfunction!(unpackb, m)?)?;
    m.add_class::<FrameCodec>()?;
    Ok(())
}
