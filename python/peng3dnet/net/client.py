"""The client side: :class:`Client`, one connection to a server."""

import selectors
import threading
import time

from .. import _core, errors
from .._hooks import library_default
from .._hooks import overrides as _overrides
from ..constants import (
    CONNTYPE_CLASSIC,
    CONNTYPE_NOTSET,
    MODE_CLOSED,
    MODE_NOTSET,
    SIDE_CLIENT,
    SSLSEC_NONE,
    STATE_ACTIVE,
    STATE_CLOSED,
    STATE_INIT,
)
from ._common import (
    _send_hooks_act,
    _ssl_state,
    log,
)
from ._peer import _Peer, _resolve
from ._send import _ASK_REGISTRY


class Client(_Peer):
    """The client side: one connection to a server.

    ``peng``, ``addr`` and ``cfg`` work as for :class:`Server`, with the
    ``net.client.addr*`` options. ``conntype`` names the connection type to ask the
    server for; it must be registered on both sides (``"classic"`` always is).
    """

    _side_key = "client"
    _event_prefix = "peng3dnet:client"

    def __init__(self, peng=None, addr=None, cfg=None, conntype=CONNTYPE_CLASSIC):
        self._core = _core.ClientCore(conntype)
        self._setup(peng, cfg, addr, "net.client.addr")
        self.is_client = True
        self.is_server = False
        self.side = SIDE_CLIENT
        self.target_conntype = conntype
        self.mode = MODE_NOTSET
        self._conn = None
        self._closed = False
        self._close_reason = None
        self._handshake_dispatched = False
        self._table_epoch = 0
        self._sock_lock = threading.Lock()
        self._is_connected = False

    # --- state ---------------------------------------------------------------------

    @property
    def remote_state(self):
        """``STATE_*`` of the connection."""
        if self.__dict__.get("_closed"):
            return STATE_CLOSED
        conn = self.__dict__.get("_conn")
        return conn.state if conn is not None else STATE_INIT

    @remote_state.setter
    def remote_state(self, value):
        conn = self.__dict__.get("_conn")
        if conn is not None:
            conn.set_state(value)

    @property
    def conntype(self):
        """The connection type in use: ``target_conntype`` once it was sent to the server."""
        conn = self.__dict__.get("_conn")
        return conn.conntype if conn is not None else CONNTYPE_NOTSET

    @conntype.setter
    def conntype(self, value):
        conn = self.__dict__.get("_conn")
        if conn is not None:
            conn.set_conntype(value)

    @property
    def ssl_seclevel(self):
        """``SSLSEC_*`` level of the connection."""
        conn = self.__dict__.get("_conn")
        return conn.ssl_seclevel if conn is not None else SSLSEC_NONE

    @property
    def ssl_state(self):
        """``"connected"`` once a TLS handshake completed, else ``"handshake"`` (as in
        the original, also for connections without TLS)."""
        return _ssl_state(self.ssl_seclevel)

    def _running(self):
        return self._is_connected

    def _connection_of(self, cid=None):
        if self._conn is None:
            raise ConnectionError("the client is not connected; call connect() or runAsync() first")
        return self._conn

    def _sync_registry(self):
        epoch = self._core.table_epoch
        if epoch != self._table_epoch:
            self._table_epoch = epoch
            self.registry._adopt_ids(self._core.table())

    _before_dispatch = _sync_registry

    def _await_closing(self):
        # A close_connection just before stop(): its close packet is being written; its
        # end (and so on_close with this client's reason) follows within moments.
        conn = self._conn
        if conn is not None and conn.closing and not conn.finished:
            self._core.wait_for_close(min(float(self.cfg["net.timeout.close"]), 2.0))

    # --- connecting ----------------------------------------------------------------

    def connect(self):
        """Connect to the server (and :meth:`initialize` first if needed). Later calls do
        nothing. The handshake then runs in the background: see
        :meth:`wait_for_connection`. Raises ``OSError`` (e.g. ``ConnectionRefusedError``)
        if the server cannot be reached."""
        if self._is_connected:
            return
        if not self._is_initialized:
            self.initialize()
        with self._sock_lock:
            if self._is_connected:
                return
            if self.target_conntype not in self.conntypes:
                raise errors.RegistryError(
                    f"connection type {self.target_conntype!r} is not registered on this client; "
                    "register it with addConnType() (or a _reg_conntypes_* method) before connecting"
                )
            self._core.configure(**self._settings())
            cfg = self.cfg
            self._core.configure_tls(
                bool(cfg["net.ssl.enabled"]) and self._memory_name is None,
                # The original trusted the server's certificate file; keep that fallback.
                ca=cfg["net.ssl.cafile"] or cfg["net.ssl.server.certfile"],
                require_verified=bool(cfg["net.ssl.client.force_verify"]),
                check_hostname=bool(cfg["net.ssl.client.check_hostname"]),
                certfile=cfg["net.ssl.client.certfile"],
                keyfile=cfg["net.ssl.client.keyfile"],
            )
            self._configure_recv()
            self._core.set_options(
                self.target_conntype,
                bool(self.cfg["net.registry.autosync"]),
                self.cfg["net.registry.missingpacketaction"] == "closeconnection",
            )
            if self._memory_name is not None:
                self._conn = self._core.connect_memory(self._memory_name)
            else:
                addrs = _resolve(self.addr, passive=False)
                self._conn = self._core.connect(
                    addrs, float(self.cfg["net.timeout.connect"]), str(self.addr[0])
                )
            self.sock = self._conn
            self._is_connected = True
        self.sendEvent("peng3dnet:client.connect", {"addr": tuple(self.addr), "sock": self.sock})

    @library_default
    def runBlocking(self, selector=selectors.DefaultSelector):
        """Connect and keep the client running until :meth:`stop` is called.

        ``selector`` is accepted for compatibility and ignored."""
        # runAsync has started everything already when its thread gets here.
        if threading.current_thread() is not self._run_thread and not self._start():
            return
        self._stopped.wait()

    def runAsync(self, selector=selectors.DefaultSelector):
        """Connect and return; the client then runs in the background until
        :meth:`stop`.

        Connecting happens before this method returns, so connection errors are raised
        here. The native core does the client's I/O, so no thread is needed: one is
        started (a daemon thread named ``peng3dnet Client Thread``, as in the original)
        only to run a ``runBlocking`` that the app replaced."""
        if not self._start():
            return
        if _overrides(self, "runBlocking"):
            self._run_thread = threading.Thread(
                name="peng3dnet Client Thread", target=self.runBlocking, args=[selector], daemon=True
            )
            self._run_thread.start()

    def _start(self):
        self.initialize()
        self.connect()
        with self._init_lock:
            if self._is_started:
                return False
            self._is_started = True
        self.sendEvent("peng3dnet:client.start", {})
        return True

    def stop(self):
        """Stop the client. An open connection ends at once unless a graceful close
        (:meth:`close_connection`) is under way, which then completes."""
        self.run = False
        self._core.stop("clientstop")
        self.sendEvent("peng3dnet:client.stop", {"reason": "method"})
        self.interrupt()
        self._stopped.set()

    def wait_for_connection(self, timeout=None):
        """Wait up to ``timeout`` seconds (forever if None) for the handshake to complete.

        Returns at once if the connection is active. Raises
        :class:`~peng3dnet.errors.TimedOutError` on timeout, and
        :class:`~peng3dnet.errors.ConnectionClosedError` (a ``TimedOutError``) if the
        connection closed or could not be made first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        active, closed, reason = self._core.wait_for_connection(timeout)
        if active:
            self._sync_registry()
            # With a process loop running, also let on_handshake_complete run first.
            self._wait_dispatched(lambda: self._handshake_dispatched or self._closed, deadline)
            return
        if closed:
            raise errors.ConnectionClosedError(
                f"the connection closed before the handshake completed (reason: {reason})", reason
            )
        raise errors.TimedOutError(f"no connection was established within {timeout} seconds")

    def wait_for_close(self, timeout=None):
        """Wait up to ``timeout`` seconds (forever if None) for the connection to close;
        returns at once if it is closed. Raises :class:`~peng3dnet.errors.TimedOutError`
        on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._core.wait_for_close(timeout):
            raise errors.TimedOutError(f"the connection did not close within {timeout} seconds")
        # With a process loop running, also let on_close run first.
        self._wait_dispatched(lambda: self._closed, deadline)

    # --- sending -------------------------------------------------------------------

    def send_message(self, ptype, data, cid=None):
        """Send ``data`` as a packet of type ``ptype`` (id, name or packet object) to the
        server. ``cid`` is ignored. Safe to call from any thread; returns once queued.

        As in the original, unless the connection type's ``send`` claims the packet,
        ``on_send``, the send event and the packet's ``_send`` run first, with the
        message (a SmartPacket's conditions decide there whether its ``send`` hook runs
        and whether ``invalid_action`` applies); then the packet is queued."""
        if self.cfg["net.debug.print.send"]:  # _debugging_send(), inline
            self._debug("send", f"SEND {ptype}")
        if self._core.table_epoch != self._table_epoch:
            self._sync_registry()
        conn = self._conn
        if conn is None:
            conn = self._connection_of()
        pid, pkt, internal, pkt_sees, special = self._lookup(ptype)
        # conntypes.overriding(target, "send"), inline (this runs for every packet).
        ct = None if internal else self.conntypes.get(self.target_conntype)
        if ct is not None and not _overrides(ct, "send"):
            ct = None
        if ct is None or not ct.send(data, ptype, cid):
            if "on_send" in self._own_hooks or "on_send" in self.__dict__:
                self.on_send(ptype, data)
            if (
                (self.peng is not None and self._events_on())
                or "sendEvent" in self._own_hooks
                or "sendEvent" in self.__dict__
            ):
                self.sendEvent("peng3dnet:client.send", {"pid": ptype, "data": data})
            if pkt is _ASK_REGISTRY:
                pkt = self.registry.getObj(ptype)
                if pkt is not None:
                    pkt._send(data)
            elif pkt is not None and _send_hooks_act(pkt, pkt_sees):
                pkt._send(data)
        if self._replaying is None or self._replayed_frame(data) is None:
            if special:
                self._transmit(conn, pid, ptype, data, pkt, False)
            elif conn.send(pid, data, False) is False:
                log.debug("packet %s on a closing connection dropped", ptype)
        if "pump_write_buffer" in self._own_hooks or "pump_write_buffer" in self.__dict__:
            self.pump_write_buffer()

    @library_default
    def pump_write_buffer(self):
        """Kept for compatibility (called after each send, as in the original): the
        native core writes queued packets on its own."""

    @library_default
    def receive_data(self, data, cid=None):
        """Feed raw bytes (length-prefixed packets, possibly partial) to the connection as
        if they had been read from its socket; each complete packet goes through
        :meth:`process_single_packet`. ``cid`` is ignored."""
        self._feed(data, None, self.process_single_packet)

    @library_default
    def process_single_packet(self, client=None):
        """Hand one complete packet of the bytes fed via :meth:`receive_data` to
        :meth:`receive_packet`, if there is one. ``client`` is ignored."""
        frame = self._take_injected_packet(None)
        if frame is not None:
            self.receive_packet(frame)

    @library_default
    def receive_packet(self, data, cid=None):
        """One raw packet (header and body, no length prefix): dispatched by
        :meth:`process`, as if it had been read from the connection. ``cid`` is ignored."""
        self._packet_arrived(data, None)

    def stats(self):
        """A snapshot of the connection's statistics (a new dict; cheap to take), or
        None before :meth:`connect`.

        ``packets_in``, ``packets_out``, ``bytes_in``, ``bytes_out`` (on the wire),
        ``payload_in``, ``payload_out`` (msgpack bodies before compression),
        ``compression_in``, ``compression_out`` (wire body bytes per payload byte; 1.0
        without compression), ``queued_bytes`` (waiting to be sent), ``direct_reads``
        (socket reads done by the thread waiting for events), ``uptime``,
        ``handshake_time`` and ``rtt`` (the last round-trip estimate: from the
        handshake, then from each heartbeat) in seconds (None until known), and
        ``heartbeat`` (whether heartbeats run on the connection). The memory budget
        (see :meth:`Server.stats`): ``memory_held`` by the connection,
        ``memory_budget``, ``memory_used``, ``memory_peak``, ``memory_evictions``,
        ``memory_pressure``."""
        if self._conn is None:
            return None
        stats = self._conn.stats()
        stats.update(self._core.memory_stats())
        return stats

    def recv(self, ptype=None, timeout=None):
        """Wait for the next message (of type ``ptype``: id, name or packet object, if
        given) from the server; returns ``(name, msg)``. Raises
        :class:`~peng3dnet.errors.TimedOutError` after ``timeout`` seconds (forever if
        None). See the README for which messages ``recv`` sees."""
        _, name, msg = self._recv(ptype, timeout)
        return name, msg

    def close_connection(self, cid=None, reason=None):
        """Close the connection: packets already queued are sent first, then the close
        packet with the reason, which the server receives. The close packet goes
        through :meth:`send_message`, as in the original. ``cid`` is ignored."""
        self.send_message("peng3dnet:internal.closeconn", {"reason": reason})

    def close(self, reason=None):
        """Close the connection at once, without telling the server why (see
        :meth:`close_connection`), and be done with it: the close event, mode
        ``MODE_CLOSED``, ``on_close`` (once).

        As in the original, this is also what runs when the connection ends for any
        other reason (the server's close packet, a lost connection), with that reason.
        """
        self._debug("close", f"CLOSE because of {reason}")
        self.sendEvent("peng3dnet:client.close", {"reason": reason})
        self.mode = MODE_CLOSED
        conn = self._conn
        if conn is not None and not conn.finished:
            conn.abort(reason)
        if not self._closed:
            try:
                self.on_close(reason)
            finally:
                self._closed = True
                self._notify_dispatched()

    # --- dispatch ------------------------------------------------------------------

    _recv_event = "peng3dnet:client.recv"

    def _event_cid(self, cid):
        return None

    def _receiver(self, cid):
        return self

    def _conntype_of(self, receiver):
        return self.target_conntype  # as the original: the type it asked for

    def _recv_event_data(self, receiver, pid, msg):
        return {"pid": pid, "msg": msg}

    def _connection_opened(self, cid, conn):
        self._debug("connect", f"CONNECT to {self.addr}")
        self.on_connect()

    def _handshake_completed(self, receiver):
        self._sync_registry()
        try:
            self.on_handshake_complete()
        finally:
            self._handshake_dispatched = True
            self._notify_dispatched()

    def _connection_closed(self, cid, core_cid, reason):
        self._close_reason = reason
        try:
            if not self._closed:
                self.close(reason)
        finally:
            self._closed = True
            self._notify_dispatched()

    # --- hooks ---------------------------------------------------------------------

    def on_connect(self):
        """Called once connected (the handshake is still running)."""

    def on_handshake_complete(self):
        """Called when the handshake is complete: sends the ``handshakecomplete`` event
        and sets the state to ``STATE_ACTIVE``."""
        self.sendEvent("peng3dnet:client.handshakecomplete", {})
        # The core made the connection active already; keep a state the app set since.
        if self.remote_state < STATE_ACTIVE:
            self.remote_state = STATE_ACTIVE

    @library_default
    def on_receive(self, ptype, msg):
        """Called for every packet received (after its handler)."""

    @library_default
    def on_send(self, ptype, msg):
        """Called for every packet sent; ``msg`` is the message object."""

    def on_close(self, reason=None):
        """Called once when the connection is closed, with the reason given by either side."""
