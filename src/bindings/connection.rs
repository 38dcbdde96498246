//! `Connection`: the handle of one connection that `ClientOnServer.conn` and
//! `Client.sock` are. Reads its state, sends on it, closes it.

use std::net::SocketAddr;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use super::convert;
use super::errors;
use super::stats;
use crate::protocol::packet;
use crate::transport::client::ClientShared;
use crate::transport::connection::{Conn, OutFrame};
use crate::transport::peer::PeerCommon;
use crate::transport::server::ServerShared;
use crate::transport::socket::Endpoint;

/// Frames from this size on are queued with the GIL released: writing one to a
/// loopback socket takes tens of microseconds (the kernel runs the receiving side in
/// the same call), time in which the app's other threads (its process thread
/// answering requests) would otherwise wait for the GIL; a loop of such sends would
/// hold it until Python's switch interval (5 ms) took it away.
const SEND_WITHOUT_GIL_FROM: usize = 64 * 1024;

/// Queues `frame` on `conn`, without the GIL if it is large.
fn queue_frame(py: Python<'_>, conn: &Arc<Conn>, frame: OutFrame, payload_len: usize) -> bool {
    if frame.len() >= SEND_WITHOUT_GIL_FROM {
        py.detach(|| conn.queue_out_frame(frame, payload_len))
    } else {
        conn.queue_out_frame(frame, payload_len)
    }
}

/// The side a connection belongs to: a server (with all its connections) or a client.
#[derive(Clone)]
pub(crate) enum Side {
    Server(Arc<ServerShared>),
    Client(Arc<ClientShared>),
}

impl Side {
    /// The parts the server and client share.
    pub(crate) fn common(&self) -> &PeerCommon {
        match self {
            Side::Server(shared) => &shared.common,
            Side::Client(shared) => &shared.common,
        }
    }

    /// A Python handle for `conn`.
    pub(crate) fn handle<'py>(
        &self,
        py: Python<'py>,
        conn: &Arc<Conn>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(Bound::new(
            py,
            Connection {
                conn: conn.clone(),
                side: self.clone(),
            },
        )?
        .into_any())
    }
}

/// A socket address as Python's `socket` module writes it.
pub(crate) fn py_addr<'py>(py: Python<'py>, addr: &SocketAddr) -> PyResult<Bound<'py, PyTuple>> {
    match addr {
        SocketAddr::V4(v4) => (v4.ip().to_string(), v4.port()).into_pyobject(py),
        SocketAddr::V6(v6) => {
            (v6.ip().to_string(), v6.port(), v6.flowinfo(), v6.scope_id()).into_pyobject(py)
        }
    }
}

/// An endpoint as Python sees it: a socket address as `socket` writes it, an
/// in-process one as `("memory:NAME", port)`.
pub(crate) fn py_endpoint<'py>(
    py: Python<'py>,
    endpoint: &Endpoint,
) -> PyResult<Bound<'py, PyTuple>> {
    match endpoint {
        Endpoint::Socket(addr) => py_addr(py, addr),
        Endpoint::Memory { name, port } => (format!("memory:{name}"), *port).into_pyobject(py),
    }
}

/// One connection, as `ClientOnServer` (and `Client`) see it.
#[pyclass(frozen, module = "peng3dnet._core")]
pub(crate) struct Connection {
    conn: Arc<Conn>,
    side: Side,
}

#[pymethods]
impl Connection {
    /// Client id (0 on the client side).
    #[getter]
    fn cid(&self) -> u64 {
        self.conn.cid
    }

    /// The state as Python sees it (`STATE_CLOSED` once the close is dispatched).
    #[getter]
    fn state(&self) -> u32 {
        self.conn.visible_state()
    }

    /// Sets the state.
    fn set_state(&self, value: u32) {
        self.conn.set_state(value);
    }

    /// The connection type.
    #[getter]
    fn conntype(&self) -> String {
        self.conn.conntype()
    }

    /// Sets the connection type.
    fn set_conntype(&self, value: String) {
        self.conn.set_conntype(value);
    }

    /// The `SSLSEC_*` level.
    #[getter]
    fn ssl_seclevel(&self) -> u32 {
        self.conn.ssl_seclevel()
    }

    /// The remote address, as `socket.getpeername()` returns it.
    fn getpeername<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        py_endpoint(py, &self.conn.peer_addr)
    }

    /// The local address, as `socket.getsockname()` returns it.
    fn getsockname<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        py_endpoint(py, &self.conn.local_addr)
    }

    /// The socket's OS handle (-1 once unavailable).
    fn fileno(&self) -> i64 {
        if self.conn.is_finished() {
            -1
        } else {
            self.conn.fd
        }
    }

    /// Whether a close has started.
    #[getter]
    fn closing(&self) -> bool {
        self.conn.is_closing()
    }

    /// Whether the connection is over.
    #[getter]
    fn finished(&self) -> bool {
        self.conn.is_finished()
    }

    /// Bytes queued and not yet written.
    #[getter]
    fn queued_bytes(&self) -> usize {
        self.conn.queued_bytes()
    }

    /// An asyncio awaitable that completes once at most `limit` bytes are queued, or
    /// the connection is closing.
    fn wait_writable<'py>(&self, py: Python<'py>, limit: usize) -> PyResult<Bound<'py, PyAny>> {
        let conn = self.conn.clone();
        super::aio::awaitable(py, async move { conn.wait_queue_at_most(limit).await })
    }

    /// Traffic so far: (bytes read, frames decoded, frames queued, bytes written).
    fn traffic(&self) -> (u64, u64, u64, u64) {
        let t = self.conn.traffic();
        (t.bytes_in, t.frames_in, t.frames_queued, t.bytes_out)
    }

    /// Statistics now (see `Client.stats`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats::connection(py, &self.conn.stats())
    }

    /// Why the connection ended (None while open).
    #[getter]
    fn close_reason(&self) -> Option<String> {
        self.conn.close_reason()
    }

    /// Encodes and queues packet `pid`. Returns `False` if the connection is closing
    /// (nothing was sent), else the frame if `want_frame`, else `True`.
    #[pyo3(signature = (pid, msg, want_frame = false))]
    fn send<'py>(
        &self,
        py: Python<'py>,
        pid: u32,
        msg: &Bound<'py, PyAny>,
        want_frame: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        if self.conn.is_closing() {
            return Ok(false.into_pyobject(py)?.to_owned().into_any());
        }
        let compression = &self.conn.settings().compression;
        // Only a caller that wants no copy of the frame may have it sent in pieces.
        let (frame, payload_len, copy) = if want_frame {
            let (frame, payload_len) = convert::encode_frame(py, pid, msg, compression)?;
            let copy = PyBytes::new(py, &frame);
            (OutFrame::Whole(frame), payload_len, Some(copy))
        } else {
            let (frame, payload_len) = convert::encode_frame_pieces(py, pid, msg, compression)?;
            (frame, payload_len, None)
        };
        if !queue_frame(py, &self.conn, frame, payload_len) {
            return Ok(false.into_pyobject(py)?.to_owned().into_any());
        }
        Ok(match copy {
            Some(bytes) => bytes.into_any(),
            None => true.into_pyobject(py)?.to_owned().into_any(),
        })
    }

    /// The complete frame `send` would queue for `msg`, without queueing it.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        pid: u32,
        msg: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (frame, _) = convert::encode_frame(py, pid, msg, &self.conn.settings().compression)?;
        Ok(PyBytes::new(py, &frame))
    }

    /// Queues a frame made by `encode`. Returns false if the connection is closing.
    fn queue(&self, py: Python<'_>, frame: &[u8]) -> bool {
        // The statistics count a compressed body at its compressed size here: the
        // frame alone does not tell how large it was.
        let payload_len = frame.len().saturating_sub(packet::FRAME_OVERHEAD);
        let frame = OutFrame::Whole(bytes::Bytes::copy_from_slice(frame));
        queue_frame(py, &self.conn, frame, payload_len)
    }

    /// Closes gracefully: queued packets, then a close packet with `reason`.
    #[pyo3(signature = (reason = None))]
    fn close(&self, reason: Option<String>) {
        self.conn.close(reason);
    }

    /// Ends the connection at once, without a close packet.
    #[pyo3(signature = (reason = None))]
    fn abort(&self, reason: Option<String>) {
        self.conn.abort(reason);
    }

    /// Queues a raw packet (header and body) as if it had arrived on this connection.
    fn inject(&self, py: Python<'_>, raw: &[u8]) -> PyResult<()> {
        self.conn
            .inject(raw)
            .map_err(|err| errors::protocol_error(py, &err))
    }

    /// Python finished a connection type's `init`.
    fn init_done(&self) {
        self.conn.init_done();
    }

    /// Runs the classic connection type's `init` in the core.
    fn classic_init(&self) {
        match &self.side {
            Side::Server(shared) => shared.classic_init(&self.conn),
            Side::Client(shared) => shared.classic_init(&self.conn),
        }
    }
}
