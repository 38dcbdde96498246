"""The send path of servers and clients: from a packet type in any form to the route
its packets take (id, packet object, what its hooks need), and queueing them on a
connection of the native core."""

import threading

from .. import _core
from .._hooks import redefined as _redefined
from ..constants import SSLSEC_NONE
from ..packet import SmartPacket
from ..registry import PacketRegistry
from ._common import _CLOSE_PID, INTERNAL_ID_LIMIT, _hooks_see_message, _internal_type, log

# Registry classes known to leave getInt and getObj as they are.
_PLAIN_REGISTRIES = set()

# In a send route: the packet object is to be asked of the app's registry (getObj).
_ASK_REGISTRY = object()


class _Sending:
    """The send-path methods of :class:`~peng3dnet.net._peer._Peer`."""

    def _packet_id(self, ptype):
        """(id, packet object or None, whether internal) of a packet type in any form."""
        reg = self.registry
        if type(ptype) is str and type(reg) is PacketRegistry:
            # The common case (a name, the library's own registry), without the
            # method calls of getID: the same lookups and the same KeyError.
            pid = reg.reg_int_str._inv[ptype]
            internal = pid < INTERNAL_ID_LIMIT or ptype.startswith("peng3dnet:")
            return pid, reg.reg_int_obj._fwd.get(pid), internal
        pid = reg.getID(ptype)
        pkt = reg.reg_int_obj.get(pid)
        internal = pid < INTERNAL_ID_LIMIT or (isinstance(ptype, str) and ptype.startswith("peng3dnet:"))
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
        reg = self._registry
        if type(reg) in _PLAIN_REGISTRIES or not self._registry_overridden():
            # _route_in's cache hit, inline (this runs for every packet sent).
            routes = getattr(reg, "_routes", None) if type(ptype) is str else None
            route = routes.get(ptype) if routes is not None else None
            return route if route is not None else self._route_in(reg, ptype)
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
            log.warning("packet %s not sent: the connection is below its min_sslsec_level", ptype)
            return self._codec().encode(pid, data) if want_frame else True
        frame = conn.send(pid, data, want_frame)
        if frame is False:
            log.debug("packet %s on a closing connection dropped", ptype)
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
