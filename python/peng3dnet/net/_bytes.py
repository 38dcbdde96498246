"""The original's byte-level receive path: ``receive_data`` -> ``process_single_packet``
-> ``receive_packet``.

In the original, bytes read from a socket went through these methods into the queue
that ``process()`` dispatched. Here the native core reads and decodes the sockets. An
app that overrides one of these methods gets every packet through them all the same,
as a frame, in the thread that calls ``process()`` (see
:meth:`_ByteLevelReceive._replay_received`). Called directly, they feed bytes to a
connection as if they had arrived on it.
"""

import threading

from .. import errors
from ._common import STRUCT_LENGTH32


class _ByteLevelReceive:
    """What the byte-level methods of servers and clients share."""

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
