//! The network cores Python's `Server` and `Client` hold: `ServerCore`, `ClientCore`,
//! and `Connection`, the handle of one connection that `ClientOnServer` keeps.
//!
//! Every blocking wait (binding, connecting, waiting for events, for the handshake or
//! for a close) releases the GIL. Events are turned into tuples here, on the Python
//! thread that called `take_events`, which is also where packet bodies are decoded
//! into Python objects:
//!
//! ```text
//! (EV_CONNECTED, cid, Connection)          (EV_PACKET, cid, pid, flags, msg)
//! (EV_SENT, cid, pid, msg, frame)          (EV_HANDSHAKE_COMPLETE, cid)
//! (EV_INIT, cid, conntype)                 (EV_CLOSED, cid, reason)
//! (EV_LOG, cid, level, message)
//! ```

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use super::codec::compression_level;
use super::convert::{self, UnpackError};
use crate::peer::handshake::ConntypeKind;
use crate::protocol::msgpack::ReadLimits;
use crate::protocol::packet::{self, Compression};
use crate::protocol::Limits;
use crate::transport::client::{is_active_state, ClientOptions, ClientShared};
use crate::transport::connection::{Conn, Settings};
use crate::transport::inbox::{Event, Inbox, LogLevel};
use crate::transport::server::ServerShared;

const EV_CONNECTED: u8 = 0;
const EV_PACKET: u8 = 1;
const EV_SENT: u8 = 2;
const EV_HANDSHAKE_COMPLETE: u8 = 3;
const EV_INIT: u8 = 4;
const EV_CLOSED: u8 = 5;
const EV_LOG: u8 = 6;

/// Python `logging` levels of log events.
const LOG_INFO: u32 = 20;
const LOG_WARNING: u32 = 30;

fn duration(seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) if s.is_infinite() && s > 0.0 => Ok(None),
        Some(s) => Err(PyValueError::new_err(format!(
            "timeout must be a non-negative number of seconds, not {s}"
        ))),
    }
}

/// Socket addresses from Python's `(host, port)` or `(host, port, flowinfo, scope_id)`
/// tuples, whose host is a numeric IP (Python resolved names with `getaddrinfo`).
fn socket_addrs(addrs: Vec<Bound<'_, PyTuple>>) -> PyResult<Vec<SocketAddr>> {
    addrs
        .iter()
        .map(|tuple| {
            let host: String = tuple.get_item(0)?.extract()?;
            let port: u16 = tuple.get_item(1)?.extract()?;
            let ip: IpAddr = host.parse().map_err(|_| {
                PyValueError::new_err(format!("{host:?} is not a numeric IP address"))
            })?;
            Ok(match ip {
                IpAddr::V6(v6) if tuple.len() >= 4 => {
                    let flowinfo: u32 = tuple.get_item(2)?.extract()?;
                    let scope: u32 = tuple.get_item(3)?.extract()?;
                    SocketAddr::V6(SocketAddrV6::new(v6, port, flowinfo, scope))
                }
                ip => SocketAddr::new(ip, port),
            })
        })
        .collect()
}

/// A socket address as Python's `socket` module writes it.
fn py_addr<'py>(py: Python<'py>, addr: &SocketAddr) -> PyResult<Bound<'py, PyTuple>> {
    match addr {
        SocketAddr::V4(v4) => (v4.ip().to_string(), v4.port()).into_pyobject(py),
        SocketAddr::V6(v6) => {
            (v6.ip().to_string(), v6.port(), v6.flowinfo(), v6.scope_id()).into_pyobject(py)
        }
    }
}

/// Settings from keyword arguments (the Python side reads them from the config).
#[allow(clippy::too_many_arguments)]
fn settings(
    compress: bool,
    compress_threshold: usize,
    compress_level: i32,
    max_frame_len: u32,
    max_inflated_len: usize,
    max_depth: usize,
    max_container_len: Option<usize>,
    inbox_limit: usize,
    linger: f64,
    close_timeout: f64,
) -> PyResult<Settings> {
    Ok(Settings {
        limits: Limits {
            max_frame_len,
            max_inflated_len,
            max_depth,
            max_container_len: max_container_len.unwrap_or(usize::MAX),
        },
        compression: Compression {
            enabled: compress,
            threshold: compress_threshold,
            level: compression_level(compress_level)?,
        },
        inbox_limit,
        linger: duration(Some(linger))?.unwrap_or_default(),
        close_timeout: duration(Some(close_timeout))?.unwrap_or(Duration::from_secs(10)),
    })
}

/// Encodes `msg` as the complete frame of packet `pid`, with the connection's
/// compression settings; large bodies are compressed with the GIL released.
fn encode_on(
    py: Python<'_>,
    conn: &Arc<Conn>,
    pid: u32,
    msg: &Bound<'_, PyAny>,
) -> PyResult<bytes::Bytes> {
    let mut out = Vec::with_capacity(64);
    let start = packet::begin_frame(&mut out);
    convert::pack(msg, &mut out)?;
    let compression = conn.settings().compression;
    let body_len = out.len() - start - packet::FRAME_OVERHEAD;
    let finished = if compression.applies_to(body_len) {
        py.detach(|| {
            let result = packet::finish_frame(&mut out, start, pid, &compression);
            (out, result)
        })
    } else {
        let result = packet::finish_frame(&mut out, start, pid, &compression);
        (out, result)
    };
    let (out, result) = finished;
    result.map_err(|err| PyValueError::new_err(format!("cannot send packet {pid}: {err}")))?;
    Ok(bytes::Bytes::from(out))
}

/// Encodes `msg` as packet `pid` and queues it on `conn`. Returns `False` if the
/// connection is closing (nothing was sent), else the frame if `want_frame`, else
/// `True`.
fn send_on<'py>(
    py: Python<'py>,
    conn: &Arc<Conn>,
    pid: u32,
    msg: &Bound<'py, PyAny>,
    want_frame: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if conn.is_closing() {
        return Ok(false.into_pyobject(py)?.to_owned().into_any());
    }
    let frame = encode_on(py, conn, pid, msg)?;
    let copy = want_frame.then(|| PyBytes::new(py, &frame));
    if !conn.queue_frame(frame) {
        return Ok(false.into_pyobject(py)?.to_owned().into_any());
    }
    Ok(match copy {
        Some(bytes) => bytes.into_any(),
        None => true.into_pyobject(py)?.to_owned().into_any(),
    })
}

/// The peer a connection belongs to.
#[derive(Clone)]
enum Owner {
    Server(Arc<ServerShared>),
    Client(Arc<ClientShared>),
}

impl Owner {
    fn inbox(&self) -> &Arc<Inbox> {
        match self {
            Owner::Server(shared) => &shared.inbox,
            Owner::Client(shared) => &shared.inbox,
        }
    }

    /// A Python handle for `conn`.
    fn handle<'py>(&self, py: Python<'py>, conn: &Arc<Conn>) -> PyResult<Bound<'py, PyAny>> {
        Ok(Bound::new(
            py,
            Connection {
                conn: conn.clone(),
                owner: self.clone(),
            },
        )?
        .into_any())
    }
}

/// Takes events from the owner's inbox (waiting without the GIL) and converts them to
/// tuples.
fn take_events<'py>(
    py: Python<'py>,
    owner: &Owner,
    wait: bool,
    timeout: Option<f64>,
    max_events: usize,
) -> PyResult<Bound<'py, PyList>> {
    let timeout = duration(timeout)?;
    let inbox = owner.inbox();
    let inbox_for_wait = inbox.clone();
    let batch = if wait {
        py.detach(move || inbox_for_wait.take(max_events, true, timeout))
    } else {
        inbox.take(max_events, false, None)
    };
    let events = PyList::empty(py);
    for event in batch {
        let cid = event.conn().cid;
        let tuple = match event {
            Event::Connected(conn) => {
                (EV_CONNECTED, cid, owner.handle(py, &conn)?).into_pyobject(py)?
            }
            Event::Packet {
                conn,
                pid,
                flags,
                body,
            } => {
                if conn.input_rejected() {
                    continue;
                }
                let limits = ReadLimits::from(&conn.settings().limits);
                match convert::unpack(py, &body, limits) {
                    Ok(msg) => (EV_PACKET, cid, pid, flags, msg).into_pyobject(py)?,
                    Err(err) => {
                        let detail = match err {
                            UnpackError::Decode(err) => err.to_string(),
                            UnpackError::Python(err) => err.to_string(),
                        };
                        let reason =
                            format!("protocolerror: invalid body of packet {pid}: {detail}");
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
            Event::DelegateInit { conntype, .. } => (EV_INIT, cid, conntype).into_pyobject(py)?,
            Event::Closed { reason, .. } => (EV_CLOSED, cid, reason).into_pyobject(py)?,
            Event::Log { level, message, .. } => {
                let level = match level {
                    LogLevel::Info => LOG_INFO,
                    LogLevel::Warning => LOG_WARNING,
                };
                (EV_LOG, cid, level, message).into_pyobject(py)?
            }
        };
        events.append(tuple)?;
    }
    Ok(events)
}

fn io_error(err: std::io::Error) -> PyErr {
    PyErr::from(err)
}

/// One connection, as `ClientOnServer` (and `Client`) see it.
#[pyclass(frozen, module = "peng3dnet._core")]
pub(crate) struct Connection {
    conn: Arc<Conn>,
    owner: Owner,
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
        py_addr(py, &self.conn.peer_addr)
    }

    /// The local address, as `socket.getsockname()` returns it.
    fn getsockname<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        py_addr(py, &self.conn.local_addr)
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

    /// Why the connection ended (None while open).
    #[getter]
    fn close_reason(&self) -> Option<String> {
        self.conn.close_reason()
    }

    /// Encodes and queues a packet; see `send_on`.
    #[pyo3(signature = (pid, msg, want_frame = false))]
    fn send<'py>(
        &self,
        py: Python<'py>,
        pid: u32,
        msg: &Bound<'py, PyAny>,
        want_frame: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        send_on(py, &self.conn, pid, msg, want_frame)
    }

    /// The complete frame `send` would queue for `msg`, without queueing it.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        pid: u32,
        msg: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let frame = encode_on(py, &self.conn, pid, msg)?;
        Ok(PyBytes::new(py, &frame))
    }

    /// Queues a frame made by `encode`. Returns false if the connection is closing.
    fn queue(&self, frame: &[u8]) -> bool {
        self.conn.queue_frame(bytes::Bytes::copy_from_slice(frame))
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
            .map_err(|err| super::errors::protocol_error(py, &err))
    }

    /// Python finished a connection type's `init`.
    fn init_done(&self) {
        self.conn.init_done();
    }

    /// Runs the classic connection type's `init` in the core.
    fn classic_init(&self) {
        match &self.owner {
            Owner::Server(shared) => shared.classic_init(&self.conn),
            Owner::Client(shared) => shared.classic_init(&self.conn),
        }
    }
}

/// The core of a `Server`.
#[pyclass(frozen, module = "peng3dnet._core")]
pub(crate) struct ServerCore {
    shared: Arc<ServerShared>,
}

impl ServerCore {
    fn owner(&self) -> Owner {
        Owner::Server(self.shared.clone())
    }
}

#[pymethods]
impl ServerCore {
    #[new]
    fn py_new() -> Self {
        ServerCore {
            shared: ServerShared::new(),
        }
    }

    /// Sets compression and limits for connections accepted from now on.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (*, compress, compress_threshold, compress_level, max_frame_len, max_inflated_len, max_depth, max_container_len, inbox_limit, linger, close_timeout))]
    fn configure(
        &self,
        compress: bool,
        compress_threshold: usize,
        compress_level: i32,
        max_frame_len: u32,
        max_inflated_len: usize,
        max_depth: usize,
        max_container_len: Option<usize>,
        inbox_limit: usize,
        linger: f64,
        close_timeout: f64,
    ) -> PyResult<()> {
        self.shared.configure(settings(
            compress,
            compress_threshold,
            compress_level,
            max_frame_len,
            max_inflated_len,
            max_depth,
            max_container_len,
            inbox_limit,
            linger,
            close_timeout,
        )?);
        Ok(())
    }

    /// Adds a packet to the registry sent in handshakes.
    fn register_packet(&self, name: &str, pid: u32) -> PyResult<()> {
        let mut table = self
            .shared
            .table()
            .write()
            .unwrap_or_else(|p| p.into_inner());
        table
            .insert(name, pid)
            .map_err(|err| PyValueError::new_err(err.to_string()))
    }

    /// Removes a packet from the registry sent in handshakes.
    fn unregister_packet(&self, name: &str) {
        self.shared
            .table()
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// Makes a connection type known; `native` means the core runs its `init`.
    fn add_conntype(&self, name: String, native: bool) {
        let kind = if native {
            ConntypeKind::NativeClassic
        } else {
            ConntypeKind::Delegated
        };
        self.shared
            .conntypes()
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, kind);
    }

    /// Binds to the first address that works; returns the bound address.
    fn bind<'py>(
        &self,
        py: Python<'py>,
        addrs: Vec<Bound<'py, PyTuple>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let addrs = socket_addrs(addrs)?;
        let shared = self.shared.clone();
        let bound = py.detach(move || shared.bind(&addrs)).map_err(io_error)?;
        py_addr(py, &bound)
    }

    /// The listening socket's OS handle, or -1.
    fn listener_fileno(&self) -> i64 {
        self.shared.listener_fd()
    }

    /// Starts accepting connections.
    fn start(&self) -> PyResult<()> {
        self.shared
            .start()
            .map_err(|err| PyOSError::new_err(err.to_string()))
    }

    /// Stops accepting and ends every connection at once.
    #[pyo3(signature = (reason = None))]
    fn stop(&self, reason: Option<String>) {
        self.shared.stop(reason);
    }

    /// Closes every connection gracefully.
    #[pyo3(signature = (reason = None))]
    fn close_all(&self, reason: Option<String>) {
        self.shared.close_all(reason);
    }

    /// Waits (without the GIL) until every connection is gone.
    #[pyo3(signature = (timeout = None))]
    fn wait_all_gone(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = duration(timeout)?;
        let shared = self.shared.clone();
        Ok(py.detach(move || shared.wait_all_gone(timeout)))
    }

    /// Number of live connections.
    #[getter]
    fn connection_count(&self) -> usize {
        self.shared.connection_count()
    }

    /// A new unique client id.
    fn gen_cid(&self) -> u64 {
        self.shared.gen_cid()
    }

    /// The handle of a live connection.
    fn connection<'py>(&self, py: Python<'py>, cid: u64) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.shared
            .conn(cid)
            .map(|conn| self.owner().handle(py, &conn))
            .transpose()
    }

    /// Takes queued events (see the module docs), waiting if asked.
    #[pyo3(signature = (wait = false, timeout = None, max_events = 1024))]
    fn take_events<'py>(
        &self,
        py: Python<'py>,
        wait: bool,
        timeout: Option<f64>,
        max_events: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        take_events(py, &self.owner(), wait, timeout, max_events)
    }

    /// Python finished dispatching the events it took.
    fn dispatch_done(&self) {
        self.shared.inbox.dispatch_done();
    }

    /// Wakes threads waiting in `take_events`.
    fn interrupt(&self) {
        self.shared.inbox.interrupt();
    }
}

/// The core of a `Client`.
#[pyclass(frozen, module = "peng3dnet._core")]
pub(crate) struct ClientCore {
    shared: Arc<ClientShared>,
}

impl ClientCore {
    fn owner(&self) -> Owner {
        Owner::Client(self.shared.clone())
    }
}

#[pymethods]
impl ClientCore {
    #[new]
    #[pyo3(signature = (target_conntype, autosync = true, require_same_names = true))]
    fn py_new(target_conntype: String, autosync: bool, require_same_names: bool) -> Self {
        ClientCore {
            shared: ClientShared::new(ClientOptions {
                target_conntype,
                autosync,
                require_same_names,
            }),
        }
    }

    /// Sets compression and limits for the next connection.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (*, compress, compress_threshold, compress_level, max_frame_len, max_inflated_len, max_depth, max_container_len, inbox_limit, linger, close_timeout))]
    fn configure(
        &self,
        compress: bool,
        compress_threshold: usize,
        compress_level: i32,
        max_frame_len: u32,
        max_inflated_len: usize,
        max_depth: usize,
        max_container_len: Option<usize>,
        inbox_limit: usize,
        linger: f64,
        close_timeout: f64,
    ) -> PyResult<()> {
        self.shared.configure(settings(
            compress,
            compress_threshold,
            compress_level,
            max_frame_len,
            max_inflated_len,
            max_depth,
            max_container_len,
            inbox_limit,
            linger,
            close_timeout,
        )?);
        Ok(())
    }

    /// Sets the handshake options.
    fn set_options(&self, target_conntype: String, autosync: bool, require_same_names: bool) {
        self.shared.set_options(ClientOptions {
            target_conntype,
            autosync,
            require_same_names,
        });
    }

    /// Adds a packet to the client's table.
    fn register_packet(&self, name: &str, pid: u32) -> PyResult<()> {
        let mut table = self
            .shared
            .table()
            .write()
            .unwrap_or_else(|p| p.into_inner());
        table
            .insert(name, pid)
            .map_err(|err| PyValueError::new_err(err.to_string()))
    }

    /// Removes a packet from the client's table.
    fn unregister_packet(&self, name: &str) {
        self.shared
            .table()
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// Makes a connection type known; `native` means the core runs its `init`.
    fn add_conntype(&self, name: String, native: bool) {
        let kind = if native {
            ConntypeKind::NativeClassic
        } else {
            ConntypeKind::Delegated
        };
        self.shared
            .conntypes()
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, kind);
    }

    /// Changes whenever the handshake re-numbered the table.
    #[getter]
    fn table_epoch(&self) -> u64 {
        self.shared.table_epoch()
    }

    /// The table as `(name, id)` pairs.
    fn table(&self) -> Vec<(String, u32)> {
        let table = self
            .shared
            .table()
            .read()
            .unwrap_or_else(|p| p.into_inner());
        table
            .entries()
            .map(|(name, id)| (name.to_owned(), id))
            .collect()
    }

    /// Connects (without the GIL) to the first address that accepts; returns the
    /// connection's handle. The handshake then runs in the background.
    fn connect<'py>(
        &self,
        py: Python<'py>,
        addrs: Vec<Bound<'py, PyTuple>>,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let addrs = socket_addrs(addrs)?;
        let timeout = duration(Some(timeout))?.unwrap_or(Duration::from_secs(30));
        let shared = self.shared.clone();
        let conn = py.detach(move || shared.connect(&addrs, timeout));
        match conn {
            Ok(conn) => self.owner().handle(py, &conn),
            Err(err) => {
                self.shared.connect_failed(format!("connectfailed: {err}"));
                Err(io_error(err))
            }
        }
    }

    /// The connection's handle, once connected.
    #[getter]
    fn connection<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.shared
            .conn()
            .map(|conn| self.owner().handle(py, &conn))
            .transpose()
    }

    /// Waits (without the GIL) until the connection is active or over. Returns
    /// `(active, closed, reason)`; neither is true if `timeout` passed first.
    #[pyo3(signature = (timeout = None))]
    fn wait_for_connection(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
    ) -> PyResult<(bool, bool, Option<String>)> {
        let timeout = duration(timeout)?;
        let shared = self.shared.clone();
        let (status, _) = py.detach(move || {
            shared.wait_until(timeout, |status, state| {
                status.closed.is_some() || state.is_some_and(is_active_state)
            })
        });
        let active = self
            .shared
            .conn()
            .is_some_and(|c| is_active_state(c.state()) && !c.is_finished());
        let reason = status.closed.clone().flatten();
        Ok((active, status.closed.is_some(), reason))
    }

    /// Waits (without the GIL) until the connection is over; returns whether it is.
    #[pyo3(signature = (timeout = None))]
    fn wait_for_close(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = duration(timeout)?;
        let shared = self.shared.clone();
        let (_, done) =
            py.detach(move || shared.wait_until(timeout, |status, _| status.closed.is_some()));
        Ok(done)
    }

    /// Ends the connection at once and stops the client's tasks.
    #[pyo3(signature = (reason = None))]
    fn stop(&self, reason: Option<String>) {
        self.shared.stop(reason);
    }

    /// Takes queued events (see the module docs), waiting if asked.
    #[pyo3(signature = (wait = false, timeout = None, max_events = 1024))]
    fn take_events<'py>(
        &self,
        py: Python<'py>,
        wait: bool,
        timeout: Option<f64>,
        max_events: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        take_events(py, &self.owner(), wait, timeout, max_events)
    }

    /// Python finished dispatching the events it took.
    fn dispatch_done(&self) {
        self.shared.inbox.dispatch_done();
    }

    /// Wakes threads waiting in `take_events`.
    fn interrupt(&self) {
        self.shared.inbox.interrupt();
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Connection>()?;
    m.add_class::<ServerCore>()?;
    m.add_class::<ClientCore>()?;
    for (name, value) in [
        ("EV_CONNECTED", EV_CONNECTED),
        ("EV_PACKET", EV_PACKET),
        ("EV_SENT", EV_SENT),
        ("EV_HANDSHAKE_COMPLETE", EV_HANDSHAKE_COMPLETE),
        ("EV_INIT", EV_INIT),
        ("EV_CLOSED", EV_CLOSED),
        ("EV_LOG", EV_LOG),
    ] {
        m.add(name, value)?;
    }
    Ok(())
}
