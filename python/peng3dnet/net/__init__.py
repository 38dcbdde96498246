"""Servers and clients.

:class:`Server` accepts connections and represents each one by a :class:`ClientOnServer`
(or the ``clientcls`` you give it); :class:`Client` connects to one server. Both are
plain Python classes meant to be subclassed and mixed; the sockets, framing,
compression and the handshake run in the native core on background threads, while
every Python hook (packet handlers, ``on_*`` methods, events) runs in the thread that
calls :meth:`~Server.process` (or in :meth:`~Server.process_async`'s thread).

The package keeps every name the original's ``peng3dnet.net`` module had: the classes,
the structs, the constants of its star import, the modules it imported
(``peng3dnet.net.packet.SmartPacket``) and its Python 2 shims. Where things live:

* ``_peer``: what servers and clients share (configuration, events, registration, the
  process loop, threads, ``recv``);
* ``_send``: the send path (routes, queueing); ``_bytes``: the original's byte-level
  receive path; ``_common``: event kinds, internal packets, helpers;
* ``server``: :class:`Server`, :class:`ClientOnServer`; ``client``: :class:`Client`.
"""

import importlib

# conntypes, packet, registry and version are imported as modules too: apps reach them
# as peng3dnet.net.packet.SmartPacket and so on, as they could in the original.
from .. import conntypes, errors, packet, registry, util, version  # noqa: F401
from ..constants import *  # noqa: F403
from ._common import STRUCT_HEADER, STRUCT_LENGTH32
from .client import Client
from .server import ClientOnServer, Server, WriteQueue

__all__ = ["STRUCT_HEADER", "STRUCT_LENGTH32", "Client", "ClientOnServer", "Server"]

# The classes keep the name the original gave them (repr, pickling by reference).
for _cls in (Server, ClientOnServer, Client, WriteQueue):
    _cls.__module__ = __name__
del _cls

HAVE_SSL = True
"""Whether TLS is available: always, the native core has its own (rustls)."""

_MSGPACK_TYPE = "msgpack-python"  # the original's name for its encoder; ours is byte-identical

# Names the original's module held for its own use: the modules it imported and its
# Python 2 shims. Apps reach a few of them (``peng3dnet.net.ssl``, ``basestring``); the
# modules are imported when first asked for, so that importing peng3dnet stays cheap.
unicode = str
basestring = (str, bytes)
_COMPAT_MODULES = {
    "Queue": "queue",
    "collections": "collections",
    "msgpack": "msgpack",
    "selectors": "selectors",
    "socket": "socket",
    "ssl": "ssl",
    "struct": "struct",
    "sys": "sys",
    "threading": "threading",
    "time": "time",
    "warnings": "warnings",
    "zlib": "zlib",
}
_COMPAT_BUILTINS = {"bytes": bytes, "str": str}


def __getattr__(name):
    if name in _COMPAT_MODULES:
        return importlib.import_module(_COMPAT_MODULES[name])
    if name in _COMPAT_BUILTINS:
        return _COMPAT_BUILTINS[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_COMPAT_MODULES, *_COMPAT_BUILTINS})
