"""Packet types.

A :class:`Packet` object stands for one packet type of a server or client: it is
registered under a name and id, and its :meth:`Packet.receive` runs for every packet of
that type that arrives. :class:`SmartPacket` adds conditions (connection state, side,
mode, connection type, TLS level) that a packet must meet to be sent or handled.
"""

import inspect

from .. import errors
from .._hooks import library_default
from ..constants import *  # noqa: F403 (the original exports every constant from here too)
from ..constants import SIDE_CLIENT, SIDE_SERVER, SSLSEC_NONE, STATE_ACTIVE

__all__ = ["Packet", "PrintPacket", "SmartPacket"]


class Packet:
    """One packet type. ``reg`` is the registry, ``peer`` the server or client it serves."""

    def __init__(self, reg, peer, obj=None):
        self.reg = reg
        self.peer = peer
        self.obj = obj

    def _receive(self, msg, cid=None):
        """Called for each received packet of this type; calls :meth:`receive`."""
        result = self.receive(msg, cid)
        if result is not None:
            _returned(self, result)

    @library_default
    def _send(self, msg, cid=None):
        """Called for each packet of this type sent; calls :meth:`send`. The client calls
        it before queueing the packet, with the message; the server after, with the
        encoded frame (as the original does)."""
        self.send(msg, cid)

    @library_default
    def receive(self, msg, cid=None):
        """Handle a received packet: ``msg`` is the decoded message, ``cid`` the sender
        (``None`` on the client side)."""

    @library_default
    def send(self, msg, cid=None):
        """Hook run for each packet of this type sent: ``msg`` is the message object on
        the client and the encoded frame on the server (as in the original), ``cid`` the
        recipient (``None`` on the client side)."""


class SmartPacket(Packet):
    """A packet type with conditions on when it may be sent and handled.

    Override the class attributes in a subclass. A received packet that does not meet
    them is not handled (its ``receive`` does not run); a sent one, as in the original,
    is sent all the same, but its ``send`` hook does not run. Either way
    ``invalid_action`` decides what else happens: ``"ignore"`` nothing, ``"close"``
    closes the connection with the reason ``"smartpacketinvalid"``. A packet below its
    ``min_sslsec_level`` is the exception: peng3dnet-rs never sends it.
    """

    state = STATE_ACTIVE
    """The connection must be in exactly this state, to send and to handle."""

    side = None
    """``SIDE_SERVER``/``SIDE_CLIENT``: the only side that may receive (so the other is
    the only one that may send); ``None``: both."""

    min_sslsec_level = SSLSEC_NONE
    """Lowest ``SSLSEC_*`` level of the connection at which the packet may be sent."""

    mode = None
    """If set, the connection's mode must equal it."""

    conntype = None
    """If set, the connection's connection type must equal it."""

    invalid_action = "ignore"
    """``"ignore"`` or ``"close"``; anything else raises
    :class:`~peng3dnet.errors.InvalidSmartPacketActionError` when a check fails."""

    def _receive(self, msg, cid=None):
        """Runs :meth:`receive` if the conditions are met, else ``invalid_action``."""
        if self._conditions_met(cid, receiving=True):
            result = self.receive(msg, cid)
            if result is not None:
                _returned(self, result)
            return True
        self._invalid(cid)
        return False

    @library_default
    def _send(self, msg, cid=None):
        """Runs :meth:`send` if the conditions are met, else ``invalid_action``.

        As in the original, this runs for a packet that has been sent (the server's
        ``msg`` is the encoded frame): the conditions decide about the hook and the
        action, not about sending."""
        if self._conditions_met(cid, receiving=False):
            self.send(msg, cid)
            return True
        self._invalid(cid)
        return False

    def _may_send(self, cid=None):
        """Whether the packet may be sent now; runs ``invalid_action`` if not (used by
        ``Server.broadcast`` to choose its recipients)."""
        if self._conditions_met(cid, receiving=False):
            return True
        self._invalid(cid)
        return False

    def _conditions_met(self, cid, receiving):
        if cid is None:
            # On the client: receiving needs a client-side packet, sending a server-side one.
            allowed_side = SIDE_CLIENT if receiving else SIDE_SERVER
            conn = self.peer
            state = conn.remote_state
        else:
            allowed_side = SIDE_SERVER if receiving else SIDE_CLIENT
            conn = self.peer.clients[cid]
            state = conn.state
        return (
            (self.side is None or self.side == allowed_side)
            and state == self.state
            and (receiving or conn.ssl_seclevel >= self.min_sslsec_level)
            and (self.mode is None or conn.mode == self.mode)
            and (self.conntype is None or conn.conntype == self.conntype)
        )

    def _invalid(self, cid):
        if self.invalid_action == "ignore":
            return
        if self.invalid_action == "close":
            self.peer.close_connection(cid, "smartpacketinvalid")
            return
        raise errors.InvalidSmartPacketActionError(
            f"{type(self).__name__}.invalid_action is {self.invalid_action!r}; "
            "it must be 'ignore' or 'close'. The packet was dropped."
        )


def _returned(packet, result):
    """What ``receive`` returned: a coroutine (``async def receive``) is run as a task
    on the event loop of the peer's asyncio API; anything else is ignored."""
    if not inspect.iscoroutine(result):
        return
    spawn = getattr(packet.peer, "_spawn_handler", None)
    if spawn is None:
        result.close()
        raise TypeError(
            f"{type(packet).__name__}.receive is a coroutine function; async handlers run only "
            "on servers and clients of the asyncio API (peng3dnet.aio)"
        )
    spawn(result)


class PrintPacket(Packet):
    """A packet type that prints every message it receives (with the sender's id on
    the server)."""

    def receive(self, msg, cid=None):
        if cid is None:
            print(f"[CLIENT] packet received: {msg!r}")
        else:
            print(f"[SERVER] packet received from client {cid}: {msg!r}")
