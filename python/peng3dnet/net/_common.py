"""What the parts of :mod:`peng3dnet.net` share: the event kinds of the native core, the
internal packets, the logger, and small helpers of the send and receive paths."""

import struct

from .. import _core
from .._hooks import overrides as _overrides
from .._logs import LazyLogger
from ..constants import SSLSEC_NONE, STRUCT_FORMAT_HEADER, STRUCT_FORMAT_LENGTH32
from ..packet import SmartPacket
from ..packet import internal as _internal

STRUCT_HEADER = struct.Struct(STRUCT_FORMAT_HEADER)
"""Precompiled ``struct`` of the packet header (packet id, flags)."""

STRUCT_LENGTH32 = struct.Struct(STRUCT_FORMAT_LENGTH32)
"""Precompiled ``struct`` of the length prefix."""

log = LazyLogger("peng3dnet.net")

# The protocol's own decisions come from the core: ids below INTERNAL_ID_LIMIT are
# internal; the internal packets' names and ids; the close packet's id.
INTERNAL_ID_LIMIT = _core.INTERNAL_ID_LIMIT
_CLOSE_PID = _core.PID_CLOSE
_INTERNAL_CLASSES = {
    "peng3dnet:internal.hello": _internal.HelloPacket,
    "peng3dnet:internal.settype": _internal.SetTypePacket,
    "peng3dnet:internal.handshake": _internal.HandshakePacket,
    "peng3dnet:internal.handshake.accept": _internal.HandshakeAcceptPacket,
    "peng3dnet:internal.closeconn": _internal.CloseConnectionPacket,
}
_INTERNAL_PACKETS = tuple((name, _INTERNAL_CLASSES[name], pid) for name, pid in _core.INTERNAL_PACKETS)

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


def _internal_type(ptype):
    """Whether the original treats ``ptype`` as internal (no connection type sees it):
    an internal id or a name in the ``peng3dnet:`` namespace."""
    if type(ptype) is str:
        return ptype.startswith("peng3dnet:")
    return isinstance(ptype, int) and ptype < INTERNAL_ID_LIMIT


def _hooks_see_message(pkt):
    """Whether a packet object's send hooks may look at what they are given (else the
    encoded frame need not be made for them)."""
    if pkt is None:
        return False
    return _overrides(pkt, "_send") or _overrides(pkt, "send")


def _send_hooks_act(pkt, sees):
    """Whether calling a packet object's ``_send`` can have an effect: its ``_send`` or
    ``send`` is an app's (``sees``, from the send route, or set on the object since),
    or it is a SmartPacket whose failed conditions do something (an ``invalid_action``
    other than ``"ignore"``). Otherwise ``_send`` ends in the library's no-op ``send``
    or in nothing, and the send paths skip it."""
    if sees:
        return True
    own = pkt.__dict__
    return (
        "send" in own or "_send" in own or (isinstance(pkt, SmartPacket) and pkt.invalid_action != "ignore")
    )


def _ssl_state(seclevel):
    return "handshake" if seclevel == SSLSEC_NONE else "connected"


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
