"""The messages side of the asyncio API (:mod:`peng3dnet.aio`): which packet types an
asyncio peer registers and which of them have handlers, and the queue of messages kept
for ``recv()``, with its back-pressure on the network."""

import asyncio
import collections

from . import errors
from ._hooks import overrides
from .packet import Packet, SmartPacket

# --- packets ---------------------------------------------------------------------------


def _packet_specs(packets):
    """``packets`` as ``[(name, spec)]``: a mapping ``{name: spec}`` or an iterable of
    names and ``(name, spec)`` pairs; ``spec`` is None, a Packet subclass or instance."""
    if packets is None:
        return []
    if isinstance(packets, str):
        raise TypeError(f"packets must be a list or dict of packet names, not the string {packets!r}")
    if isinstance(packets, dict):
        return list(packets.items())
    specs = []
    for item in packets:
        if isinstance(item, str):
            specs.append((item, None))
        else:
            name, spec = item
            specs.append((name, spec))
    return specs


def _register(peer, packets):
    for name, spec in _packet_specs(packets):
        if spec is None:
            obj = Packet(peer.registry, peer)
        elif isinstance(spec, type) and issubclass(spec, Packet):
            obj = spec(peer.registry, peer)
        elif isinstance(spec, Packet):
            obj = spec
        else:
            raise TypeError(
                f"packet {name!r}: give None (messages go to recv()), a Packet subclass or a "
                f"Packet instance, not {spec!r}"
            )
        peer.register_packet(name, obj)


def _has_handler(pkt):
    return overrides(pkt, "receive")


# --- received messages -----------------------------------------------------------------


class _MessageQueue:
    """Messages waiting for ``recv()``. The peer's dispatch puts every received user
    packet here (as it does for the threaded ``recv``); packets with a handler of their
    own are left to it."""

    def __init__(self, peer, limit):
        self._peer = peer
        self._items = collections.deque()
        self._limit = max(1, limit)
        self._getters = []
        self._room = None
        self._closed = False
        self._reason = None

    # Called by the dispatch, on the loop's thread.
    def put(self, cid, pid, msg):
        pkt = self._peer.registry.reg_int_obj.get(pid)
        if pkt is not None:
            if _has_handler(pkt):
                return
            if isinstance(pkt, SmartPacket) and not pkt._conditions_met(cid, receiving=True):
                return
        self._items.append((cid, pid, msg))
        if self._getters:
            self._wake()

    def take(self, pid, wait=0.0):
        raise RuntimeError("this peer runs on asyncio: use 'await peer.aio.recv()' instead of recv()")

    def full(self):
        return len(self._items) >= self._limit

    async def room(self):
        """Wait until a message was taken from a full queue (or :meth:`release`)."""
        if self.full() and not self._closed:
            self._room = asyncio.get_running_loop().create_future()
            await self._room

    def release(self):
        """Wake a :meth:`room` waiter now (the peer is stopping)."""
        if self._room is not None and not self._room.done():
            self._room.set_result(None)

    def _take_now(self, pid):
        items = self._items
        if pid is None:
            item = items.popleft() if items else None
        else:
            item = None
            for i, candidate in enumerate(items):
                if candidate[1] == pid:
                    item = candidate
                    del items[i]
                    break
        if item is not None and self._room is not None and not self.full():
            if not self._room.done():
                self._room.set_result(None)
            self._room = None
        return item

    async def get(self, pid, timeout, what):
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            item = self._take_now(pid)
            if item is not None:
                return item
            if self._closed:
                raise errors.ConnectionClosedError(f"no more messages: {what} is closed", self._reason)
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise errors.TimedOutError(f"no message arrived within {timeout} seconds")
            getter = loop.create_future()
            self._getters.append(getter)
            try:
                if remaining is None:
                    await getter
                else:
                    await asyncio.wait_for(getter, remaining)
            except asyncio.TimeoutError:
                pass
            finally:
                if getter in self._getters:
                    self._getters.remove(getter)

    def _wake(self):
        getters, self._getters = self._getters, []
        for getter in getters:
            if not getter.done():
                getter.set_result(None)

    def close(self, reason=None):
        """No more messages will come; waiting getters raise once the queue is empty."""
        self._closed = True
        self._reason = reason
        self._wake()
        self.release()


# --- the shared part of servers and clients ----------------------------------------------
