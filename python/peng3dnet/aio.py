"""The asyncio API (an addition over peng3dnet): servers and clients driven by an
asyncio event loop instead of threads.

::

    async def main():
        async with peng3dnet.aio.start_server(("127.0.0.1", 8080), packets=["chat:msg"]) as server:
            async with peng3dnet.aio.connect(("127.0.0.1", 8080), packets=["chat:msg"]) as client:
                await client.send("chat:msg", {"text": "hi"})
                cid, name, msg = await server.recv()

An :class:`AioServer` or :class:`AioClient` wraps an ordinary
:class:`~peng3dnet.net.Server` or :class:`~peng3dnet.net.Client` (its ``peer``), which
does the work: the same registry, packet objects, SmartPacket checks, connection types,
hooks, events and wire protocol, so one packet set serves both APIs and an asyncio peer
talks to threaded peers and to the original library alike. Instead of a thread calling
``process()``, a task on the event loop waits for the native core without blocking the
loop and dispatches what arrived: packet handlers, ``on_*`` hooks and events run on
the loop's thread. A packet's ``receive`` may be ``async def``; it then runs as a task.

Messages of packet types without a ``receive`` of their own (given by name, or as a
plain :class:`~peng3dnet.packet.Packet` or SmartPacket) are kept for :meth:`recv` and
:meth:`messages`; types with a handler go to their handler only. When
``net.aio.recv_buffer`` messages wait unread, the peer stops reading from the network
until the app takes some: nothing is dropped, the sender is slowed down instead.
:meth:`send` likewise waits while more than ``net.aio.write_buffer`` bytes are queued
for that peer.
"""

import asyncio
import inspect

from . import errors, net
from ._aio_messages import _MessageQueue, _register
from ._core import EV_CLOSED, EV_CONNECTED, EV_HANDSHAKE_COMPLETE
from ._logs import LazyLogger
from .constants import CONNTYPE_CLASSIC

__all__ = ["AioClient", "AioServer", "connect", "start_server"]

_log = LazyLogger("peng3dnet.aio")


class _AioPeer:
    def __init__(self, peer):
        self.peer = peer
        self._loop = asyncio.get_running_loop()
        cfg = peer.cfg
        self._write_buffer = int(cfg["net.aio.write_buffer"])
        self._queue = _MessageQueue(peer, int(cfg["net.aio.recv_buffer"]))
        self._pump_task = None
        self._wakeup_waiter = None
        self._stopping = False
        self._peer_stopped = False
        self._handler_tasks = set()
        # The peer's dispatch keeps every received user packet in its recv buffer and
        # runs coroutines returned by packet handlers through _spawn_handler.
        peer._attach_asyncio(self, self._queue)

    # --- the dispatch task ---------------------------------------------------------

    def _start_pump(self):
        self._pump_task = self._loop.create_task(
            self._pump(), name=f"peng3dnet.aio {type(self.peer).__name__}"
        )

    def _watch_wakeup(self):
        """Watch the core's wake-up socket from the loop; None where the loop cannot
        watch sockets (Windows' proactor loop): the dispatch task then awaits the core
        through pyo3-async-runtimes instead."""
        try:
            fd = self.peer._core.wakeup_fd()
            self._loop.add_reader(fd, self._on_wakeup)
        except (NotImplementedError, OSError):
            return None
        return fd

    def _on_wakeup(self):
        self.peer._core.drain_wakeup()
        waiter = self._wakeup_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait_for_events(self, core, fd):
        if fd is None:
            await core.events_ready()
        elif core.arm_wakeup():  # false: events are already waiting
            self._wakeup_waiter = self._loop.create_future()
            # The sockets of the core's first connections are watched too, and read
            # here when data arrives: the core's network thread would otherwise read
            # it and then wake the loop, one hand-off more per packet.
            sockets = core.watch_sockets()
            for sock in sockets:
                self._loop.add_reader(sock, self._on_socket_readable, core)
            try:
                await self._wakeup_waiter
            finally:
                self._wakeup_waiter = None
                for sock in sockets:
                    self._loop.remove_reader(sock)
                core.unwatch_sockets()

    def _on_socket_readable(self, core):
        dropped, ready = core.read_watched_sockets()
        for sock in dropped:
            self._loop.remove_reader(sock)
        waiter = self._wakeup_waiter
        if ready and waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _pump(self):
        core = self.peer._core
        fd = self._watch_wakeup()
        try:
            while not self._stopping:
                if self._queue.full():
                    # Back-pressure: stop taking packets until the app reads some. The
                    # core stops reading the socket once its own inbox is full.
                    await self._queue.room()
                    continue
                _, taken = self.peer._process(False, None, self._observe)
                if taken:
                    await asyncio.sleep(0)  # let other tasks run between batches
                elif not self._stopping:
                    await self._wait_for_events(core, fd)
            # Dispatch what arrived up to the stop (the last packets, the closes).
            self.peer._process(False, None, self._observe)
        finally:
            if fd is not None:
                self._loop.remove_reader(fd)
                core.close_wakeup()
            # Also when the task is cancelled (the loop is going away): the connections
            # that are still open end at once, so that no socket outlives the loop.
            self._stop_peer()
            self._queue.close(self._final_reason())

    def _stop_peer(self):
        if not self._peer_stopped:
            self._peer_stopped = True
            self.peer.stop()

    def _final_reason(self):
        return None

    async def _stop(self):
        """Stop the peer (ends open connections that are not closing), let the dispatch
        task handle what is left, and end the handler tasks."""
        self._stopping = True
        self._queue.release()
        self._stop_peer()  # interrupts the core: the dispatch task wakes up and ends
        task = self._pump_task
        if task is not None and task is not asyncio.current_task():
            # wait() does not raise when the task was cancelled, but does when we are.
            await asyncio.wait([task])
        handlers = [t for t in self._handler_tasks if t is not asyncio.current_task()]
        for handler in handlers:
            handler.cancel()
        if handlers:
            await asyncio.gather(*handlers, return_exceptions=True)

    # --- hooks -----------------------------------------------------------------------

    def _spawn_handler(self, coro):
        task = self._loop.create_task(coro)
        self._handler_tasks.add(task)
        task.add_done_callback(self._handler_done)

    def _handler_done(self, task):
        self._handler_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            _log.error(
                "an async handler raised; processing goes on", exc_info=(type(exc), exc, exc.__traceback__)
            )

    def _notify(self, callback, *args):
        if callback is None:
            return
        try:
            result = callback(*args)
        except Exception:
            _log.exception(
                "the %s callback raised; processing goes on", getattr(callback, "__name__", callback)
            )
            return
        if inspect.iscoroutine(result):
            self._spawn_handler(result)

    # --- sending -------------------------------------------------------------------

    async def _send_on(self, conn, ptype, data, cid, what):
        if conn.closing:
            raise errors.ConnectionClosedError(f"cannot send: {what} is closed", conn.close_reason)
        if conn.queued_bytes > self._write_buffer:
            await conn.wait_writable(self._write_buffer)
            if conn.closing:
                raise errors.ConnectionClosedError(
                    f"cannot send: {what} closed while waiting", conn.close_reason
                )
        self.peer.send_message(ptype, data, cid)

    def _msg_pid(self, ptype):
        return None if ptype is None else self.peer._pid_of(ptype)

    def _name(self, pid):
        return self.peer.registry.reg_int_str.get(pid, pid)

    def stats(self, *args, **kwargs):
        """The peer's statistics (see ``Server.stats`` / ``Client.stats``)."""
        return self.peer.stats(*args, **kwargs)

    # ``async with``: the server shuts down, the client closes on leaving the block.
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self._leave()


class _Opening:
    """What :func:`start_server` and :func:`connect` return: await it for the peer, or
    use it as ``async with`` (the peer is closed on leaving the block)."""

    def __init__(self, make):
        self._make = make
        self._peer = None

    def __await__(self):
        return self._make().__await__()

    async def __aenter__(self):
        self._peer = await self._make()
        return await self._peer.__aenter__()

    async def __aexit__(self, *exc_info):
        return await self._peer.__aexit__(*exc_info)


# --- servers ---------------------------------------------------------------------------


class AioServer(_AioPeer):
    """A server on the event loop; made by :func:`start_server`.

    ``peer`` is the :class:`~peng3dnet.net.Server` doing the work and ``clients`` its
    dict of connected clients. ``on_connect(cid)`` runs once a client's handshake is
    complete, ``on_close(cid, reason)`` once its connection is over; both may be
    coroutine functions, and may be assigned on the instance.
    """

    def __init__(self, peer, on_connect=None, on_close=None):
        super().__init__(peer)
        self.on_connect = on_connect
        self.on_close = on_close
        self._close_waiters = {}
        self._all_gone = asyncio.Event()
        self._all_gone.set()

    @property
    def address(self):
        """Where the server listens: ``(host, port)`` with the real port, or
        ``("memory:NAME", 0)``."""
        return self.peer.sock.getsockname()

    @property
    def clients(self):
        """Connected clients by cid (the server's ``ClientOnServer`` objects)."""
        return self.peer.clients

    def _observe(self, event):
        kind = event[0]
        if kind == EV_CONNECTED:
            self._all_gone.clear()
        elif kind == EV_HANDSHAKE_COMPLETE:
            if event[1] in self.peer.clients:
                self._notify(self.on_connect, event[1])
        elif kind == EV_CLOSED:
            cid, reason = event[1], event[2]
            for waiter in self._close_waiters.pop(cid, ()):
                if not waiter.done():
                    waiter.set_result(reason)
            self._notify(self.on_close, cid, reason)
            if not self.peer.clients:
                self._all_gone.set()

    def _final_reason(self):
        return "serverstop"

    def _conn(self, cid):
        client = self.peer.clients.get(cid)
        if client is None:
            raise KeyError(f"there is no connected client with id {cid!r}")
        return client.conn

    async def send(self, ptype, data, cid):
        """Send ``data`` as a packet of type ``ptype`` (id, name or packet object) to
        client ``cid``. Waits while more than ``net.aio.write_buffer`` bytes are queued
        for it; raises ``ConnectionClosedError`` if its connection is closed and
        ``KeyError`` for an unknown cid."""
        await self._send_on(self._conn(cid), ptype, data, cid, f"the connection to client {cid}")

    def broadcast(self, ptype, data, cids=None, exclude=()):
        """``Server.broadcast``: queue one message to many clients (no waiting); returns
        how many it was queued to."""
        return self.peer.broadcast(ptype, data, cids, exclude)

    async def recv(self, ptype=None, timeout=None):
        """The next message (of type ``ptype``, if given) from any client:
        ``(cid, name, msg)``. Raises ``TimedOutError`` after ``timeout`` seconds and
        ``ConnectionClosedError`` once the server has stopped and nothing is left."""
        pid = self._msg_pid(ptype)
        # A message that is already there is taken without setting up a wait.
        item = self._queue._take_now(pid) or await self._queue.get(pid, timeout, "the server")
        return item[0], self._name(item[1]), item[2]

    async def messages(self, ptype=None):
        """``async for cid, name, msg in server.messages():`` every message kept for
        :meth:`recv`, until the server stops."""
        while True:
            try:
                yield await self.recv(ptype)
            except errors.ConnectionClosedError:
                return

    async def close(self, cid, reason=None):
        """Close the connection to client ``cid`` (queued packets first, then
        ``reason``, which the client receives); returns once it is over."""
        conn = self._conn(cid)
        waiter = self._loop.create_future()
        self._close_waiters.setdefault(cid, []).append(waiter)
        self.peer.close_connection(cid, reason)
        limit = float(self.peer.cfg["net.timeout.close"]) + 1.0
        try:
            return await asyncio.wait_for(waiter, limit)
        except asyncio.TimeoutError:
            conn.abort(reason)
            return reason

    async def shutdown(self, reason="servershutdown", timeout=None):
        """Close every connection with ``reason`` (each client receives it), wait up to
        ``timeout`` seconds (default ``net.timeout.shutdown``) for them to go, then stop
        the server: it stops listening and its remaining connections end."""
        if self._stopping:
            await self._stop()
            return
        limit = float(timeout if timeout else self.peer.cfg["net.timeout.shutdown"])
        deadline = self._loop.time() + limit
        for cid in list(self.peer.clients):
            try:
                self.peer.close_connection(cid, reason)
            except Exception:
                _log.exception("closing connection %s during shutdown failed", cid)
        self.peer._core.close_all(reason)
        try:
            await asyncio.wait_for(self._all_gone.wait(), limit)
        except asyncio.TimeoutError:
            pass
        await self._stop()
        # The sockets close once each connection's tasks have ended (after the close
        # packet was read, or the linger time): wait for that without blocking the loop.
        remaining = max(deadline - self._loop.time(), 0.0)
        await self._loop.run_in_executor(None, self.peer._core.wait_all_gone, remaining)

    async def _leave(self):
        await self.shutdown()


def start_server(
    addr=None,
    *,
    packets=None,
    cfg=None,
    server=None,
    clientcls=None,
    peng=None,
    on_connect=None,
    on_close=None,
):
    """Start a server on the running event loop; ``await`` it for the
    :class:`AioServer` (listening once it returns), or use ``async with``.

    ``addr``, ``cfg``, ``clientcls`` and ``peng`` are those of
    :class:`~peng3dnet.net.Server`; ``packets`` registers packet types (see the module
    docs); ``server`` is an existing, not yet started :class:`~peng3dnet.net.Server` (or
    subclass) to run instead of a new one. Raises ``OSError`` if the address cannot be
    bound.
    """

    async def make():
        peer = server
        if peer is None:
            peer = net.Server(peng=peng, addr=addr, clientcls=clientcls, cfg=cfg)
        elif addr is not None or cfg is not None or clientcls is not None or peng is not None:
            raise TypeError("give either server= or addr/cfg/clientcls/peng, not both")
        if peer._running():
            raise RuntimeError("this server is already running; give a server that was not started")
        aio = AioServer(peer, on_connect, on_close)
        peer.initialize()
        _register(peer, packets)
        peer._start()
        aio._start_pump()
        return aio

    return _Opening(make)


# --- clients ---------------------------------------------------------------------------


class AioClient(_AioPeer):
    """A client on the event loop; made by :func:`connect`.

    ``peer`` is the :class:`~peng3dnet.net.Client` doing the work. ``on_close(reason)``
    runs once the connection is over (it may be a coroutine function, and may be
    assigned on the instance).
    """

    def __init__(self, peer, on_close=None):
        super().__init__(peer)
        self.on_close = on_close
        self._connected = self._loop.create_future()
        self._closed = self._loop.create_future()

    @property
    def closed(self):
        """Whether the connection is over."""
        return self._closed.done()

    @property
    def close_reason(self):
        """Why the connection ended (None while it is open)."""
        return self._closed.result() if self._closed.done() else None

    def _observe(self, event):
        kind = event[0]
        if kind == EV_HANDSHAKE_COMPLETE:
            if not self._connected.done():
                self._connected.set_result(None)
        elif kind == EV_CLOSED:
            reason = event[2]
            if not self._connected.done():
                self._connected.set_exception(
                    errors.ConnectionClosedError(
                        f"the connection closed before the handshake completed (reason: {reason})", reason
                    )
                )
            if not self._closed.done():
                self._closed.set_result(reason)
                self._notify(self.on_close, reason)
            # A client has one connection: once it is over, the client is done.
            self._stopping = True

    def _final_reason(self):
        return self.close_reason

    async def send(self, ptype, data):
        """Send ``data`` as a packet of type ``ptype`` (id, name or packet object) to
        the server. Waits while more than ``net.aio.write_buffer`` bytes are queued;
        raises ``ConnectionClosedError`` once the connection is closed."""
        await self._send_on(self.peer._connection_of(), ptype, data, None, "the connection")

    async def recv(self, ptype=None, timeout=None):
        """The next message (of type ``ptype``, if given): ``(name, msg)``. Raises
        ``TimedOutError`` after ``timeout`` seconds and ``ConnectionClosedError`` once
        the connection is over and nothing is left."""
        pid = self._msg_pid(ptype)
        # A message that is already there is taken without setting up a wait.
        item = self._queue._take_now(pid) or await self._queue.get(pid, timeout, "the connection")
        return self._name(item[1]), item[2]

    async def messages(self, ptype=None):
        """``async for name, msg in client.messages():`` every message kept for
        :meth:`recv`, until the connection is over."""
        while True:
            try:
                yield await self.recv(ptype)
            except errors.ConnectionClosedError:
                return

    async def wait_closed(self):
        """Wait until the connection is over; returns the close reason."""
        return await asyncio.shield(self._closed)

    async def close(self, reason=None):
        """Close the connection (queued packets first, then ``reason``, which the
        server receives) and stop the client; returns the close reason."""
        if not self._closed.done() and not self._stopping:
            self.peer.close_connection(reason=reason)
            limit = float(self.peer.cfg["net.timeout.close"]) + 1.0
            try:
                await asyncio.wait_for(asyncio.shield(self._closed), limit)
            except asyncio.TimeoutError:
                self.peer.close(reason)
        await self._stop()
        return self.close_reason

    async def _leave(self):
        await self.close()


def connect(
    addr=None,
    *,
    packets=None,
    cfg=None,
    conntype=CONNTYPE_CLASSIC,
    client=None,
    peng=None,
    timeout=None,
    on_close=None,
):
    """Connect to a server; ``await`` it for the :class:`AioClient` once the
    handshake is complete, or use ``async with``.

    ``addr``, ``cfg``, ``conntype`` and ``peng`` are those of
    :class:`~peng3dnet.net.Client`; ``packets`` registers packet types (see the module
    docs); ``client`` is an existing, not yet connected :class:`~peng3dnet.net.Client`
    (or subclass) to run instead of a new one. Raises ``OSError`` if the server cannot
    be reached, ``ConnectionClosedError`` if the connection closes during the
    handshake, and ``TimedOutError`` after ``timeout`` seconds (default: no limit of
    its own; ``net.timeout.handshake`` applies).
    """

    async def make():
        peer = client
        if peer is None:
            peer = net.Client(peng=peng, addr=addr, cfg=cfg, conntype=conntype)
        elif addr is not None or cfg is not None or peng is not None:
            raise TypeError("give either client= or addr/cfg/peng, not both")
        if peer._running():
            raise RuntimeError("this client is already connected; give a client that was not started")
        aio = AioClient(peer, on_close)
        peer.initialize()
        _register(peer, packets)
        if peer._in_process():
            peer._start()
        else:
            # Connecting waits for the network (without the GIL): off the loop's thread.
            await aio._loop.run_in_executor(None, peer._start)
        aio._start_pump()
        try:
            await asyncio.wait_for(asyncio.shield(aio._connected), timeout)
        except asyncio.TimeoutError:
            await aio._stop()
            raise errors.TimedOutError(f"the handshake did not complete within {timeout} seconds") from None
        except BaseException:
            await aio._stop()
            raise
        return aio

    return _Opening(make)
