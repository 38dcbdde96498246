"""What servers and clients share: configuration, events, registration, the process
loop that dispatches the native core's events, threads, and ``recv``."""

import collections
import logging
import socket
import threading
import time

from .. import errors, util
from .._config import Config
from .._hooks import library_default
from .._hooks import overrides as _overrides
from .._hooks import redefined as _redefined
from ..conntypes import ClassicConnectionType, ConnectionType
from ..constants import DEFAULT_CONFIG
from ..registry import PacketRegistry
from ._bytes import _ByteLevelReceive
from ._common import _BATCH, _INTERNAL_PACKETS, _MAX_BATCHES, EV_PACKET, _describe, log
from ._dispatch import _Dispatch
from ._send import _Sending


def _resolve(addr, passive):
    """Numeric socket addresses for ``(host, port)``, as ``getaddrinfo`` orders them.

    Name resolution failures raise ``socket.gaierror``, as they do in the original.
    """
    host, port = addr[0], addr[1]
    if not passive and isinstance(host, str) and isinstance(port, int):
        # An IPv4 literal needs no resolver (clients are started by the thousand).
        try:
            socket.inet_pton(socket.AF_INET, host)
        except OSError:
            pass
        else:
            return [(host, port)]
    infos = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE if passive else 0
    )
    found = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr not in found:
            found.append(sockaddr)
    return found


def _optional_int(value):
    return None if value is None else int(value)


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


# (class, prefix) -> (the class's shape when looked at, the names dir() found on it)
_CLASS_HOOKS = {}


def _hook_names(obj, prefix):
    """The names ``dir(obj)`` lists that start with ``prefix``, in its (sorted) order.

    What the class contributes is worked out once per class and prefix (dir() of a
    peer lists hundreds of names; clients are started by the thousand); the cache is
    checked against the sizes of the classes' namespaces, so a hook added to a class
    later is found. Names set on the object itself are added each time."""
    cls = type(obj)
    if cls.__dir__ is not object.__dir__:
        return [name for name in dir(obj) if name.startswith(prefix)]
    shape = tuple(map(len, map(vars, cls.__mro__)))
    cached = _CLASS_HOOKS.get((cls, prefix))
    if cached is None or cached[0] != shape:
        cached = _CLASS_HOOKS[(cls, prefix)] = (shape, [n for n in dir(cls) if n.startswith(prefix)])
    own = _own_names(getattr(obj, "__dict__", None), prefix)
    if not own:
        return cached[1]
    return sorted(set(cached[1]).union(own))


def _own_names(namespace, prefix):
    """The names in ``namespace`` (an object's ``__dict__``) that start with ``prefix``."""
    if not namespace:
        return ()
    try:
        # One search of the joined names first (a third of the cost of testing each
        # name): hooks set on the object itself are rare.
        if "\0" + prefix not in "\0" + "\0".join(namespace):
            return ()
    except TypeError:  # a name that is not a str
        pass
    return [name for name in namespace if isinstance(name, str) and name.startswith(prefix)]


# The original's byte-level receive methods: an app that overrides one of them gets
# every packet through it (see _replay_received).
_RAW_RECEIVE = frozenset(("receive_data", "process_single_packet", "receive_packet"))


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

    # The one place that asks whether a connection type replaces one of the library's
    # hooks (the fast paths skip hooks that are not replaced). Asked each time, not
    # cached: an app may assign a hook on the instance after adding it.
    def overriding(self, name, hook):
        """The connection type called ``name`` if it replaces ``hook``, else None."""
        ct = self.get(name)
        return ct if ct is not None and _overrides(ct, hook) else None

    def any_overrides(self, hook):
        """Whether any connection type replaces ``hook``."""
        # A plain loop over a snapshot: this runs once per batch of events.
        for ct in tuple(self.values()):
            if _overrides(ct, hook):
                return True
        return False


class _Peer(_Sending, _ByteLevelReceive, _Dispatch):
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
        # Counts threads inside process_forever(); waits that depend on dispatch use it.
        self._process_loops = 0

    # Made at first use (clients start by the thousand and most never need them).
    def _made_once(self, key, make):
        """``self.__dict__[key]``, made with ``make()`` if missing; the dict's setdefault
        picks one if two threads make it at once."""
        made = self.__dict__.get(key)
        if made is None:
            made = self.__dict__.setdefault(key, make())
        return made

    @property
    def _stopped(self):
        """Set by ``stop()``; what ``runBlocking`` waits for."""
        return self._made_once("_stop_event", threading.Event)

    @property
    def _dispatch_cond(self):
        """Guards ``_process_loops``; notified when dispatch changed what waits look at."""
        return self._made_once("_dispatch_condition", threading.Condition)

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
            "handshake_frame_len": int(cfg["net.limits.handshake_frame"]),
            "memory_budget": _optional_int(cfg["net.limits.memory"]),
            "memory_grace": float(cfg["net.timeout.memory_pressure"]),
            **_keepalive_settings(cfg),
        }

    # --- events --------------------------------------------------------------------

    def _events_on(self):
        # Without a peng object (most apps) no configuration lookup is needed.
        return self.peng is not None and bool(self.cfg["net.events.enable"])

    @library_default
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
        """Call every method whose name starts with ``prefix``, in ``dir()`` order."""
        for attr in _hook_names(self, prefix):
            hook = getattr(self, attr, None)
            if callable(hook):
                hook()

    def register_packet(self, name, obj, n=None):
        """Register packet object ``obj`` under ``name`` (``"namespace:category.name"``),
        with id ``n`` or the next free id from 64 (the first id that is not internal)."""
        self.registry.register(obj, name, n)

    def addConnType(self, t, obj):
        """Register connection type object ``obj`` under the name ``t``; a name may be
        registered once (:class:`~peng3dnet.errors.AlreadyRegisteredError`)."""
        if t in self.conntypes:
            raise errors.AlreadyRegisteredError(f"connection type {t!r} is already registered")
        self.conntypes[t] = obj

    # --- sending helpers -----------------------------------------------------------

    # --- processing ----------------------------------------------------------------

    def process(self, wait=False, timeout=None):
        """Handle received packets and connection events; return how many packets.

        With ``wait``, first wait up to ``timeout`` seconds (forever if None) for
        something to arrive. Exceptions raised by handlers are logged (logger
        ``peng3dnet``) and processing goes on.
        """
        # Nothing to do is answered without entering the dispatch loop: one thread may
        # pump hundreds of clients this way.
        if not wait and not self._core.has_work:
            return 0
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
                # Packets go straight to _deliver (the bulk of the events; _dispatch
                # would only unpack them), unless they must go through the byte-level
                # receive methods.
                deliver = None if self._raw_receive else self._deliver
                event_cid = self._event_cid
                for event in events:
                    try:
                        if deliver is not None and event[0] == EV_PACKET:
                            _, cid, pid, flags, msg = event
                            handled += deliver(event_cid(cid), pid, flags, msg)
                            continue
                        handled += self._dispatch(event)
                    except Exception:
                        log.exception(
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
        # Worked out without a generator: this runs once per batch, often per packet.
        own = self.__dict__
        self._raw_receive = not _RAW_RECEIVE.isdisjoint(_redefined(type(self))) or (
            "receive_data" in own or "process_single_packet" in own or "receive_packet" in own
        )
        # Only connection types that override receive() (the ping extension's) can
        # claim a packet; without any, no packet needs its connection type looked up.
        self._conntype_receives = self.conntypes.any_overrides("receive")

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
        if self._process_loops == 0 or predicate():
            return
        with self._dispatch_cond:
            while self._process_loops > 0 and not predicate():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                self._dispatch_cond.wait(remaining if remaining is not None else 0.5)

    def _notify_dispatched(self):
        # Without a condition nobody waits: a waiter makes it before it looks at what
        # the dispatch changed (already changed when this runs).
        cond = self.__dict__.get("_dispatch_condition")
        if cond is not None:
            with cond:
                cond.notify_all()

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

    # --- the seam of the asyncio API (peng3dnet.aio) -----------------------------------
    #
    # peng3dnet.aio drives a server or client through these, the public API, _process
    # (one batch of dispatch, with an observer of connection events), _start,
    # _connection_of, and _core (the native core, for its wake-up socket and the
    # sockets an event loop may read itself).

    def _attach_asyncio(self, aio, queue):
        """Let an asyncio peer (``aio``) take over: received messages go to ``queue``
        (what ``recv`` reads), coroutines returned by packet handlers to
        ``aio._spawn_handler``; ``self.aio`` is set."""
        self._recv_messages = queue
        self._recv_sink = queue
        self._spawn_handler = aio._spawn_handler
        self.aio = aio

    def _running(self):
        """Whether the peer has been started (server) or has connected (client)."""
        return self._is_started

    def _in_process(self):
        """Whether the peer's address is an in-process one (``memory:NAME``)."""
        return self._memory_name is not None

    def _pid_of(self, ptype):
        """The id of a packet type given in any form."""
        return self._packet_id(ptype)[0]

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

    def _debug(self, kind, text):
        if self.cfg[f"net.debug.print.{kind}"]:
            print(text)
        log.debug(text)

    def _debugging_send(self):
        """Whether to report each packet sent (``net.debug.print.send``; printed and
        logged). Asked for every packet, so only the switch is read, as the original
        did."""
        return self.cfg["net.debug.print.send"]

    def _debugging(self, kind):
        """Whether :meth:`_debug` of ``kind`` would show anything (hot paths check this
        before formatting the text)."""
        return self.cfg[f"net.debug.print.{kind}"] or log.isEnabledFor(logging.DEBUG)


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
