"""The server side: :class:`Server`, the :class:`ClientOnServer` that stands for each
connection, and what ``ClientOnServer.write_queue`` and ``Server.sock`` are."""

import selectors
import threading
import time

from .. import _core
from .._hooks import library_default
from .._hooks import overrides as _overrides
from .._hooks import redefined as _redefined
from ..constants import (
    CONNTYPE_NOTSET,
    MODE_CLOSED,
    MODE_NOTSET,
    SIDE_SERVER,
    SSLSEC_NONE,
    STATE_ACTIVE,
    STATE_CLOSED,
    STATE_INIT,
)
from ..packet import SmartPacket
from ._common import (
    _send_hooks_act,
    _ssl_state,
    log,
)
from ._peer import _Peer, _resolve
from ._send import _ASK_REGISTRY


class _ListeningSocket:
    """What ``Server.sock`` is once bound: the listening socket's address and handle."""

    def __init__(self, server, sockname):
        self._server = server
        self._sockname = sockname

    def getsockname(self):
        """The bound address; the real port if the server was bound to port 0."""
        return self._sockname

    def fileno(self):
        """The listening socket's OS handle (-1 once closed)."""
        return self._server._core.listener_fileno()

    def close(self):
        """Stop the server (and with it the listening socket)."""
        self._server.stop()

    def __repr__(self):
        return f"<peng3dnet listening socket {self._sockname}>"


class Server(_Peer):
    """The server side: accepts many clients at once.

    ``peng`` is a peng3d app object (anything with ``cfg`` and ``sendEvent``) used for
    events and as the configuration's fallback; without one, events are off unless
    ``net.events.enable`` says otherwise. ``addr`` is where to listen; if not given,
    ``net.server.addr`` is used, else ``net.server.addr.host`` and ``.port``; a missing
    port is taken from ``net.server.addr.port``. ``clientcls`` is the class that
    represents each connection (default :class:`ClientOnServer`); ``cfg`` overrides
    configuration values.
    """

    _side_key = "server"
    _event_prefix = "peng3dnet:server"

    def __init__(self, peng=None, addr=None, clientcls=None, cfg=None):
        self._core = _core.ServerCore()
        self._setup(peng, cfg, addr, "net.server.addr")
        self.is_client = False
        self.is_server = True
        self.side = SIDE_SERVER
        self.clientcls = clientcls if clientcls is not None else ClientOnServer
        self.clients = {}
        self._sock_lock = threading.Lock()
        self._is_bound = False
        # Client ids given by an app's genCID where they differ from the core's.
        self._app_cids = {}

    def bind(self):
        """Create the listening socket. Later calls do nothing.

        Binding to port 0 picks a free port: ``server.sock.getsockname()`` tells which.
        """
        if self._is_bound:
            return
        with self._sock_lock:
            if self._is_bound:
                return
            self._core.configure(**self._settings())
            cfg = self.cfg
            if self._memory_name is None:
                # In-process connections never leave the process: there is nothing to
                # encrypt, so TLS options do not apply to them.
                self._core.configure_tls(
                    bool(cfg["net.ssl.enabled"]),
                    certfile=cfg["net.ssl.server.certfile"],
                    keyfile=cfg["net.ssl.server.keyfile"],
                    client_ca=cfg["net.ssl.cafile"],
                    require_client_cert=bool(cfg["net.ssl.server.force_verify"]),
                )
            self._core.set_max_connections(int(self.cfg["net.limits.max_connections"]))
            self._configure_recv()
            if self._memory_name is not None:
                bound = self._core.bind_memory(self._memory_name)
            else:
                bound = self._core.bind(_resolve(self.addr, passive=True))
            self.sock = _ListeningSocket(self, bound)
            self._is_bound = True
        self.sendEvent("peng3dnet:server.bind", {"addr": tuple(self.addr)})

    def runBlocking(self, selector=selectors.DefaultSelector):
        """Initialize, bind and serve until :meth:`stop` is called.

        ``selector`` is accepted for compatibility and ignored: the native core does its
        own waiting."""
        # runAsync has started everything already when its thread gets here.
        if threading.current_thread() is not self._run_thread and not self._start():
            return
        self._stopped.wait()

    def runAsync(self, selector=selectors.DefaultSelector):
        """Like :meth:`runBlocking`, in a daemon thread named ``peng3dnet Server Thread``.

        Binding happens before this method returns, so a bind error is raised here and
        ``server.sock`` is ready as soon as it returns."""
        if not self._start():
            return
        self._run_thread = threading.Thread(
            name="peng3dnet Server Thread", target=self.runBlocking, args=[selector], daemon=True
        )
        self._run_thread.start()

    def _start(self):
        self.initialize()
        self.bind()
        with self._init_lock:
            if self._is_started:
                return False
            self._core.start()
            self._is_started = True
        self.sendEvent("peng3dnet:server.start", {})
        return True

    def stop(self):
        """Stop serving: stop accepting and end the open connections at once (connections
        already closing gracefully finish their close). Use :meth:`shutdown` to tell
        clients why."""
        self.run = False
        self._core.stop("serverstop")
        self.sendEvent("peng3dnet:server.stop", {"reason": "method"})
        self.interrupt()
        self._stopped.set()

    def shutdown(self, join=True, timeout=0, reason="servershutdown"):
        """Close every connection with ``reason`` (delivered to each client), then stop.

        With ``join``, wait until the clients are gone or ``timeout`` seconds passed (0
        means up to ``net.timeout.shutdown``), and for this server's threads."""
        started = time.monotonic()
        for cid in list(self.clients):
            try:
                self.close_connection(cid, reason)
            except Exception:
                log.exception("closing connection %s during shutdown failed", cid)
        self._core.close_all(reason)
        if join:
            limit = timeout if timeout else float(self.cfg["net.timeout.shutdown"])
            self._core.wait_all_gone(limit)
        self.stop()
        self.sendEvent("peng3dnet:server.shutdown", {"reason": reason, "join": join, "timeout": timeout})
        if join:
            remaining = (timeout if timeout else float(self.cfg["net.timeout.shutdown"])) - (
                time.monotonic() - started
            )
            self.join(max(remaining, 0))

    @library_default
    def genCID(self):
        """A client id never used before by this server.

        Called once for each accepted connection (as in the original): an override may
        give its own ids, which then stand for the connection everywhere."""
        accepting = self.__dict__.get("_accepting_cid")
        if accepting is not None:
            # The core has numbered the connection being accepted; that is its id.
            self._accepting_cid = None
            return accepting
        return self._core.gen_cid()

    @library_default
    def receive_data(self, data, cid):
        """Feed raw bytes (length-prefixed packets, possibly partial) to connection
        ``cid``; each complete packet goes through :meth:`process_single_packet`."""
        client = self.clients[cid]
        self._feed(data, cid, lambda: self.process_single_packet(client))

    @library_default
    def process_single_packet(self, client):
        """Hand one complete packet of the bytes fed to ``client`` (a ClientOnServer) via
        :meth:`receive_data` to :meth:`receive_packet`, if there is one."""
        frame = self._take_injected_packet(client.cid)
        if frame is not None:
            self.receive_packet(frame, client.cid)

    @library_default
    def receive_packet(self, data, cid):
        """One raw packet (header and body, no length prefix) from connection ``cid``:
        dispatched by :meth:`process`, as if it had been read from the connection."""
        self._packet_arrived(data, cid)

    def _connection_of(self, cid):
        client = self.clients.get(cid)
        conn = client.conn if client is not None else self._core.connection(cid)
        if conn is None:
            raise KeyError(f"there is no connection with client id {cid!r}")
        return conn

    def send_message(self, ptype, data, cid):
        """Send ``data`` as a packet of type ``ptype`` (id, name or packet object) to
        client ``cid``. Safe to call from any thread; returns once the packet is queued.

        As in the original, the packet is queued first; then, unless the connection
        type's ``send`` claims it, ``on_send``, the send event and the packet's ``_send``
        run with the encoded frame (where a SmartPacket's conditions decide whether its
        ``send`` hook runs and whether ``invalid_action`` applies)."""
        if self._debugging_send():
            self._debug("send", f"SEND {ptype} to {cid}")
        client = self.clients.get(cid)
        conn = client.conn if client is not None else self._connection_of(cid)
        pid, pkt, internal, pkt_sees, special = self._lookup(ptype)
        events = (
            (self.peng is not None and self._events_on())
            or "sendEvent" in self._own_hooks
            or "sendEvent" in self.__dict__
        )
        ct = None if internal else self.conntypes.overriding(conn.conntype, "send")
        ct_send = ct is not None
        own_on_send = client is not None and (client._own_on_send or "on_send" in client.__dict__)
        pkt_hooks = pkt is not None and _send_hooks_act(pkt, pkt_sees)
        # The frame is made for the hooks only if one of them is not the library's no-op.
        want_frame = events or ct_send or own_on_send or pkt_hooks
        frame = None if self._replaying is None else self._replayed_frame(data)
        if frame is None:
            if special:
                frame = self._transmit(conn, pid, ptype, data, pkt, want_frame)
            else:
                frame = conn.send(pid, data, want_frame)
            if frame is None or frame is False:
                return
        if ct_send and ct.send(frame, ptype, cid):
            return
        # Hooks that are the library's no-ops are skipped (see _send_hooks_act).
        if own_on_send:
            client.on_send(ptype, frame)
        if events:
            self.sendEvent(
                "peng3dnet:server.connection.send", {"client": client, "pid": ptype, "data": frame}
            )
        if pkt is _ASK_REGISTRY:
            pkt = self.registry.getObj(ptype)
            pkt_hooks = pkt is not None
        if pkt_hooks:
            pkt._send(frame, cid)

    def stats(self, clients=False):
        """A snapshot of the server's statistics (a new dict; cheap to take).

        Totals over every connection since the server started: ``packets_in``,
        ``packets_out``, ``bytes_in``, ``bytes_out`` (on the wire), ``payload_in``,
        ``payload_out`` (msgpack bodies before compression), ``compression_in``,
        ``compression_out`` (wire body bytes per payload byte; 1.0 without
        compression). The live connections: ``connections``, ``queued_bytes``,
        ``rtt_mean``, ``rtt_max`` (seconds, None without estimates). Also ``accepted``
        and ``refused`` connections. The memory budget (``net.limits.memory``):
        ``memory_budget`` (the limit), ``memory_used`` (bytes held now for partial
        frames, inflating bodies, packets waiting for :meth:`process` and queued
        sends), ``memory_peak``, ``memory_evictions`` (connections dropped with
        "memorylimit") and ``memory_pressure`` (whether reading is paused for lack of
        memory now). With ``clients=True``, ``clients`` maps each live cid to its
        connection's statistics (see :meth:`Client.stats`; ``memory_held`` is what
        each holds)."""
        stats = self._core.stats()
        if clients:
            stats["clients"] = self._core.connection_stats()
        return stats

    def recv(self, ptype=None, timeout=None):
        """Wait for the next message (of type ``ptype``: id, name or packet object, if
        given) from any client; returns ``(cid, name, msg)``. Raises
        :class:`~peng3dnet.errors.TimedOutError` after ``timeout`` seconds (forever if
        None). See the README for which messages ``recv`` sees."""
        return self._recv(ptype, timeout)

    def close_connection(self, cid, reason=None):
        """Close the connection to client ``cid``: packets already queued are sent first,
        then the close packet with the reason, which the client receives. The close
        packet goes through :meth:`send_message`, as in the original."""
        self.send_message("peng3dnet:internal.closeconn", {"reason": reason}, cid)

    # --- broadcast and groups (additions; not in the original) ----------------------

    def broadcast(self, ptype, data, cids=None, exclude=()):
        """Send ``data`` as a packet of type ``ptype`` to many clients at once; returns
        how many it was queued to.

        Recipients: every client whose handshake is complete (``cids=None``) or those of
        ``cids``, minus ``exclude`` (a cid or an iterable of cids). The message is encoded
        once and queued to each recipient's own write queue, so a slow client delays no
        one else. A SmartPacket's conditions are checked for each recipient; a client
        whose connection type overrides ``send`` gets the packet through
        :meth:`send_message`. The per-message hooks (``on_send``, the packet's ``send``)
        are not called: they belong to :meth:`send_message`.
        """
        pid, pkt, internal = self._packet_id(ptype)
        if internal:
            raise ValueError(f"internal packet {ptype!r} cannot be broadcast")
        excluded = {exclude} if isinstance(exclude, int) else set(exclude)
        smart = isinstance(pkt, SmartPacket)
        together, one_by_one = [], []
        own_send = {}  # connection type name -> whether it overrides send (asked once each)
        for cid in list(self.clients) if cids is None else cids:
            client = self.clients.get(cid)
            if client is None or cid in excluded or not STATE_ACTIVE <= client.state < STATE_CLOSED:
                continue
            if smart and not pkt._may_send(cid):
                continue
            name = client.conntype
            if name not in own_send:
                own_send[name] = self.conntypes.overriding(name, "send") is not None
            if own_send[name]:
                one_by_one.append(cid)
            else:
                together.append(client.conn.cid)  # the core's id (an app's genCID may differ)
        sent = self._core.broadcast(pid, data, together) if together else 0
        for cid in one_by_one:
            self.send_message(ptype, data, cid)
        return sent + len(one_by_one)

    def _group_table(self):
        return self.__dict__.setdefault("_groups", {})

    def join_group(self, cid, name):
        """Add client ``cid`` to group ``name`` (created on first use). Membership ends
        when the connection closes."""
        if cid not in self.clients:
            raise KeyError(f"there is no connected client with id {cid!r}")
        self._group_table().setdefault(name, set()).add(cid)

    def leave_group(self, cid, name):
        """Remove client ``cid`` from group ``name`` (nothing happens if it is not in it)."""
        table = self._group_table()
        members = table.get(name)
        if members is not None:
            members.discard(cid)
            if not members:
                table.pop(name, None)

    def groups_of(self, cid):
        """The names of the groups client ``cid`` is in."""
        return {name for name, members in list(self._group_table().items()) if cid in members}

    def members(self, name):
        """The client ids in group ``name`` (empty if there is no such group)."""
        return set(self._group_table().get(name, ()))

    def send_group(self, name, ptype, data, exclude=()):
        """:meth:`broadcast` to the members of group ``name``; returns how many got it."""
        return self.broadcast(ptype, data, cids=sorted(self.members(name)), exclude=exclude)

    # --- dispatch ------------------------------------------------------------------

    _recv_event = "peng3dnet:server.connection.recv"

    def _event_cid(self, cid):
        # An app's genCID may have given the connection another id than the core's.
        return self._app_cids.get(cid, cid) if self._app_cids else cid

    def _receiver(self, cid):
        return self.clients.get(cid)

    def _conntype_of(self, receiver):
        return receiver.conntype

    def _recv_event_data(self, receiver, pid, msg):
        return {"client": receiver, "pid": pid, "msg": msg}

    def _connection_opened(self, cid, conn):
        addr = conn.getpeername()
        if _overrides(self, "genCID"):
            self._accepting_cid = cid
            try:
                own = self.genCID()
            finally:
                self._accepting_cid = None
            if own != cid:
                self._app_cids[cid] = own
                cid = own
        client = self.clientcls(self, conn, addr, cid)
        # Asked for every packet sent to it (whether on_send needs the frame).
        client._own_on_send = "on_send" in _redefined(type(client))
        self.clients[cid] = client
        self._debug("connect", f"CONNECT {cid} from {addr}")
        client.on_connect()
        self.sendEvent(
            "peng3dnet:server.connection.accept",
            {"sock": conn, "addr": addr, "client": client, "cid": cid},
        )

    def _handshake_completed(self, client):
        client.on_handshake_complete()

    def _connection_closed(self, cid, core_cid, reason):
        client = self.clients.get(cid)
        try:
            if client is not None:
                client.close(reason)
        finally:
            # Whatever an overridden close did, the connection is gone.
            if self.clients.get(cid) is client:
                self.clients.pop(cid, None)
            self._app_cids.pop(core_cid, None)
            for name in self.groups_of(cid):
                self.leave_group(cid, name)


class WriteQueue:
    """``ClientOnServer.write_queue``: the frames waiting to be sent to a client.

    In the original this was a deque of encoded frames that its I/O loop wrote. Here
    the native core holds them; this view keeps the two uses apps have for it:
    ``append(frame)`` queues an encoded frame (length prefix, header, body) after
    everything already queued, and ``len()`` is how much is waiting, in bytes (the core
    writes frames in batches, so it counts bytes, not frames).
    """

    __slots__ = ("_conn",)

    def __init__(self, conn):
        self._conn = conn

    def append(self, frame):
        """Queue an encoded frame; returns False if the connection is closing."""
        return self._conn.queue(bytes(frame))

    def __len__(self):
        return self._conn.queued_bytes


class ClientOnServer:
    """One connection as the server sees it; subclass it and pass ``clientcls`` to the
    server to keep per-client data and override the ``on_*`` hooks.

    ``server`` is the server, ``conn`` the connection (it has ``getpeername()``,
    ``getsockname()`` and ``fileno()``), ``addr`` the client's address, ``cid`` its id.
    """

    _own_on_send = True  # set by the server for each connection (see Server._dispatch)

    def __init__(self, server, conn, addr, cid):
        self.server = server
        self.conn = conn
        self.addr = addr
        self.cid = cid
        self.name = None
        self.mode = MODE_NOTSET
        self._closed = False

    # Connection state lives in the native core, which moves it through the handshake.
    @property
    def state(self):
        """``STATE_*`` of the connection."""
        if self.__dict__.get("_closed"):
            return STATE_CLOSED
        conn = self.__dict__.get("conn")
        return conn.state if conn is not None else STATE_INIT

    @state.setter
    def state(self, value):
        self.conn.set_state(value)

    @property
    def conntype(self):
        """Name of the connection type the client chose (``CONNTYPE_NOTSET`` before)."""
        conn = self.__dict__.get("conn")
        return conn.conntype if conn is not None else CONNTYPE_NOTSET

    @conntype.setter
    def conntype(self, value):
        self.conn.set_conntype(value)

    @property
    def ssl_seclevel(self):
        """``SSLSEC_*`` level of the connection."""
        conn = self.__dict__.get("conn")
        return conn.ssl_seclevel if conn is not None else SSLSEC_NONE

    @property
    def ssl_state(self):
        """``"connected"`` once a TLS handshake completed, else ``"handshake"`` (as in
        the original, also for connections without TLS)."""
        return _ssl_state(self.ssl_seclevel)

    @property
    def write_queue(self):
        """What waits to be sent to this client (see :class:`WriteQueue`)."""
        return WriteQueue(self.conn)

    def close(self, reason=None):
        """Close the connection at once, without telling the client why (see
        ``Server.close_connection`` for that), and be done with it: the close event,
        ``on_close`` (once), state and mode ``CLOSED``, removal from ``server.clients``.

        As in the original, this is also what runs when the connection ends for any
        other reason (the client's close packet, a lost connection), with that reason.
        """
        server = self.server
        server._debug("close", f"CLOSE {self.cid} because of {reason}")
        server.sendEvent("peng3dnet:server.connection.close", {"client": self, "reason": reason})
        if not self._closed:
            try:
                self.on_close(reason)
            finally:
                self._closed = True
        self.mode = MODE_CLOSED
        conn = self.__dict__.get("conn")
        if conn is not None and not conn.finished:
            conn.abort(reason)
        if server.clients.get(self.cid) is self:
            del server.clients[self.cid]

    def on_connect(self):
        """Called when the connection is accepted (the handshake is still running)."""

    def on_handshake_complete(self):
        """Called when the handshake is complete: sends the ``handshakecomplete`` event
        and sets the state to ``STATE_ACTIVE``."""
        self.server.sendEvent("peng3dnet:server.connection.handshakecomplete", {"client": self})
        # The core made the connection active already; keep a state the app set since.
        if self.state < STATE_ACTIVE:
            self.state = STATE_ACTIVE

    @library_default
    def on_receive(self, ptype, msg):
        """Called for every packet received from this client (after its handler)."""

    @library_default
    def on_send(self, ptype, msg):
        """Called for every packet sent to this client; ``msg`` is the message object."""

    def on_close(self, reason=None):
        """Called once when the connection is closed, with the reason given by either side."""
