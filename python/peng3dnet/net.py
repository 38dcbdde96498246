"""Servers and clients.

:class:`Server` accepts connections and represents each one by a :class:`ClientOnServer`
(or the ``clientcls`` you give it); :class:`Client` connects to one server. Both are
plain Python classes meant to be subclassed and mixed; the sockets, framing,
compression and the handshake run in the native core on background threads, while
every Python hook (packet handlers, ``on_*`` methods, events) runs in the thread that
calls :meth:`~Server.process` (or in :meth:`~Server.process_async`'s thread).
"""

import collections
import importlib
import logging
import selectors
import socket
import struct
import threading
import time

# conntypes, packet, registry and version are imported as modules too: apps reach them
# as peng3dnet.net.packet.SmartPacket and so on, as they could in the original.
from . import _core, conntypes, errors, packet, registry, util, version  # noqa: F401
from ._config import Config
from ._logs import LazyLogger
from .conntypes import ClassicConnectionType, ConnectionType
from .constants import *  # noqa: F403
from .constants import (
    CONNTYPE_CLASSIC,
    CONNTYPE_NOTSET,
    DEFAULT_CONFIG,
    MODE_CLOSED,
    MODE_NOTSET,
    SIDE_CLIENT,
    SIDE_SERVER,
    SSLSEC_NONE,
    STATE_ACTIVE,
    STATE_CLOSED,
    STATE_INIT,
    STRUCT_FORMAT_HEADER,
    STRUCT_FORMAT_LENGTH32,
)
from .packet import Packet, SmartPacket
from .packet import internal as _internal
from .registry import BaseRegistry, PacketRegistry

__all__ = ["STRUCT_HEADER", "STRUCT_LENGTH32", "Client", "ClientOnServer", "Server"]

STRUCT_HEADER = struct.Struct(STRUCT_FORMAT_HEADER)
"""Precompiled ``struct`` of the packet header (packet id, flags)."""

STRUCT_LENGTH32 = struct.Struct(STRUCT_FORMAT_LENGTH32)
"""Precompiled ``struct`` of the length prefix."""

_log = LazyLogger("peng3dnet.net")

HAVE_SSL = True
"""Whether TLS is available: always, the native core has its own (rustls)."""

_MSGPACK_TYPE = "msgpack-python"  # the original's name for its encoder; ours is byte-identical

# Names the original's module held for its own use: the modules it imported and its
# Python 2 shims. Apps reach a few of them (``peng3dnet.net.ssl``, ``basestring``); the
# modules are imported when first asked for, so that importing peng3dnet stays cheap.
unicode = str
basestring = (str, bytes)
_COMPAT_MODULES = {
    "Queue": "queue",
    "msgpack": "msgpack",
    "selectors": "selectors",
    "ssl": "ssl",
    "sys": "sys",
    "warnings": "warnings",
    "zlib": "zlib",
}
_COMPAT_BUILTINS = {"bytes": bytes, "str": str}


def __getattr__(name):
    if name in _COMPAT_MODULES:
        return importlib.import_module(_COMPAT_MODULES[name])
    if name in _COMPAT_BUILTINS:
        return _COMPAT_BUILTINS[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_COMPAT_MODULES, *_COMPAT_BUILTINS})


_INTERNAL_PACKETS = (
    ("peng3dnet:internal.hello", _internal.HelloPacket, 1),
    ("peng3dnet:internal.settype", _internal.SetTypePacket, 2),
    ("peng3dnet:internal.handshake", _internal.HandshakePacket, 3),
    ("peng3dnet:internal.handshake.accept", _internal.HandshakeAcceptPacket, 4),
    ("peng3dnet:internal.closeconn", _internal.CloseConnectionPacket, 16),
)
_CLOSE_PID = 16

# Events are taken from the core in batches of this many; one process() call handles at
# most _MAX_BATCHES batches so that a continuous stream cannot keep it from returning.
_BATCH = 1024
_MAX_BATCHES = 16

EV_CONNECTED = _core.EV_CONNECTED
EV_PACKET = _core.EV_PACKET
EV_SENT = _core.EV_SENT
EV_HANDSHAKE_COMPLETE = _core.EV_HANDSHAKE_COMPLETE
EV_INIT = _core.EV_INIT
EV_CLOSED = _core.EV_CLOSED
EV_LOG = _core.EV_LOG


def _resolve(addr, passive):
    """Numeric socket addresses for ``(host, port)``, as ``getaddrinfo`` orders them.

    Name resolution failures raise ``socket.gaierror``, as they do in the original.
    """
    host, port = addr[0], addr[1]
    infos = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE if passive else 0
    )
    found = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr not in found:
            found.append(sockaddr)
    return found


def _optional_seconds(value):
    """A timeout option: ``None`` or 0 means "no limit"."""
    return float(value) if value else None


def _keepalive_settings(cfg):
    if not cfg["net.keepalive.enabled"]:
        return {"keepalive_interval": None, "keepalive_timeout": None}
    return {
        "keepalive_interval": float(cfg["net.keepalive.interval"]),
        "keepalive_timeout": float(cfg["net.keepalive.timeout"]),
    }


# class -> the names of the library's overridable methods that the class redefines
_REDEFINED = {}

# Registry classes known to leave getInt and getObj as they are.
_PLAIN_REGISTRIES = set()

# In a send route: the packet object is to be asked of the app's registry (getObj).
_ASK_REGISTRY = object()


def _library_defaults(cls):
    """The overridable methods whose library versions peng3dnet-rs may skip (their
    effect is had by other means, or they do nothing), for classes of ``cls``'s kind:
    name -> the library functions that count as the library's own."""
    if issubclass(cls, _Peer):
        return {
            "sendEvent": (_Peer.sendEvent,),
            "genCID": (Server.genCID,),
            "send_message": (Server.send_message, Client.send_message),
            "receive_data": (Server.receive_data, Client.receive_data),
            "process_single_packet": (Server.process_single_packet, Client.process_single_packet),
            "receive_packet": (Server.receive_packet, Client.receive_packet),
            "pump_write_buffer": (Client.pump_write_buffer,),
        }
    if issubclass(cls, ClientOnServer):
        return {"on_send": (ClientOnServer.on_send,)}
    if issubclass(cls, Packet):
        own_sends = (Packet._send, SmartPacket._send, _internal._HandledByCore._send)
        return {"send": (Packet.send,), "_send": own_sends, "receive": (Packet.receive,)}
    if issubclass(cls, ConnectionType):
        return {
            "send": (ConnectionType.send,),
            "receive": (ConnectionType.receive,),
            "init": (ClassicConnectionType.init,),
        }
    if issubclass(cls, BaseRegistry):
        return {"getInt": (BaseRegistry.getInt,), "getObj": (BaseRegistry.getObj,)}
    return {}


def _redefined(cls):
    """Which of the library's overridable methods ``cls`` redefines (see
    :func:`_library_defaults`), worked out once per class."""
    found = _REDEFINED.get(cls)
    if found is None:
        found = frozenset(
            name
            for name, own in _library_defaults(cls).items()
            if getattr(cls, name, None) is not None and getattr(cls, name) not in own
        )
        _REDEFINED[cls] = found
    return found


def _overrides(obj, name):
    """Whether ``obj``'s method ``name`` is not the library's own: its class redefines it
    (worked out once per class) or it is set on the object (apps assign hooks on
    instances).

    The original calls its overridable methods on every occasion; peng3dnet-rs skips a
    call only where this says the method is the library's own, whose effect it then has
    by other means."""
    return name in _redefined(type(obj)) or name in getattr(obj, "__dict__", ())


class _ConntypeTable(dict):
    """``peer.conntypes``: a dict that also tells the native core about each entry, so
    that assigning ``peer.conntypes[name] = obj`` works like ``addConnType``."""

    def __init__(self, core):
        super().__init__()
        self._core = core

    def __setitem__(self, name, obj):
        if not isinstance(obj, ConnectionType):
            raise TypeError(f"a connection type must be a ConnectionType instance, not {type(obj).__name__}")
        super().__setitem__(name, obj)
        # The core runs the classic handshake itself unless Python code replaces init.
        native = isinstance(obj, ClassicConnectionType) and not _overrides(obj, "init")
        self._core.add_conntype(name, native)


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


class _Peer:
    """What servers and clients share: configuration, events, registries, dispatch."""

    _side_key = ""  # "server" or "client": the key under which events carry the peer
    _event_prefix = ""

    def _setup(self, peng, cfg, addr, addr_key):
        cfg = dict(cfg) if cfg is not None else {}
        if peng is None:
            self.cfg = Config(cfg, DEFAULT_CONFIG)
        else:
            self.cfg = Config({**DEFAULT_CONFIG, **cfg}, peng.cfg)
        port = self.cfg[f"{addr_key}.port"]
        # An in-process address ("memory:NAME", an extension) is kept as ("memory:NAME", 0).
        if addr is not None:
            self._memory_name = util.memory_name(addr)
            addr = self._normalize(addr, port)
            self.cfg[f"{addr_key}.host"], self.cfg[f"{addr_key}.port"] = addr[0], addr[1]
        elif self.cfg[addr_key] is None:
            self._memory_name = util.memory_name(self.cfg[f"{addr_key}.host"])
            addr = self._normalize(self.cfg[f"{addr_key}.host"], port)
        else:
            self._memory_name = util.memory_name(self.cfg[addr_key])
            addr = self._normalize(self.cfg[addr_key], port)
        if self.cfg["net.events.enable"] == "auto":
            self.cfg["net.events.enable"] = peng is not None
        self.peng = peng
        self.addr = addr
        self.sock = None
        self.run = True
        self.conntypes = _ConntypeTable(self._core)
        # The overridable methods this peer's class redefines (its hot paths ask).
        self._own_hooks = _redefined(type(self))
        self.registry = PacketRegistry()
        self.selector = None  # the original's selector loop; the native core serves the sockets
        self._init_lock = threading.RLock()
        self._is_initialized = False
        self._is_started = False
        self._run_thread = None
        self._process_thread = None
        self._stopped = threading.Event()
        # Counts threads inside process_forever(); waits that depend on dispatch use it.
        self._process_loops = 0
        self._dispatch_cond = threading.Condition()

    @property
    def registry(self):
        """The packet registry. Apps may replace it (in ``__init__``, as with the
        original): the native core then follows the new one."""
        return self._registry

    @registry.setter
    def registry(self, reg):
        old = self.__dict__.get("_registry")
        if old is not None and hasattr(old, "_remove_listener"):
            old._remove_listener(self._core)
        self._registry = reg
        if hasattr(reg, "_add_listener"):
            reg._add_listener(self._core)

    def _normalize(self, addr, port):
        if self._memory_name is not None:
            return (util.MEMORY_SCHEME + self._memory_name, 0)
        return util.normalize_addr_socketstyle(addr, port)

    # --- configuration -------------------------------------------------------------

    def _settings(self):
        cfg = self.cfg
        return {
            "compress": bool(cfg["net.compress.enabled"]),
            "compress_threshold": int(cfg["net.compress.threshold"]),
            "compress_level": int(cfg["net.compress.level"]),
            "max_frame_len": int(cfg["net.limits.max_frame"]),
            "max_inflated_len": int(cfg["net.limits.max_inflated"]),
            "max_depth": int(cfg["net.limits.max_depth"]),
            "max_container_len": cfg["net.limits.max_container"],
            "inbox_limit": int(cfg["net.limits.inbox"]),
            "linger": float(cfg["net.timeout.linger"]),
            "close_timeout": float(cfg["net.timeout.close"]),
            "handshake_timeout": _optional_seconds(cfg["net.timeout.handshake"]),
            "idle_timeout": _optional_seconds(cfg["net.timeout.idle"]),
            "write_queue_limit": int(cfg["net.limits.write_queue"]),
            **_keepalive_settings(cfg),
        }

    # --- events --------------------------------------------------------------------

    def _events_on(self):
        # Without a peng object (most apps) no configuration lookup is needed.
        return self.peng is not None and bool(self.cfg["net.events.enable"])

    def sendEvent(self, event, data=None):
        """Send a peng3d event if events are enabled, adding the ``peng`` key and the
        server or client under its key."""
        if not self._events_on():
            return
        if data is None:
            data = {}
        if isinstance(data, dict):
            data["peng"] = self.peng
            data[self._side_key] = self
        self.peng.sendEvent(event, data)

    # --- registration --------------------------------------------------------------

    def initialize(self):
        """Register the internal packets and the classic connection type, then run every
        ``_reg_packets_*`` and ``_reg_conntypes_*`` method (for subclasses and mixins).
        Later calls do nothing."""
        if self._is_initialized:
            return
        with self._init_lock:
            if self._is_initialized:
                return
            self._is_initialized = True
            for name, cls, n in _INTERNAL_PACKETS:
                if name not in self.registry.reg_int_str.inv:
                    self.register_packet(name, cls(self.registry, self), n)
            self._call_hooks("_reg_packets_")
            if "classic" not in self.conntypes:
                self.addConnType("classic", ClassicConnectionType(self))
            self._call_hooks("_reg_conntypes_")
            self.sendEvent(f"{self._event_prefix}.initialize", {})

    def _call_hooks(self, prefix):
        for attr in dir(self):
            if attr.startswith(prefix):
                hook = getattr(self, attr, None)
                if callable(hook):
                    hook()

    def register_packet(self, name, obj, n=None):
        """Register packet object ``obj`` under ``name`` (``"namespace:category.name"``),
        with id ``n`` or the next free id from 64."""
        self.registry.register(obj, name, n)

    def addConnType(self, t, obj):
        """Register connection type object ``obj`` under the name ``t``; a name may be
        registered once (:class:`~peng3dnet.errors.AlreadyRegisteredError`)."""
        if t in self.conntypes:
            raise errors.AlreadyRegisteredError(f"connection type {t!r} is already registered")
        self.conntypes[t] = obj

    # --- sending helpers -----------------------------------------------------------

    def _packet_id(self, ptype):
        """(id, packet object or None, whether internal) of a packet type in any form."""
        reg = self.registry
        if type(ptype) is str and type(reg) is PacketRegistry:
            # The common case (a name, the library's own registry), without the
            # method calls of getID: the same lookups and the same KeyError.
            pid = reg.reg_int_str._inv[ptype]
            internal = pid < 64 or ptype.startswith("peng3dnet:")
            return pid, reg.reg_int_obj._fwd.get(pid), internal
        pid = reg.getID(ptype)
        pkt = reg.reg_int_obj.get(pid)
        internal = pid < 64 or (isinstance(ptype, str) and ptype.startswith("peng3dnet:"))
        return pid, pkt, internal

    def _route(self, ptype):
        """What sending ``ptype`` (a packet type in any form) involves: ``(id, packet object
        or None, whether it is internal, whether the object's send hooks see the frame,
        whether it needs more than encoding and queueing (see :meth:`_transmit`))``.
        Names are looked up once: the registry keeps what was found until it changes
        (registration, removal, the ids of a handshake)."""
        return self._route_in(self.registry, ptype)

    def _route_in(self, reg, ptype):
        if type(ptype) is not str:
            return self._new_route(ptype)
        # Taken before the lookup: a change meanwhile replaces this dict, so that what is
        # stored below, from the old maps, is not seen again.
        routes = getattr(reg, "_routes", None)
        route = routes.get(ptype) if routes is not None else None
        if route is None:
            route = self._new_route(ptype)
            if routes is not None:
                routes[ptype] = route
        return route

    def _new_route(self, ptype):
        pid, pkt, _ = self._packet_id(ptype)
        special = pid == _CLOSE_PID or (isinstance(pkt, SmartPacket) and pkt.min_sslsec_level > SSLSEC_NONE)
        return pid, pkt, _internal_type(ptype), _hooks_see_message(pkt), special

    def _registry_overridden(self):
        """Whether the registry's ``getInt``/``getObj`` are an app's own: then they are
        asked on every send and receive, as the original does (worked out once per
        registry class)."""
        kind = type(self.registry)
        if kind in _PLAIN_REGISTRIES:
            return False
        # The registry's kind has no other overridable methods than these two.
        if _redefined(kind):
            return True
        _PLAIN_REGISTRIES.add(kind)
        return False

    def _lookup(self, ptype):
        """:meth:`_route`, or with an app's registry its ``getInt`` (the packet object is
        then asked of its ``getObj`` when the hooks run: :data:`_ASK_REGISTRY`)."""
        reg = self.registry
        if type(reg) in _PLAIN_REGISTRIES or not self._registry_overridden():
            return self._route_in(reg, ptype)
        pid = self.registry.getInt(ptype)
        return pid, _ASK_REGISTRY, _internal_type(ptype), True, pid == _CLOSE_PID

    def _events_needed(self):
        """Whether ``sendEvent`` must be called: events are on, or the app's own
        ``sendEvent`` receives them (the original always calls it)."""
        return (
            (self.peng is not None and self._events_on())
            or "sendEvent" in _redefined(type(self))
            or "sendEvent" in self.__dict__
        )

    # Set while the dispatch replays a packet the native core sent on its own (the
    # handshake's, see _replay_sent) through an app's send_message: (message, frame,
    # thread). The library's send_message then runs the hooks without sending again.
    _replaying = None

    def _replayed_frame(self, data):
        """The frame of ``data`` if this call of send_message is such a replay, else None."""
        replay = self._replaying
        if replay is not None and replay[0] is data and replay[2] == threading.get_ident():
            return replay[1]
        return None

    def _replay_sent(self, name, msg, frame, cid):
        """Report a packet the core sent on its own (hello, handshake, accept...) through
        ``send_message`` if the app overrides it, as the original sent these packets."""
        self._replaying = (msg, frame, threading.get_ident())
        try:
            if cid is None:
                self.send_message(name, msg)
            else:
                self.send_message(name, msg, cid)
        finally:
            self._replaying = None

    def _transmit(self, conn, pid, ptype, data, pkt, want_frame):
        """Encode and queue a packet; returns its frame if ``want_frame`` (else True), or
        None if it was not queued. The close packet closes the connection gracefully:
        what was queued before it is sent first."""
        if pid == _CLOSE_PID:
            conn.close(data.get("reason") if isinstance(data, dict) else None)
            return self._codec().encode(pid, data) if want_frame else True
        if pkt is _ASK_REGISTRY:
            pkt = self.registry.getObj(ptype)
        if (
            isinstance(pkt, SmartPacket)
            and pkt.min_sslsec_level > SSLSEC_NONE
            and conn.ssl_seclevel < pkt.min_sslsec_level
        ):
            # The original sent it anyway and only ran invalid_action; a packet that asks
            # for encryption never goes out in the clear here (invalid_action still runs).
            _log.warning("packet %s not sent: the connection is below its min_sslsec_level", ptype)
            return self._codec().encode(pid, data) if want_frame else True
        frame = conn.send(pid, data, want_frame)
        if frame is False:
            _log.debug("packet %s on a closing connection dropped", ptype)
            return None
        return frame

    def _codec(self, fresh=False):
        """A frame codec with this peer's limits, for frames made (uncompressed) or read
        in Python; ``fresh``: a new one, whose decoder holds nothing yet."""
        codec = None if fresh else self.__dict__.get("_frame_codec")
        if codec is None:
            settings = self._settings()
            codec = _core.FrameCodec(
                compress=False,
                max_frame_len=settings["max_frame_len"],
                max_inflated_len=settings["max_inflated_len"],
                max_depth=settings["max_depth"],
                max_container_len=settings["max_container_len"],
            )
            if not fresh:
                self._frame_codec = codec
        return codec

    # --- processing ----------------------------------------------------------------

    def process(self, wait=False, timeout=None):
        """Handle received packets and connection events; return how many packets.

        With ``wait``, first wait up to ``timeout`` seconds (forever if None) for
        something to arrive. Exceptions raised by handlers are logged (logger
        ``peng3dnet``) and processing goes on.
        """
        return self._process(wait, timeout)[0]

    def _process(self, wait, timeout, observe=None):
        """:meth:`process`, returning ``(packets handled, events taken)``; ``observe``
        (if given) is called with every event that is not a packet, after its dispatch
        (the asyncio API follows connections and closes through it)."""
        core = self._core
        handled = taken = 0
        try:
            for batch in range(_MAX_BATCHES):
                # Only the first take waits. A batch is taken only when it will be
                # dispatched: taken events are no longer in the core's queue.
                events = core.take_events(wait and batch == 0, timeout, _BATCH)
                if not events:
                    break
                taken += len(events)
                # The client may adopt new packet ids here; the batch settings read them.
                self._before_dispatch()
                self._read_batch_settings()
                for event in events:
                    try:
                        handled += self._dispatch(event)
                    except Exception:
                        _log.exception(
                            "a handler raised while processing %s; processing goes on", _describe(event)
                        )
                    if observe is not None and event[0] != EV_PACKET:
                        observe(event)
                if len(events) < _BATCH:
                    break
        finally:
            core.dispatch_done()
        return handled, taken

    def _before_dispatch(self):
        pass

    def _await_closing(self):
        pass

    # Settings the per-packet path needs, read once per batch of events (see
    # _read_batch_settings) instead of once per packet.
    _debug_recv = False
    _events_now = False
    _conntype_receives = True
    _packets_by_id = {}
    _custom_registry = False
    _raw_receive = False

    def _read_batch_settings(self):
        by_id = self.registry.reg_int_obj
        # The plain dict behind the registry's two-way map: one C-level lookup per packet.
        self._packets_by_id = getattr(by_id, "_fwd", by_id)
        self._custom_registry = self._registry_overridden()
        self._debug_recv = bool(self.cfg["net.debug.print.recv"])
        self._events_now = self._events_needed()
        # An app that overrides the original's byte-level receive methods gets every
        # packet through them (see _replay_received).
        self._raw_receive = any(
            _overrides(self, name) for name in ("receive_data", "process_single_packet", "receive_packet")
        )
        # Only connection types that override receive() (the ping extension's) can
        # claim a packet; without any, no packet needs its connection type looked up.
        self._conntype_receives = any(_overrides(ct, "receive") for ct in list(self.conntypes.values()))

    def process_forever(self):
        """Process until :meth:`stop` is called."""
        with self._dispatch_cond:
            self._process_loops += 1
        try:
            while self.run:
                self.process(wait=True, timeout=0.5)
            # Dispatch what arrived up to the stop (the last packets, the closes), and
            # the end of a close this peer had started, which stop() lets complete.
            self._await_closing()
            self.process()
        finally:
            with self._dispatch_cond:
                self._process_loops -= 1
                self._dispatch_cond.notify_all()

    def process_async(self):
        """Run :meth:`process_forever` in a daemon thread named ``peng3dnet process Thread``."""
        self._process_thread = threading.Thread(
            name="peng3dnet process Thread", target=self.process_forever, daemon=True
        )
        self._process_thread.start()

    def _wait_dispatched(self, predicate, deadline):
        """If a process loop runs, wait (until ``deadline``) for ``predicate()``."""
        with self._dispatch_cond:
            while self._process_loops > 0 and not predicate():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                self._dispatch_cond.wait(remaining if remaining is not None else 0.5)

    def _notify_dispatched(self):
        with self._dispatch_cond:
            self._dispatch_cond.notify_all()

    # --- blocking receive (addition; not in the original) -----------------------------

    # Where the dispatch puts every received user packet (``put(cid, pid, msg)``): None
    # until recv() is first used, so apps that never call it (every app written for
    # the original) keep nothing. The asyncio API puts its own queue here.
    _recv_sink = None

    def _recv_buffer(self):
        """The messages kept for ``recv``, starting to keep them if not yet."""
        buffer = self.__dict__.get("_recv_messages")
        if buffer is None:
            buffer = self.__dict__.setdefault("_recv_messages", _RecvBuffer(int(self.cfg["net.recv.buffer"])))
            self._recv_sink = buffer
        return buffer

    def _configure_recv(self):
        if self.cfg["net.recv.enabled"]:
            self._recv_buffer()

    def _recv(self, ptype, timeout):
        pid = None if ptype is None else self._packet_id(ptype)[0]
        buffer = self._recv_buffer()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            step = 0.5 if remaining is None else min(remaining, 0.5)
            # With a process loop running, wait for it to deliver; without one, this
            # call has to process (the messages arrive through the handlers' dispatch).
            found = buffer.take(pid, wait=step if self._process_loops > 0 else 0.0)
            if found is None and self._process_loops == 0:
                self.process(wait=True, timeout=step)
                found = buffer.take(pid)
            if found is not None:
                cid, pid_found, msg = found
                return cid, self.registry.reg_int_str.get(pid_found, pid_found), msg
            if remaining is not None and remaining <= 0:
                what = "message" if ptype is None else f"{ptype!r} message"
                raise errors.TimedOutError(f"no {what} arrived within {timeout} seconds")

    # --- threads -------------------------------------------------------------------

    def join(self, timeout=None):
        """Stop, then wait for the threads started by ``runAsync`` and ``process_async``
        (``timeout`` bounds the total wait)."""
        self.stop()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in (self._run_thread, self._process_thread):
            if thread is None or thread is threading.current_thread():
                continue
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0))

    def interrupt(self):
        """Wake threads waiting in :meth:`process` and send the interrupt event."""
        self._core.interrupt()
        self.sendEvent(f"{self._event_prefix}.interrupt", {})

    # --- the original's byte-level receive path ---------------------------------------
    #
    # In the original, bytes read from a socket went through receive_data ->
    # process_single_packet -> receive_packet into the queue that process() dispatched.
    # Here the native core reads and decodes the sockets. An app that overrides one of
    # these methods gets every packet through them all the same, as a frame, in the
    # thread that calls process() (see _replay_received). Called directly, they feed
    # bytes to a connection as if they had arrived on it.

    # While a received packet is replayed: (cid, packet bytes, pid, flags, msg, thread).
    _replaying_in = None

    def _inject_buffer(self, cid):
        buffers = self.__dict__.setdefault("_injected", {})
        return buffers.setdefault(cid, bytearray())

    @staticmethod
    def _frame_buffered(buffer):
        return len(buffer) >= 4 and len(buffer) >= 4 + STRUCT_LENGTH32.unpack_from(buffer)[0]

    def _take_injected_packet(self, cid):
        buffer = self._inject_buffer(cid)
        if not self._frame_buffered(buffer):
            return None
        (length,) = STRUCT_LENGTH32.unpack_from(buffer)
        frame = bytes(buffer[4 : 4 + length])
        del buffer[: 4 + length]
        return frame

    def _feed(self, data, cid, take_one):
        """What ``receive_data`` does: buffer ``data``, then ``take_one()`` (that is,
        ``process_single_packet``) while a whole frame is buffered."""
        buffer = self._inject_buffer(cid)
        buffer.extend(data)
        while self._frame_buffered(buffer):
            before = len(buffer)
            take_one()
            if len(buffer) == before:
                break  # an override that took nothing waits for more data

    def _replay_received(self, cid, pid, flags, msg):
        """Hand a received packet to the app's ``receive_data`` as a frame; the library's
        ``receive_packet`` at the end of that path dispatches it (:meth:`_packet_arrived`)."""
        frame = self._codec().encode(pid, msg)
        self._replaying_in = (cid, frame[4:], pid, flags, msg, threading.get_ident())
        try:
            if cid is None:
                self.receive_data(frame)
            else:
                self.receive_data(frame, cid)
        finally:
            self._replaying_in = None

    def _packet_arrived(self, data, cid):
        """What ``receive_packet`` does with one packet (header and body): a packet being
        replayed is dispatched now (decoded again if the app changed its bytes); any other
        is queued for :meth:`process` as if it had been read from the connection."""
        replay = self._replaying_in
        if replay is not None and replay[0] == cid and replay[5] == threading.get_ident():
            if data == replay[1]:
                pid, flags, msg = replay[2:5]
            else:
                decoder = self._codec(fresh=True)
                decoded = decoder.feed(STRUCT_LENGTH32.pack(len(data)) + bytes(data))
                if not decoded:
                    raise errors.ProtocolError("receive_packet was given an incomplete packet")
                ((pid, flags, msg),) = decoded
            self._deliver(cid, pid, flags, msg)
            return
        self._connection_of(cid).inject(bytes(data))

    def _debug(self, kind, text):
        if self.cfg[f"net.debug.print.{kind}"]:
            print(text)
        _log.debug(text)

    def _debugging_send(self):
        """Whether to report each packet sent (``net.debug.print.send``; printed and
        logged). Asked for every packet, so only the switch is read, as the original
        did."""
        return self.cfg["net.debug.print.send"]

    def _debugging(self, kind):
        """Whether :meth:`_debug` of ``kind`` would show anything (hot paths check this
        before formatting the text)."""
        return self.cfg[f"net.debug.print.{kind}"] or _log.isEnabledFor(logging.DEBUG)


class _RecvBuffer:
    """The last ``limit`` messages that arrived, for ``recv()`` (oldest dropped first)."""

    def __init__(self, limit):
        self._items = collections.deque(maxlen=max(limit, 1))
        self._cond = threading.Condition()

    def put(self, cid, pid, msg):
        with self._cond:
            self._items.append((cid, pid, msg))
            self._cond.notify_all()

    def take(self, pid, wait=0.0):
        """The oldest message of ``pid`` (any if None), waiting up to ``wait`` seconds
        for one to arrive; None if there is none."""
        with self._cond:
            for attempt in range(2):
                for i, item in enumerate(self._items):
                    if pid is None or item[1] == pid:
                        del self._items[i]
                        return item
                if attempt == 0 and wait > 0:
                    self._cond.wait(wait)
        return None


def _describe(event):
    kind = event[0]
    if kind == EV_PACKET:
        return f"packet {event[2]} from connection {event[1]}"
    names = {
        EV_CONNECTED: "connect",
        EV_SENT: "send",
        EV_HANDSHAKE_COMPLETE: "handshake",
        EV_INIT: "connection type init",
        EV_CLOSED: "close",
        EV_LOG: "log",
    }
    return f"{names.get(kind, kind)} event of connection {event[1]}"


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
                _log.exception("closing connection %s during shutdown failed", cid)
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

    def receive_data(self, data, cid):
        """Feed raw bytes (length-prefixed packets, possibly partial) to connection
        ``cid``; each complete packet goes through :meth:`process_single_packet`."""
        client = self.clients[cid]
        self._feed(data, cid, lambda: self.process_single_packet(client))

    def process_single_packet(self, client):
        """Hand one complete packet of the bytes fed to ``client`` (a ClientOnServer) via
        :meth:`receive_data` to :meth:`receive_packet`, if there is one."""
        frame = self._take_injected_packet(client.cid)
        if frame is not None:
            self.receive_packet(frame, client.cid)

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
        ct = None if internal else self.conntypes.get(conn.conntype)
        ct_send = ct is not None and _overrides(ct, "send")
        # The frame is made for the hooks only if one of them is not the library's no-op.
        want_frame = (
            events
            or ct_send
            or pkt_sees
            or (client is not None and (client._own_on_send or "on_send" in client.__dict__))
            or (pkt is not None and ("send" in pkt.__dict__ or "_send" in pkt.__dict__))
        )
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
        if client is not None:
            client.on_send(ptype, frame)
        if events:
            self.sendEvent(
                "peng3dnet:server.connection.send", {"client": client, "pid": ptype, "data": frame}
            )
        if pkt is _ASK_REGISTRY:
            pkt = self.registry.getObj(ptype)
        if pkt is not None:
            pkt._send(frame, cid)

    def stats(self, clients=False):
        """A snapshot of the server's statistics (a new dict; cheap to take).

        Totals over every connection since the server started: ``packets_in``,
        ``packets_out``, ``bytes_in``, ``bytes_out`` (on the wire), ``payload_in``,
        ``payload_out`` (msgpack bodies before compression), ``compression_in``,
        ``compression_out`` (wire body bytes per payload byte; 1.0 without
        compression). The live connections: ``connections``, ``queued_bytes``,
        ``rtt_mean``, ``rtt_max`` (seconds, None without estimates). Also ``accepted``
        and ``refused`` connections. With ``clients=True``, ``clients`` maps each live
        cid to its connection's statistics (see :meth:`Client.stats`)."""
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
                ct = self.conntypes.get(name)
                own_send[name] = ct is not None and _overrides(ct, "send")
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

    def _dispatch(self, event):
        kind = event[0]
        cid = event[1]
        if self._app_cids:
            cid = self._app_cids.get(cid, cid)
        if kind == EV_PACKET:
            _, _, pid, flags, msg = event
            if self._raw_receive:
                if cid not in self.clients:
                    return 0
                self._replay_received(cid, pid, flags, msg)
                return 1
            return self._deliver(cid, pid, flags, msg)
        if kind == EV_CONNECTED:
            conn = event[2]
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
        elif kind == EV_SENT:
            # A packet of the handshake the core sent on its own: reported as if it had
            # been sent through send_message, as in the original.
            _, _, pid, msg, frame = event
            if cid in self.clients:
                self._replay_sent(self.registry.reg_int_str.get(pid, pid), msg, frame, cid)
        elif kind == EV_HANDSHAKE_COMPLETE:
            client = self.clients.get(cid)
            if client is not None:
                client.on_handshake_complete()
        elif kind == EV_INIT:
            _, _, conntype = event
            client = self.clients.get(cid)
            try:
                if client is not None and not client.conn.finished:
                    self.conntypes[conntype].init(cid)
            finally:
                if client is not None:
                    client.conn.init_done()
        elif kind == EV_CLOSED:
            reason = event[2]
            client = self.clients.get(cid)
            try:
                if client is not None:
                    client.close(reason)
            finally:
                # Whatever an overridden close did, the connection is gone.
                if self.clients.get(cid) is client:
                    self.clients.pop(cid, None)
                self._app_cids.pop(event[1], None)
                for name in self.groups_of(cid):
                    self.leave_group(cid, name)
        elif kind == EV_LOG:
            _, _, level, message = event
            _log.log(level, message)
        return 0

    def _deliver(self, cid, pid, flags, msg):
        """Dispatch one received packet: the connection type's ``receive`` (which may
        claim it), then the packet's ``_receive``, ``on_receive`` and the receive event."""
        client = self.clients.get(cid)
        if client is None:
            return 0
        if self._debug_recv:
            self._debug("recv", f"RECV {self.registry.reg_int_str.get(pid, pid)} from {cid}")
        if (
            pid < 64
            or not self._conntype_receives
            or not self._conntype_receive(client.conntype, msg, pid, flags, cid)
        ):
            if self._custom_registry:
                pkt = self.registry.getObj(pid)
            else:
                pkt = self._packets_by_id.get(pid)
                if pkt is None:
                    self.on_unknown_packet(pid, msg, cid)
                    return 1
            sink = self._recv_sink
            if sink is not None and pid >= 64:
                sink.put(cid, pid, msg)
            pkt._receive(msg, cid)
            client.on_receive(pid, msg)
            if self._events_now:
                self.sendEvent("peng3dnet:server.connection.recv", {"client": client, "pid": pid, "msg": msg})
        return 1

    def _conntype_receive(self, conntype, msg, pid, flags, cid):
        ct = self.conntypes.get(conntype)
        if ct is None:
            return False
        return ct.receive(msg, pid, flags, cid)

    def on_unknown_packet(self, pid, msg, cid):
        """Called for a packet whose id no registered packet has; logs and ignores it."""
        _log.warning("ignoring packet with unknown id %s from client %s", pid, cid)


def _internal_type(ptype):
    """Whether the original treats ``ptype`` as internal (no connection type sees it):
    an id below 64 or a name in the ``peng3dnet:`` namespace."""
    if type(ptype) is str:
        return ptype.startswith("peng3dnet:")
    return isinstance(ptype, int) and ptype < 64


def _hooks_see_message(pkt):
    """Whether a packet object's send hooks may look at what they are given (else the
    encoded frame need not be made for them)."""
    if pkt is None:
        return False
    return _overrides(pkt, "_send") or _overrides(pkt, "send")


def _ssl_state(seclevel):
    return "handshake" if seclevel == SSLSEC_NONE else "connected"


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

    def on_receive(self, ptype, msg):
        """Called for every packet received from this client (after its handler)."""

    def on_send(self, ptype, msg):
        """Called for every packet sent to this client; ``msg`` is the message object."""

    def on_close(self, reason=None):
        """Called once when the connection is closed, with the reason given by either side."""


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

    def runBlocking(self, selector=selectors.DefaultSelector):
        """Connect and keep the client running until :meth:`stop` is called.

        ``selector`` is accepted for compatibility and ignored."""
        # runAsync has started everything already when its thread gets here.
        if threading.current_thread() is not self._run_thread and not self._start():
            return
        self._stopped.wait()

    def runAsync(self, selector=selectors.DefaultSelector):
        """Like :meth:`runBlocking`, in a daemon thread named ``peng3dnet Client Thread``.

        Connecting happens before this method returns, so connection errors are raised
        here."""
        if not self._start():
            return
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
        if self._debugging_send():
            self._debug("send", f"SEND {ptype}")
        if self._core.table_epoch != self._table_epoch:
            self._sync_registry()
        conn = self._conn
        if conn is None:
            conn = self._connection_of()
        pid, pkt, internal, _, special = self._lookup(ptype)
        ct = None if internal else self.conntypes.get(self.target_conntype)
        if ct is None or not _overrides(ct, "send") or not ct.send(data, ptype, cid):
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
        if self._replaying is None or self._replayed_frame(data) is None:
            if special:
                self._transmit(conn, pid, ptype, data, pkt, False)
            elif conn.send(pid, data, False) is False:
                _log.debug("packet %s on a closing connection dropped", ptype)
        if "pump_write_buffer" in self._own_hooks or "pump_write_buffer" in self.__dict__:
            self.pump_write_buffer()

    def pump_write_buffer(self):
        """Kept for compatibility (called after each send, as in the original): the
        native core writes queued packets on its own."""

    def receive_data(self, data, cid=None):
        """Feed raw bytes (length-prefixed packets, possibly partial) to the connection as
        if they had been read from its socket; each complete packet goes through
        :meth:`process_single_packet`. ``cid`` is ignored."""
        self._feed(data, None, self.process_single_packet)

    def process_single_packet(self, client=None):
        """Hand one complete packet of the bytes fed via :meth:`receive_data` to
        :meth:`receive_packet`, if there is one. ``client`` is ignored."""
        frame = self._take_injected_packet(None)
        if frame is not None:
            self.receive_packet(frame)

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
        ``heartbeat`` (whether heartbeats run on the connection)."""
        return None if self._conn is None else self._conn.stats()

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

    def _dispatch(self, event):
        kind = event[0]
        if kind == EV_PACKET:
            _, _, pid, flags, msg = event
            if self._raw_receive:
                self._replay_received(None, pid, flags, msg)
                return 1
            return self._deliver(None, pid, flags, msg)
        if kind == EV_CONNECTED:
            self._debug("connect", f"CONNECT to {self.addr}")
            self.on_connect()
        elif kind == EV_SENT:
            # A packet of the handshake the core sent on its own: reported as if it had
            # been sent through send_message, as in the original.
            _, _, pid, msg, frame = event
            self._replay_sent(self.registry.reg_int_str.get(pid, pid), msg, frame, None)
        elif kind == EV_HANDSHAKE_COMPLETE:
            self._sync_registry()
            try:
                self.on_handshake_complete()
            finally:
                self._handshake_dispatched = True
                self._notify_dispatched()
        elif kind == EV_INIT:
            _, _, conntype = event
            try:
                if not self._conn.finished:
                    self.conntypes[conntype].init(None)
            finally:
                self._conn.init_done()
        elif kind == EV_CLOSED:
            _, _, reason = event
            self._close_reason = reason
            try:
                if not self._closed:
                    self.close(reason)
            finally:
                self._closed = True
                self._notify_dispatched()
        elif kind == EV_LOG:
            _, _, level, message = event
            _log.log(level, message)
        return 0

    def _deliver(self, cid, pid, flags, msg):
        """Dispatch one received packet: the connection type's ``receive`` (which may
        claim it), then the packet's ``_receive``, ``on_receive`` and the receive event."""
        if self._debug_recv:
            self._debug("recv", f"RECV {self.registry.reg_int_str.get(pid, pid)}")
        if pid < 64 or not self._conntype_receives or not self._conntype_receive(msg, pid, flags):
            if self._custom_registry:
                pkt = self.registry.getObj(pid)
            else:
                pkt = self._packets_by_id.get(pid)
                if pkt is None:
                    self.on_unknown_packet(pid, msg, None)
                    return 1
            sink = self._recv_sink
            if sink is not None and pid >= 64:
                sink.put(None, pid, msg)
            pkt._receive(msg)
            self.on_receive(pid, msg)
            if self._events_now:
                self.sendEvent("peng3dnet:client.recv", {"pid": pid, "msg": msg})
        return 1

    def _conntype_receive(self, msg, pid, flags):
        ct = self.conntypes.get(self.target_conntype)
        if ct is None:
            return False
        return ct.receive(msg, pid, flags, None)

    def on_unknown_packet(self, pid, msg, cid=None):
        """Called for a packet whose id no registered packet has; logs and ignores it."""
        _log.warning("ignoring packet with unknown id %s from the server", pid)

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

    def on_receive(self, ptype, msg):
        """Called for every packet received (after its handler)."""

    def on_send(self, ptype, msg):
        """Called for every packet sent; ``msg`` is the message object."""

    def on_close(self, reason=None):
        """Called once when the connection is closed, with the reason given by either side."""
