"""Packets of the chat example, shared by server.py and client.py.

A client first sends its nickname; the server stores it on the client's object, puts
the connection in MODE_CHAT and welcomes it. Chat lines are SmartPackets that are only
accepted in MODE_CHAT, so nobody can talk before choosing a name.
"""

from peng3dnet.constants import MODE_CHAT
from peng3dnet.packet import SmartPacket


class NickPacket(SmartPacket):
    """Client to server: ``{"nick": name}``."""

    def receive(self, msg, cid=None):
        if cid is not None:
            self.peer.set_nick(cid, str(msg["nick"]))


class WelcomePacket(SmartPacket):
    """Server to client: ``{"nick": name, "present": [names]}``; enters chat mode."""

    def receive(self, msg, cid=None):
        if cid is None:
            self.peer.mode = MODE_CHAT
            self.peer.on_welcome(msg)


class ChatPacket(SmartPacket):
    """A chat line: client to server ``{"text"}``, server to everyone ``{"nick", "text"}``."""

    mode = MODE_CHAT

    def receive(self, msg, cid=None):
        if cid is None:
            self.peer.on_chat(msg["nick"], msg["text"])
        else:
            self.peer.broadcast({"nick": self.peer.clients[cid].nick, "text": str(msg["text"])})


def register_packets(peer):
    """Register the example's packets (server and client register the same ones)."""
    peer.register_packet("chat:nick", NickPacket(peer.registry, peer))
    peer.register_packet("chat:welcome", WelcomePacket(peer.registry, peer))
    peer.register_packet("chat:message", ChatPacket(peer.registry, peer))
