"""Connection types: how a connection behaves after the client named its type.

A connection type must be registered under the same name on the server and the client
(``addConnType``). One instance serves all connections of its type; methods receive the
client id (``None`` on the client side).
"""

from . import version  # noqa: F401 (reachable as peng3dnet.conntypes.version, as in the original)
from ._hooks import library_default
from .constants import *  # noqa: F403

__all__ = ["ClassicConnectionType", "ConnectionType"]


class ConnectionType:
    """Base class: ``peer`` is the server or client that uses the type."""

    def __init__(self, peer):
        self.peer = peer

    def init(self, cid):
        """Called on the server when a client chose this type (``cid`` is its id), and on
        the client once it has sent its choice (``cid`` is ``None``)."""

    @library_default
    def receive(self, msg, pid, flags, cid):
        """Called for each received packet with an id of 64 or more, before any handler.
        Return ``True`` to stop further handling of the packet."""
        return False

    @library_default
    def send(self, data, pid, cid):
        """Called for each sent packet with an id of 64 or more; ``data`` is the encoded
        frame. Return ``True`` to skip the other send hooks."""
        return False


class ClassicConnectionType(ConnectionType):
    """The normal type: the server sends its registry and the client adopts its ids.

    The native core runs this handshake itself; a subclass that overrides :meth:`init`
    can call ``super().init(cid)`` to run it from Python.
    """

    @library_default
    def init(self, cid):
        self.peer._connection_of(cid).classic_init()
