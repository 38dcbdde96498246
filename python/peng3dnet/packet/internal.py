"""The internal packets of the handshake and of closing.

Registered by every server and client under names starting with ``peng3dnet:`` and ids
below 64. In peng3dnet-rs the native core runs their logic (so a handshake completes
without waiting for ``process()``); these classes keep the original names and declared
conditions, and their hooks still run for each such packet sent or received.

Handshake: the server sends :class:`HelloPacket`; the client answers with
:class:`SetTypePacket` naming its connection type; for the classic type the server sends
:class:`HandshakePacket` with its registry, the client adopts the server's ids and
answers with :class:`HandshakeAcceptPacket`. :class:`CloseConnectionPacket` may be sent
at any time by either side and carries the close reason.
"""

from .. import version  # noqa: F401 (reachable as peng3dnet.packet.internal.version)
from .._hooks import library_default
from ..constants import *  # noqa: F403 (the original exports every constant from here too)
from ..constants import (
    CONNTYPE_NOTSET,
    SIDE_CLIENT,
    SIDE_SERVER,
    STATE_HANDSHAKE_WAIT1,
    STATE_HELLOWAIT,
    STATE_WAITTYPE,
)
from . import Packet, SmartPacket

__all__ = [
    "CloseConnectionPacket",
    "HandshakeAcceptPacket",
    "HandshakePacket",
    "HelloPacket",
    "SetTypePacket",
]


class _HandledByCore(SmartPacket):
    """The core has already checked and acted on the packet; only the hooks remain."""

    def _receive(self, msg, cid=None):
        self.receive(msg, cid)
        return True

    @library_default
    def _send(self, msg, cid=None):
        self.send(msg, cid)
        return True


class HelloPacket(_HandledByCore):
    """Server to client, first packet of every connection: ``{"version",
    "protoversion"}``. A client with another protocol version closes with
    ``"protoversionmismatch"``."""

    state = STATE_HELLOWAIT
    side = SIDE_CLIENT
    conntype = CONNTYPE_NOTSET


class SetTypePacket(_HandledByCore):
    """Client to server: ``{"conntype"}``, the connection type (``"classic"`` if
    missing). An unknown type closes with ``"unknownconntype"``."""

    state = STATE_WAITTYPE
    side = SIDE_SERVER


class HandshakePacket(_HandledByCore):
    """Server to client: ``{"version", "protoversion", "registry"}``. With
    ``net.registry.autosync`` the client adopts the server's ids; registries with
    different names close with ``"packetregmismatch"`` if
    ``net.registry.missingpacketaction`` is ``"closeconnection"``."""

    state = STATE_HANDSHAKE_WAIT1
    side = SIDE_CLIENT
    invalid_action = "close"


class HandshakeAcceptPacket(_HandledByCore):
    """Client to server: ``{"success": True}``; the connection is now active."""

    state = STATE_HANDSHAKE_WAIT1
    side = SIDE_SERVER
    invalid_action = "close"


class CloseConnectionPacket(Packet):
    """Either way, any time: ``{"reason"}``; the receiver closes the connection and
    reports that reason to ``on_close``."""

    def receive(self, msg, cid=None):
        # The core has already ended the connection; this runs the close procedure of
        # the server's ClientOnServer or of the client with the peer's reason (the
        # original's close(), which apps override).
        reason = msg.get("reason") if isinstance(msg, dict) else None
        if cid is None:
            self.peer.close(reason=reason)
            return
        client = self.peer.clients.get(cid)
        if client is not None:
            client.close(reason)
