"""Exceptions raised by peng3dnet.

Every class keeps the name and base class it has in the original library, so code that
catches ``peng3dnet.errors.X`` (or a built-in base such as ``ValueError``) keeps working.
``ConnectionClosedError`` and ``ProtocolError`` are additions of peng3dnet-rs.
"""

__all__ = [
    "AlreadyRegisteredError",
    "ConnectionClosedError",
    "FailedPingError",
    "InvalidAddressError",
    "InvalidHostError",
    "InvalidPortError",
    "InvalidSmartPacketActionError",
    "ProtocolError",
    "RegistryError",
    "TimedOutError",
    "UnsupportedAddressError",
]


class InvalidAddressError(ValueError):
    """An address could not be used as given."""


class InvalidPortError(InvalidAddressError):
    """A port is not an integer between 0 and 65535."""


class InvalidHostError(InvalidAddressError):
    """A host name or IP address is malformed or cannot be resolved."""


class UnsupportedAddressError(NotImplementedError):
    """An address that may be valid, but is of a kind this library does not handle."""


class InvalidSmartPacketActionError(ValueError):
    """A SmartPacket's ``invalid_action`` is neither ``"ignore"`` nor ``"close"``."""


class TimedOutError(RuntimeError):
    """Waiting for something (a connection, a close, an answer) took longer than allowed."""


class FailedPingError(TimedOutError):
    """A ping got no answer in time."""


class ConnectionClosedError(TimedOutError):
    """The connection closed (or could not be made) before what was awaited happened.

    A subclass of :class:`TimedOutError`, so code written for the original library,
    which only ever timed out, still catches it. ``reason`` is the close reason.
    """

    def __init__(self, message, reason=None):
        super().__init__(message)
        self.reason = reason


class RegistryError(ValueError):
    """A registry was asked to do something inconsistent."""


class AlreadyRegisteredError(RegistryError):
    """Something was registered under a name that is already taken."""


class TLSConfigError(ValueError):
    """A ``net.ssl.*`` option cannot be used: a file is missing or unreadable, holds no
    certificate or key, or options contradict each other. Raised by ``bind()`` and
    ``connect()``; the message names the option and the file."""


class TLSError(ConnectionError):
    """The TLS handshake with the server failed (untrusted or expired certificate,
    wrong host name, a server that does not speak TLS, a refused client certificate)."""


class ProtocolError(ValueError):
    """Bytes received from a peer break the wire format or a configured limit.

    Raised by the codec classes of :mod:`peng3dnet._core`; on a connection the same
    condition closes that connection with the error's text as the close reason.
    """
