//! Turning inbox events into the tuples Python's dispatch loop reads, on the thread
//! that calls `take_events` (which is also where packet bodies become Python objects):
//!
//! ```text
//! (EV_CONNECTED, cid, Connection)          (EV_PACKET, cid, pid, flags, msg)
//! (EV_SENT, cid, pid, msg, frame)          (EV_HANDSHAKE_COMPLETE, cid)
//! (EV_INIT, cid, conntype)                 (EV_CLOSED, cid, reason)
//! (EV_LOG, cid, level, message)
//! ```
//!
//! `take_events` returns an [`EventBatch`], which converts each event when the loop
//! reaches it: a batch of up to a thousand messages is never alive as Python objects
//! all at once, which would cost memory and wake the garbage collector, whose
//! collections then find all of them alive and move them to older generations.
//!
//! A packet body Python cannot decode closes its connection (the peer broke the
//! protocol) and becomes a log event; the connection's later packets are dropped.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::connection::Side;
use super::convert::{self, StrCache, UnpackError};
use super::duration;
use crate::protocol::msgpack::ReadLimits;
use crate::transport::connection::{Event, LogLevel};

pub(crate) const EV_CONNECTED: u8 = 0;
pub(crate) const EV_PACKET: u8 = 1;
pub(crate) const EV_SENT: u8 = 2;
pub(crate) const EV_HANDSHAKE_COMPLETE: u8 = 3;
pub(crate) const EV_INIT: u8 = 4;
pub(crate) const EV_CLOSED: u8 = 5;
pub(crate) const EV_LOG: u8 = 6;

/// Python `logging` levels of log events.
const LOG_INFO: u32 = 20;
const LOG_WARNING: u32 = 30;

/// Takes events from the side's inbox (waiting without the GIL if asked), to be
/// converted to tuples as Python iterates over them.
pub(crate) fn take_events<'py>(
    py: Python<'py>,
    side: &Side,
    wait: bool,
    timeout: Option<f64>,
    max_events: usize,
) -> PyResult<Bound<'py, EventBatch>> {
    let timeout = duration(timeout)?;
    let common = side.common();
    let batch = if wait {
        py.detach(|| common.take_events(max_events, true, timeout))
    } else {
        common.take_events(max_events, false, None)
    };
    let taken = batch.len();
    // Strings repeat across the packets of a batch; a batch of one has nothing to share.
    let strings = (taken > 1).then(StrCache::new);
    Bound::new(
        py,
        EventBatch {
            side: side.clone(),
            events: batch.into_iter(),
            taken,
            strings,
        },
    )
}

/// The events of one `take_events` call: an iterator of event tuples whose length is
/// the number of events taken from the inbox (those of a connection whose input was
/// rejected meanwhile are skipped).
#[pyclass(module = "peng3dnet._core")]
pub(crate) struct EventBatch {
    side: Side,
    events: std::vec::IntoIter<Event>,
    taken: usize,
    /// Short strings decoded for earlier packets of the batch.
    strings: Option<StrCache>,
}

#[pymethods]
impl EventBatch {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(mut slf: PyRefMut<'py, Self>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = slf.py();
        let batch = &mut *slf;
        for event in batch.events.by_ref() {
            if let Some(tuple) = convert_event(py, &batch.side, event, batch.strings.as_mut())? {
                return Ok(Some(tuple));
            }
        }
        Ok(None)
    }

    fn __len__(&self) -> usize {
        self.taken
    }
}

fn convert_event<'py>(
    py: Python<'py>,
    side: &Side,
    event: Event,
    strings: Option<&mut StrCache>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let cid = event.conn().map_or(0, |conn| conn.cid);
    let tuple = match event {
        Event::Connected(conn) => (EV_CONNECTED, cid, side.handle(py, &conn)?).into_pyobject(py)?,
        Event::Packet {
            conn,
            pid,
            flags,
            body,
        } => {
            if conn.input_rejected() {
                return Ok(None);
            }
            let limits = ReadLimits::from(&conn.settings().limits);
            let decoded = match strings {
                Some(strings) => convert::unpack_cached(py, &body, limits, strings),
                None => convert::unpack(py, &body, limits),
            };
            match decoded {
                Ok(msg) => (EV_PACKET, cid, pid, flags, msg).into_pyobject(py)?,
                Err(err) => {
                    let detail = match err {
                        UnpackError::Decode(err) => err.to_string(),
                        UnpackError::Python(err) => err.to_string(),
                    };
                    let reason = format!("protocolerror: invalid body of packet {pid}: {detail}");
                    let message =
                        format!("closing connection {cid} from {}: {reason}", conn.peer_addr);
                    conn.reject_input(reason);
                    (EV_LOG, cid, LOG_WARNING, message).into_pyobject(py)?
                }
            }
        }
        Event::Sent {
            pid,
            body,
            frame,
            conn,
        } => {
            let limits = ReadLimits::from(&conn.settings().limits);
            let msg = convert::unpack(py, &body, limits).map_err(|err| match err {
                UnpackError::Python(err) => err,
                UnpackError::Decode(err) => PyValueError::new_err(err.to_string()),
            })?;
            (EV_SENT, cid, pid, msg, PyBytes::new(py, &frame)).into_pyobject(py)?
        }
        Event::HandshakeComplete(_) => (EV_HANDSHAKE_COMPLETE, cid).into_pyobject(py)?,
        Event::InitInPython { conntype, .. } => (EV_INIT, cid, conntype).into_pyobject(py)?,
        Event::Closed { reason, .. } => (EV_CLOSED, cid, reason).into_pyobject(py)?,
        Event::Log { level, message, .. } | Event::PeerLog { level, message } => {
            let level = match level {
                LogLevel::Info => LOG_INFO,
                LogLevel::Warning => LOG_WARNING,
            };
            (EV_LOG, cid, level, message).into_pyobject(py)?
        }
    };
    Ok(Some(tuple.into_any()))
}
