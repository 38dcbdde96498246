"""Version numbers.

``VERSION`` is the peng3dnet API version this package implements and announces in the
handshake; ``PROTOVERSION`` is the wire protocol version, which both sides must share.
"""

__all__ = ["PROTOVERSION", "RELEASE", "VERSION"]

VERSION = "0.2.0"
"""Version of the peng3dnet API implemented by this package."""

RELEASE = "0.2.0"
"""``VERSION`` without any trailing pre-release marker."""

PROTOVERSION = 2
"""Wire protocol version; peers with a different one refuse the connection."""
