"""Packets of the echo example, shared by server.py and client.py."""

import time

from peng3dnet.packet import SmartPacket


class EchoPacket(SmartPacket):
    """The server sends every message back to its sender; the client counts them."""

    def receive(self, msg, cid=None):
        if cid is None:
            self.peer.on_echo(msg)
        else:
            self.peer.clients[cid].echoed += 1
            self.peer.send_message("echo:echo", msg, cid)


class LatencyPacket(SmartPacket):
    """A timestamp that the server returns unchanged, to measure the round trip."""

    def receive(self, msg, cid=None):
        if cid is None:
            self.peer.on_latency(time.perf_counter() - msg["sent"])
        else:
            self.peer.send_message("echo:latency", msg, cid)


def register_packets(peer):
    """Register the example's packets (server and client register the same ones)."""
    peer.register_packet("echo:echo", EchoPacket(peer.registry, peer))
    peer.register_packet("echo:latency", LatencyPacket(peer.registry, peer))
