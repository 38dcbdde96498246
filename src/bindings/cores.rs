//! The network cores that `peng3dnet.net` drives: `PeerCore` holds what servers and
//! clients share (configuration, registrations, the event queue); `ServerCore` and
//! `ClientCore` extend it with listening and connecting. Every blocking wait (binding,
//! connecting, waiting for events, for the handshake or for a close) releases the GIL.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::aio;
use super::codec::compression_level;
use super::connection::{py_addr, Side};
use super::convert;
use super::duration;
use super::errors;
use super::events::{take_events, EventBatch};
use super::stats;
use crate::peer::handshake::ConntypeKind;
use crate::protocol::packet::Compression;
use crate::protocol::Limits;
use crate::transport::budget::MIN_BUDGET;
use crate::transport::client::{is_active_state, ClientOptions, ClientShared, ClientStatus};
use crate::transport::connection::Inbox;
use crate::transport::dial::{self, Dial};
use crate::transport::memory;
use crate::transport::server::ServerShared;
use crate::transport::settings::{Keepalive, Settings};
use crate::transport::sync::{ReadAnyway, Unpoisoned};
use crate::transport::tls::{
    ClientTls, ClientTlsOptions, ServerTls, ServerTlsOptions, TlsSetupError,
};

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

/// `net.keepalive.interval` and `.timeout` (seconds) as core settings; no interval
/// means keepalive is off.
fn keepalive_settings(interval: Option<f64>, timeout: Option<f64>) -> PyResult<Option<Keepalive>> {
    let Some(interval) = interval else {
        return Ok(None);
    };
    if !(interval.is_finite() && interval > 0.0) {
        return Err(PyValueError::new_err(format!(
            "net.keepalive.interval must be a positive number of seconds, not {interval}"
        )));
    }
    let timeout = timeout.unwrap_or(interval * 3.0);
    if !(timeout.is_finite() && timeout > interval) {
        return Err(PyValueError::new_err(format!(
            "net.keepalive.timeout ({timeout}) must be longer than net.keepalive.interval \
             ({interval}): a peer is only declared dead after it missed a probe"
        )));
    }
    Ok(Some(Keepalive {
        interval: Duration::from_secs_f64(interval),
        timeout: Duration::from_secs_f64(timeout),
    }))
}

/// What servers and clients share; the base class of `ServerCore` and `ClientCore`.
#[pyclass(subclass, frozen, module = "peng3dnet._core")]
pub(crate) struct PeerCore {
    side: Side,
    /// The side's inbox, also held here: `has_work` is asked of every idle client a
    /// pump thread visits, and this saves it a pointer to chase.
    inbox: Arc<Inbox>,
}

impl PeerCore {
    fn new(side: Side) -> PeerCore {
        let inbox = side.common().inbox.clone();
        PeerCore { side, inbox }
    }
}

#[pymethods]
impl PeerCore {
    /// Sets compression and limits for connections made from now on.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (*, compress, compress_threshold, compress_level, max_frame_len, max_inflated_len, max_depth, max_container_len, inbox_limit, linger, close_timeout, handshake_timeout, idle_timeout, write_queue_limit, keepalive_interval = None, keepalive_timeout = None, handshake_frame_len = None, memory_budget = None, memory_grace = None))]
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
        handshake_timeout: Option<f64>,
        idle_timeout: Option<f64>,
        write_queue_limit: usize,
        keepalive_interval: Option<f64>,
        keepalive_timeout: Option<f64>,
        handshake_frame_len: Option<u32>,
        memory_budget: Option<usize>,
        memory_grace: Option<f64>,
    ) -> PyResult<()> {
        let keepalive = keepalive_settings(keepalive_interval, keepalive_timeout)?;
        let defaults = Settings::default();
        if memory_budget.is_some_and(|budget| budget < MIN_BUDGET) {
            return Err(PyValueError::new_err(format!(
                "net.limits.memory must be at least {MIN_BUDGET} bytes (4 MiB), or None for \
                 the default (a quarter of the machine's memory, at most 512 MiB)"
            )));
        }
        self.side.common().configure(Settings {
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
            handshake_timeout: duration(handshake_timeout)?,
            idle_timeout: duration(idle_timeout)?,
            write_queue_limit,
            keepalive,
            handshake_frame_len: handshake_frame_len.unwrap_or(defaults.handshake_frame_len),
            memory_budget: memory_budget.unwrap_or(defaults.memory_budget),
            memory_grace: duration(memory_grace)?.unwrap_or(defaults.memory_grace),
        });
        Ok(())
    }

    /// The memory budget now: `memory_budget`, `memory_used`, `memory_peak`,
    /// `memory_evictions`, `memory_pressure` (see `Server.stats`).
    fn memory_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        stats::add_budget(&dict, &self.side.common().budget.stats())?;
        Ok(dict)
    }

    /// Adds a packet to the table (sent in handshakes by a server, synced by a client).
    fn register_packet(&self, name: &str, pid: u32) -> PyResult<()> {
        let mut table = self.side.common().table().lock_anyway();
        table
            .insert(name, pid)
            .map_err(|err| PyValueError::new_err(err.to_string()))
    }

    /// Removes a packet from the table.
    fn unregister_packet(&self, name: &str) {
        self.side.common().table().lock_anyway().remove(name);
    }

    /// Makes a connection type known; `native` means the core runs its `init`.
    fn add_conntype(&self, name: String, native: bool) {
        let kind = if native {
            ConntypeKind::NativeClassic
        } else {
            ConntypeKind::Delegated
        };
        self.side
            .common()
            .conntypes()
            .lock_anyway()
            .insert(name, kind);
    }

    /// Takes queued events (see `events.rs`), waiting if asked.
    #[pyo3(signature = (wait = false, timeout = None, max_events = 1024))]
    fn take_events<'py>(
        &self,
        py: Python<'py>,
        wait: bool,
        timeout: Option<f64>,
        max_events: usize,
    ) -> PyResult<Bound<'py, EventBatch>> {
        take_events(py, &self.side, wait, timeout, max_events)
    }

    /// Whether `take_events` without waiting would find something to do (events, or an
    /// interrupt to clear): `process()` returns at once when not.
    #[getter]
    fn has_work(&self) -> bool {
        self.inbox.has_work()
    }

    /// Python finished dispatching the events it took.
    fn dispatch_done(&self) {
        self.side.common().inbox.dispatch_done();
    }

    /// Wakes threads waiting in `take_events`.
    fn interrupt(&self) {
        self.side.common().inbox.interrupt();
    }

    /// The socket an event loop watches (`add_reader`) to learn that events are
    /// queued: readable after `arm_wakeup()` returned true and an event arrived.
    fn wakeup_fd(&self) -> PyResult<i64> {
        self.side.common().inbox.wakeup_fd().map_err(PyErr::from)
    }

    /// Arms the wake-up socket; false if events are waiting already (take them
    /// instead of waiting).
    fn arm_wakeup(&self) -> bool {
        self.side.common().inbox.arm_wakeup()
    }

    /// Empties the wake-up socket once the loop found it readable.
    fn drain_wakeup(&self) {
        self.side.common().inbox.drain_wakeup();
    }

    /// Before the loop waits (after `arm_wakeup()` returned true): the sockets it
    /// should watch as well, reading them with `read_watched_sockets()` when readable,
    /// until `unwatch_sockets()`.
    fn watch_sockets(&self) -> Vec<i64> {
        self.side.common().direct.watch_sockets()
    }

    /// A watched socket is readable: reads what arrived (without the GIL). Returns the
    /// sockets to stop watching, and whether events are queued now.
    fn read_watched_sockets(&self, py: Python<'_>) -> (Vec<i64>, bool) {
        let direct = self.side.common().direct.clone();
        py.detach(move || direct.read_watched_sockets())
    }

    /// The loop stopped waiting; reads what was left to it meanwhile.
    fn unwatch_sockets(&self, py: Python<'_>) {
        let direct = self.side.common().direct.clone();
        py.detach(move || direct.unwatch_sockets());
    }

    /// Closes the wake-up socket once the loop no longer watches it.
    fn close_wakeup(&self) {
        self.side.common().inbox.close_wakeup();
    }

    /// An asyncio awaitable that completes once an event is queued (or `interrupt`
    /// was called); then `take_events(False)` gets it without blocking. For loops
    /// that cannot watch a socket (`wakeup_fd`).
    fn events_ready<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inbox = self.side.common().inbox.clone();
        aio::awaitable(py, async move { inbox.ready().await })
    }
}

/// The core of a `Server`.
#[pyclass(extends = PeerCore, frozen, module = "peng3dnet._core")]
pub(crate) struct ServerCore {
    shared: Arc<ServerShared>,
}

#[pymethods]
impl ServerCore {
    #[new]
    fn py_new() -> PyClassInitializer<Self> {
        let shared = ServerShared::new();
        PyClassInitializer::from(PeerCore::new(Side::Server(shared.clone())))
            .add_subclass(ServerCore { shared })
    }

    /// Binds to the first address that works; returns the bound address.
    fn bind<'py>(
        &self,
        py: Python<'py>,
        addrs: Vec<Bound<'py, PyTuple>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let addrs = socket_addrs(addrs)?;
        let shared = self.shared.clone();
        let bound = py
            .detach(move || shared.bind(&addrs))
            .map_err(PyErr::from)?;
        py_addr(py, &bound)
    }

    /// Listens on the in-process address `memory:name`; returns `("memory:name", 0)`.
    fn bind_memory<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyTuple>> {
        self.shared
            .bind_memory(name)
            .map_err(errors::memory_error)?;
        (format!("{}{name}", memory::SCHEME), 0u16).into_pyobject(py)
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

    /// Stops accepting and ends every connection that is not already closing.
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

    /// Uses TLS for connections accepted from now on (`enabled`): the server's
    /// certificate chain and key, and optionally a CA for client certificates (required
    /// with `require_client_cert`). Raises `TLSConfigError` for unusable options.
    #[pyo3(signature = (enabled, *, certfile = None, keyfile = None, client_ca = None, require_client_cert = true))]
    fn configure_tls(
        &self,
        py: Python<'_>,
        enabled: bool,
        certfile: Option<PathBuf>,
        keyfile: Option<PathBuf>,
        client_ca: Option<PathBuf>,
        require_client_cert: bool,
    ) -> PyResult<()> {
        if !enabled {
            self.shared.set_tls(None);
            return Ok(());
        }
        let missing = |option: &str| {
            errors::tls_config_error(
                py,
                &TlsSetupError(format!(
                    "net.ssl.enabled is set, so {option} must name a PEM file"
                )),
            )
        };
        let options = ServerTlsOptions {
            certfile: certfile.ok_or_else(|| missing("net.ssl.server.certfile"))?,
            keyfile: keyfile.ok_or_else(|| missing("net.ssl.server.keyfile"))?,
            client_ca,
            require_client_cert,
        };
        let tls = ServerTls::load(&options).map_err(|err| errors::tls_config_error(py, &err))?;
        self.shared.set_tls(Some(tls));
        Ok(())
    }

    /// Encodes `msg` as packet `pid` once and queues it to each of `cids` that is
    /// connected, active and not closing; returns how many it was queued to.
    fn broadcast(
        &self,
        py: Python<'_>,
        pid: u32,
        msg: &Bound<'_, PyAny>,
        cids: Vec<u64>,
    ) -> PyResult<usize> {
        let compression = self.shared.common.settings().compression;
        let (frame, payload_len) = convert::encode_frame(py, pid, msg, &compression)?;
        let shared = self.shared.clone();
        Ok(py.detach(move || shared.broadcast(&frame, payload_len, &cids)))
    }

    /// Sets the most connections the server keeps at once; more are refused with a
    /// close packet "serverfull".
    fn set_max_connections(&self, limit: usize) {
        self.shared.set_max_connections(limit);
    }

    /// Number of live connections.
    #[getter]
    fn connection_count(&self) -> usize {
        self.shared.connection_count()
    }

    /// Totals over every connection so far (see `Server.stats`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.shared.stats();
        let dict = PyDict::new(py);
        dict.set_item("connections", stats.connections)?;
        dict.set_item("accepted", stats.accepted)?;
        dict.set_item("refused", stats.refused)?;
        stats::add_traffic(&dict, &stats.traffic)?;
        dict.set_item("queued_bytes", stats.queued_bytes)?;
        let (mean, max) = stats.rtt.unzip();
        dict.set_item("rtt_mean", mean.map(|d| d.as_secs_f64()))?;
        dict.set_item("rtt_max", max.map(|d| d.as_secs_f64()))?;
        stats::add_budget(&dict, &self.shared.common.budget.stats())?;
        Ok(dict)
    }

    /// Statistics of each live connection, by cid.
    fn connection_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for conn in self.shared.connections() {
            dict.set_item(conn.cid, stats::connection(py, &conn.stats())?)?;
        }
        Ok(dict)
    }

    /// A new unique client id.
    fn gen_cid(&self) -> u64 {
        self.shared.gen_cid()
    }

    /// The handle of a live connection.
    fn connection<'py>(&self, py: Python<'py>, cid: u64) -> PyResult<Option<Bound<'py, PyAny>>> {
        let side = Side::Server(self.shared.clone());
        self.shared
            .conn(cid)
            .map(|conn| side.handle(py, &conn))
            .transpose()
    }
}

/// The core of a `Client`.
#[pyclass(extends = PeerCore, frozen, module = "peng3dnet._core")]
pub(crate) struct ClientCore {
    shared: Arc<ClientShared>,
}

#[pymethods]
impl ClientCore {
    #[new]
    #[pyo3(signature = (target_conntype, autosync = true, require_same_names = true))]
    fn py_new(
        target_conntype: String,
        autosync: bool,
        require_same_names: bool,
    ) -> PyClassInitializer<Self> {
        let shared = ClientShared::new(ClientOptions {
            target_conntype,
            autosync,
            require_same_names,
        });
        PyClassInitializer::from(PeerCore::new(Side::Client(shared.clone())))
            .add_subclass(ClientCore { shared })
    }

    /// Sets the handshake options.
    fn set_options(&self, target_conntype: String, autosync: bool, require_same_names: bool) {
        self.shared.set_options(ClientOptions {
            target_conntype,
            autosync,
            require_same_names,
        });
    }

    /// Changes whenever the handshake re-numbered the table.
    #[getter]
    fn table_epoch(&self) -> u64 {
        self.shared.table_epoch()
    }

    /// The table as `(name, id)` pairs.
    fn table(&self) -> Vec<(String, u32)> {
        let table = self.shared.common.table().read_anyway();
        table
            .entries()
            .map(|(name, id)| (name.to_owned(), id))
            .collect()
    }

    /// Uses TLS for the next connection (`enabled`), with these files and checks (see
    /// `net.ssl.*` in the README); raises `TLSConfigError` for unusable options.
    // One keyword argument per `net.ssl.*` option reads best from Python.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (enabled, *, ca = None, require_verified = false, check_hostname = false, certfile = None, keyfile = None))]
    fn configure_tls(
        &self,
        py: Python<'_>,
        enabled: bool,
        ca: Option<PathBuf>,
        require_verified: bool,
        check_hostname: bool,
        certfile: Option<PathBuf>,
        keyfile: Option<PathBuf>,
    ) -> PyResult<()> {
        let tls = if enabled {
            let options = ClientTlsOptions {
                ca,
                require_verified,
                check_hostname,
                certfile,
                keyfile,
            };
            Some(ClientTls::load(&options).map_err(|err| errors::tls_config_error(py, &err))?)
        } else {
            None
        };
        self.shared.set_tls(tls);
        Ok(())
    }

    /// Connects (without the GIL) to the first address that accepts; returns the
    /// connection's handle. The handshake then runs in the background.
    fn connect<'py>(
        &self,
        py: Python<'py>,
        addrs: Vec<Bound<'py, PyTuple>>,
        timeout: f64,
        host: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let addrs = socket_addrs(addrs)?;
        let timeout = duration(Some(timeout))?.unwrap_or(Duration::from_secs(30));
        let shared = self.shared.clone();
        // The first step never blocks; the GIL is released only to wait (see dial.rs).
        let result = match dial::start_first(&addrs) {
            Dial::Established(stream) if !shared.uses_tls() => shared.connect_established(stream),
            first => py.detach(move || shared.connect_after(first, &addrs, timeout, &host)),
        };
        match result {
            Ok(conn) => Side::Client(self.shared.clone()).handle(py, &conn),
            Err(err) => {
                self.shared.connect_failed(format!("connectfailed: {err}"));
                Err(errors::connect_error(py, err))
            }
        }
    }

    /// Connects to the server of this process on `memory:name`; returns the
    /// connection's handle. The handshake then runs in the background.
    fn connect_memory<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        match self.shared.connect_memory(name) {
            Ok(conn) => Side::Client(self.shared.clone()).handle(py, &conn),
            Err(err) => {
                self.shared.connect_failed(format!("connectfailed: {err}"));
                Err(errors::memory_error(err))
            }
        }
    }

    /// The connection's handle, once connected.
    #[getter]
    fn connection<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let side = Side::Client(self.shared.clone());
        self.shared
            .conn()
            .map(|conn| side.handle(py, &conn))
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
        let done = |status: &ClientStatus, state: Option<u32>| {
            status.closed.is_some() || state.is_some_and(is_active_state)
        };
        let status = settled_or_wait(py, &self.shared, timeout, done).0;
        let active = self
            .shared
            .conn()
            .is_some_and(|c| is_active_state(c.state()) && !c.is_finished());
        Ok((active, status.closed.is_some(), status.closed.flatten()))
    }

    /// Waits (without the GIL) until the connection is over; returns whether it is.
    #[pyo3(signature = (timeout = None))]
    fn wait_for_close(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = duration(timeout)?;
        let done = |status: &ClientStatus, _: Option<u32>| status.closed.is_some();
        Ok(settled_or_wait(py, &self.shared, timeout, done).1)
    }

    /// Ends the connection at once (unless it is closing gracefully) and wakes waiters.
    #[pyo3(signature = (reason = None))]
    fn stop(&self, reason: Option<String>) {
        self.shared.stop(reason);
    }
}

/// `shared.wait_until(timeout, done)`, looking first with the GIL held: a condition that
/// holds already is answered without releasing the GIL (which another Python thread
/// may then keep for a while: a wave of clients waits for handshakes mostly done).
fn settled_or_wait<F>(
    py: Python<'_>,
    shared: &Arc<ClientShared>,
    timeout: Option<Duration>,
    done: F,
) -> (ClientStatus, bool)
where
    F: Fn(&ClientStatus, Option<u32>) -> bool + Send + Sync,
{
    let now = shared.wait_until(Some(Duration::ZERO), &done);
    if now.1 || timeout == Some(Duration::ZERO) {
        return now;
    }
    let shared = shared.clone();
    py.detach(move || shared.wait_until(timeout, done))
}
