"""The dispatch of the native core's events, for both sides.

The process loop (:meth:`~peng3dnet.net._peer._Peer._process`) hands each event to
:meth:`_Dispatch._dispatch`. Packets, packets the core sent on its own, connection-type
``init`` and log records are handled here the same way on both sides; a side says who
receives the hooks of a connection (``_receiver``: the server's ``ClientOnServer``, or
the client itself) and handles the events whose effects differ (``_connection_opened``,
``_handshake_completed``, ``_connection_closed``).
"""

from .._hooks import overrides as _overrides
from ._common import (
    EV_CLOSED,
    EV_CONNECTED,
    EV_HANDSHAKE_COMPLETE,
    EV_INIT,
    EV_LOG,
    EV_PACKET,
    EV_SENT,
    INTERNAL_ID_LIMIT,
    log,
)


class _Dispatch:
    """Event dispatch shared by :class:`~peng3dnet.net.Server` and
    :class:`~peng3dnet.net.Client`."""

    # What a side supplies.
    _recv_event = ""  # the name of the event sent for each packet received

    def _event_cid(self, cid):
        """The id an event's connection has for the app (None on the client)."""
        raise NotImplementedError

    def _receiver(self, cid):
        """The object whose hooks run for connection ``cid``, or None if it is gone."""
        raise NotImplementedError

    def _conntype_of(self, receiver):
        """The name of the connection type whose ``receive`` sees the packets."""
        raise NotImplementedError

    def _recv_event_data(self, receiver, pid, msg):
        """The data of the receive event of one packet."""
        raise NotImplementedError

    def _connection_opened(self, cid, conn):
        """A connection was established (``conn``: the core's connection)."""
        raise NotImplementedError

    def _handshake_completed(self, receiver):
        raise NotImplementedError

    def _connection_closed(self, cid, core_cid, reason):
        """The connection is over (``core_cid``: the core's id of it)."""
        raise NotImplementedError

    def _dispatch(self, event):
        """Run the hooks of one event; returns 1 for a packet, else 0."""
        kind = event[0]
        cid = self._event_cid(event[1])
        if kind == EV_PACKET:
            _, _, pid, flags, msg = event
            if self._raw_receive:
                # An app that overrides the byte-level receive methods gets the packet
                # through them (see _bytes).
                if self._receiver(cid) is None:
                    return 0
                self._replay_received(cid, pid, flags, msg)
                return 1
            return self._deliver(cid, pid, flags, msg)
        if kind == EV_CONNECTED:
            self._connection_opened(cid, event[2])
        elif kind == EV_SENT:
            # A packet of the handshake the core sent on its own: reported as if it had
            # been sent through send_message, as in the original.
            _, _, pid, msg, frame = event
            if self._receiver(cid) is not None:
                self._replay_sent(self.registry.reg_int_str.get(pid, pid), msg, frame, cid)
        elif kind == EV_HANDSHAKE_COMPLETE:
            receiver = self._receiver(cid)
            if receiver is not None:
                self._handshake_completed(receiver)
        elif kind == EV_INIT:
            # A connection type whose init is Python's: the core holds the connection's
            # internal packets until it has run.
            receiver = self._receiver(cid)
            if receiver is not None:
                conn = self._connection_of(cid)
                try:
                    if not conn.finished:
                        self.conntypes[event[2]].init(cid)
                finally:
                    conn.init_done()
        elif kind == EV_CLOSED:
            self._connection_closed(cid, event[1], event[2])
        elif kind == EV_LOG:
            _, _, level, message = event
            log.log(level, message)
        return 0

    def _deliver(self, cid, pid, flags, msg):
        """Dispatch one received packet, as the original did: the connection type's
        ``receive`` (which may claim it), then the packet's ``_receive``, the receiver's
        ``on_receive`` and the receive event."""
        receiver = self._receiver(cid)
        if receiver is None:
            return 0
        if self._debug_recv:
            sender = "" if cid is None else f" from {cid}"
            self._debug("recv", f"RECV {self.registry.reg_int_str.get(pid, pid)}{sender}")
        if (
            pid < INTERNAL_ID_LIMIT
            or not self._conntype_receives
            or not self._conntype_receive(self._conntype_of(receiver), msg, pid, flags, cid)
        ):
            if self._custom_registry:
                pkt = self.registry.getObj(pid)
            else:
                pkt = self._packets_by_id.get(pid)
                if pkt is None:
                    self.on_unknown_packet(pid, msg, cid)
                    return 1
            sink = self._recv_sink
            if sink is not None and pid >= INTERNAL_ID_LIMIT:
                sink.put(cid, pid, msg)
            if cid is None:
                pkt._receive(msg)  # the original's client passes no cid
            else:
                pkt._receive(msg, cid)
            if _overrides(receiver, "on_receive"):  # the library's does nothing
                receiver.on_receive(pid, msg)
            if self._events_now:
                self.sendEvent(self._recv_event, self._recv_event_data(receiver, pid, msg))
        return 1

    def _conntype_receive(self, conntype, msg, pid, flags, cid):
        ct = self.conntypes.get(conntype)
        if ct is None:
            return False
        return ct.receive(msg, pid, flags, cid)

    def on_unknown_packet(self, pid, msg, cid=None):
        """Called for a packet whose id no registered packet has; logs and ignores it."""
        sender = "the server" if cid is None else f"client {cid}"
        log.warning("ignoring packet with unknown id %s from %s", pid, sender)
