"""Ping: ask a server for a little information without a full handshake.

A ping client connects with the ``ping`` connection type, which skips the registry
synchronisation, sends one ping packet (raw id 64) and gets one pong packet (raw id 65)
back: the server's information, its own version, and (with :data:`WRITEBACK`) the ping
message it answered. Neither side needs to register any packet.

Servers become pingable with :class:`PingableServerMixin`::

    class GameServer(PingableServerMixin, peng3dnet.Server):
        pingdata = {"name": "My server"}                 # static information

        def getPingData(self, msg, cid):                 # dynamic information
            return {"players": len(self.clients)}

and anyone can ask: ``pingServer(addr="host:8080")["delay"]`` is the round trip in
seconds.
"""

import threading
import time

from .. import conntypes, errors, net, version
from ..constants import *  # noqa: F403 (the original exports every constant from here too)
from ..constants import CONNTYPE_PING, MODE_PING, STATE_ACTIVE, STATE_CLOSED

__all__ = [
    "WRITEBACK",
    "PingConnectionType",
    "PingableClientMixin",
    "PingableServerMixin",
    "pingServer",
]

WRITEBACK = True
"""Whether a pong includes the ping message it answers (under the key ``oldmsg``).

``pingServer`` does not need it to measure the round trip; set it to ``False`` if
servers should not echo what clients send them."""

AUTO_TIME = "__AUTO__"
"""A ping's ``"time"`` with this value is replaced by the time of sending."""

PING_ID = 64
"""Raw packet id of a ping (client to server)."""

PONG_ID = 65
"""Raw packet id of a pong (server to client)."""


class PingConnectionType(conntypes.ConnectionType):
    """The ``ping`` connection type: one ping, one pong, then the client closes.

    Every packet on such a connection is handled here; registered packets are never
    involved.
    """

    def init(self, cid):
        """Server: the connection is usable at once. Client: send the ping."""
        if cid is None:
            self.peer._ping()
            self.peer.remote_state = STATE_ACTIVE
        else:
            self.peer.clients[cid].state = STATE_ACTIVE

    def receive(self, msg, pid, flags, cid):
        """Answer pings (server), hand pongs to the client, refuse anything else."""
        if pid == PING_ID:
            if cid is None:
                self.peer.close_connection(None, "pinginvalidside")
                return True
            client = self.peer.clients[cid]
            client.mode = MODE_PING
            self.peer.send_message(PONG_ID, self._answer(msg, cid), cid)
        elif pid == PONG_ID:
            if cid is not None:
                self.peer.close_connection(cid, "pinginvalidside")
                return True
            try:
                on_pong = getattr(self.peer, "on_pong", None)
                if callable(on_pong):
                    on_pong(msg)
                self.peer._pong(msg)
            finally:
                self.peer.close_connection(reason="pingcomplete")
        else:
            self.peer.close_connection(cid, "invalidpingpacket")
        return True

    def _answer(self, msg, cid):
        answer = {"oldmsg": msg} if WRITEBACK else {}
        dynamic = getattr(self.peer, "getPingData", None)
        if callable(dynamic):
            answer.update(dynamic(msg, cid))
        answer.update(getattr(self.peer, "pingdata", None) or {})
        answer.update(self.getPingData(msg, cid))
        return answer

    def send(self, msg, pid, cid):
        """Only pings and pongs may be sent on a ping connection."""
        if pid == PING_ID:
            self.peer.mode = MODE_PING
        elif pid != PONG_ID:
            raise ValueError(
                f"only ping ({PING_ID}) and pong ({PONG_ID}) packets can be sent on a ping connection"
            )
        return True

    def getPingData(self, msg, cid=None):
        """What every pong contains: the library's versions (server side only)."""
        return {
            "peng3dnet": {
                "version": version.VERSION,
                "release": version.RELEASE,
                "protoversion": version.PROTOVERSION,
            }
        }


class PingableServerMixin:
    """Mix into a :class:`~peng3dnet.net.Server` subclass (before it) to answer pings."""

    pingdata = {}
    """Static information added to every pong (server name, message of the day, ...)."""

    def getPingData(self, msg, cid):
        """Dynamic information added to every pong; ``msg`` is the ping, ``cid`` the
        client. Override it (the default adds nothing)."""
        return {}

    def _reg_conntypes_ping(self):
        self.addConnType(CONNTYPE_PING, PingConnectionType(self))


class PingableClientMixin:
    """Mix into a :class:`~peng3dnet.net.Client` subclass (before it) to send pings.

    Create the client with ``conntype=CONNTYPE_PING``; the ping is sent as soon as the
    server accepted the connection type. Each client keeps its own answer.
    """

    _pingdata = None
    """The message the ping carries (see :meth:`setPingData`)."""

    _pongdata = None
    """The server's answer, once it arrived."""

    _ping_sent = None  # perf_counter() when the ping was sent
    _pong_received = None  # ... and when the answer arrived

    @property
    def _pong_condition(self):
        """Notified when the answer arrives or the connection closes; one per client (the
        original kept a single one on the class for every client, its bug 8)."""
        cond = self.__dict__.get("_pong_cond")
        if cond is None:
            cond = self.__dict__.setdefault("_pong_cond", threading.Condition())
        return cond

    def _reg_conntypes_ping(self):
        self.addConnType(CONNTYPE_PING, PingConnectionType(self))

    def setPingData(self, d):
        """Set the message the ping will carry (replacing an earlier one). Its ``"time"``
        key, if missing or ``"__AUTO__"``, is set to the time of sending."""
        self._pingdata = dict(d)

    def _ping(self):
        msg = dict(self._pingdata or {})
        if msg.get("time", AUTO_TIME) == AUTO_TIME:
            msg["time"] = time.time()
        self._ping_sent = time.perf_counter()
        self.send_message(PING_ID, msg)

    def _pong(self, data):
        with self._pong_condition:
            self._pongdata = data
            self._pong_received = time.perf_counter()
            self._pong_condition.notify_all()

    def wait_for_pong(self, timeout=None):
        """Wait up to ``timeout`` seconds (forever if None) for the pong and return it.

        Raises :class:`~peng3dnet.errors.FailedPingError` if none arrives in time or the
        connection closes without one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        cond = self._pong_condition
        with cond:
            while self._pongdata is None:
                if self.remote_state == STATE_CLOSED:
                    reason = self._close_reason
                    raise errors.FailedPingError(f"the connection closed without an answer ({reason})")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise errors.FailedPingError(f"no answer to the ping within {timeout} seconds")
                # The close is not signalled here (on_close is the app's): look again soon.
                cond.wait(0.05 if remaining is None else min(remaining, 0.05))
            return self._pongdata

    def _ping_round_trip(self):
        if self._ping_sent is None or self._pong_received is None:
            return None
        return self._pong_received - self._ping_sent


class _PingClient(PingableClientMixin, net.Client):
    pass


def pingServer(peng=None, addr=None, cfg=None, data=None, clientcls=_PingClient, timeout=10.0):
    """Ping a server and return its answer.

    ``peng``, ``addr`` and ``cfg`` are passed to the client (``clientcls``); ``data`` is
    the message to send (copied, never modified; its ``"time"`` key is set). Returns the
    server's pong with two keys added: ``recvtime`` (when it arrived, as ``time.time()``)
    and ``delay`` (the round trip in seconds). Raises
    :class:`~peng3dnet.errors.FailedPingError` if no answer arrives within ``timeout``
    seconds, and ``OSError`` (such as ``ConnectionRefusedError``) if the server cannot
    be reached.
    """
    client = clientcls(peng, addr, dict(cfg or {}), CONNTYPE_PING)
    message = dict(data or {})
    message["time"] = AUTO_TIME
    client.setPingData(message)
    received = {}

    def on_pong(msg):
        # Called by the ping connection type with the answer, before wait_for_pong wakes.
        if isinstance(msg, dict):
            msg["recvtime"] = time.time()
        received["answer"] = msg

    client.on_pong = on_pong
    try:
        client.runAsync()
        client.process_async()
        answer = client.wait_for_pong(timeout)
        answer = received.get("answer", answer)
        answer = dict(answer) if isinstance(answer, dict) else {"answer": answer}
        answer.setdefault("recvtime", time.time())
        delay = client._ping_round_trip() if isinstance(client, PingableClientMixin) else None
        if delay is None:
            delay = answer["recvtime"] - answer["oldmsg"]["time"]
        answer["delay"] = delay
        return answer
    finally:
        # The original left its client running; this one is done.
        client.stop()
        client.join(1)
