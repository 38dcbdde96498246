"""Peer script: print, as JSON, everything an app can reach in the installed peng3dnet.

Runs under either implementation's interpreter (tests/test_parity_surface.py compares
the two outputs):

    python surface_dump.py

The output is one JSON object:

* ``objects``: every module and class of the package that can be reached from
  ``peng3dnet`` by attribute access, by the name it is known by (``"peng3dnet.net"``,
  ``"peng3dnet.packet.SmartPacket"``), each with its members: the kind of object, a
  function's parameters, a constant's value, and for a module or class the name it is
  known by (so that a path such as ``peng3dnet.net.packet.SmartPacket`` can be followed).
  Dunder names are left out, except ``__init__`` and ``__all__``; underscore names are
  kept. Modules of other packages are recorded as members but not entered.
* ``instances``: the attributes of started objects (a server with a connected client
  after the handshake): for each of server, client, connection on the server,
  registry, packet, connection type, its ``vars()`` and its ``dir()``.
* ``import``: what importing the package did: new loggers, threads, open files.
"""

import inspect
import json
import logging
import os
import sys
import threading
import time
import types

os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")

LIMIT = 2_000  # modules and classes; the real surface has about 40


def _simple(value):
    """``value`` as JSON if it is plain data, else None."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        items = [_simple(v) for v in value]
        return None if any(i is None and v is not None for i, v in zip(items, value)) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: _simple(v) for k, v in value.items()}
        return None if any(items[k] is None and value[k] is not None for k in value) else items
    return None


def _is_plain(value):
    return _simple(value) is not None or value is None


def _parameters(func):
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    params = []
    for p in signature.parameters.values():
        entry = {"name": p.name, "kind": p.kind.name, "has_default": p.default is not p.empty}
        if p.default is not p.empty and _is_plain(p.default):
            entry["default"] = _simple(p.default)
        params.append(entry)
    return params


def _describe(value):
    if isinstance(value, types.ModuleType):
        return {"kind": "module", "name": value.__name__}
    if isinstance(value, type):
        return {"kind": "class", "name": value.__name__, "mro": [c.__name__ for c in value.__mro__[1:]]}
    if isinstance(value, property):
        return {"kind": "property"}
    if isinstance(value, (staticmethod, classmethod)):
        return {"kind": type(value).__name__, "params": _parameters(value.__func__)}
    if callable(value) and (inspect.isfunction(value) or inspect.isbuiltin(value) or inspect.ismethod(value)):
        return {"kind": "function", "params": _parameters(value)}
    if _is_plain(value):
        return {"kind": "value", "type": type(value).__name__, "value": _simple(value)}
    described = {"kind": "object", "type": type(value).__name__}
    if hasattr(value, "format") and isinstance(getattr(value, "format", None), str):
        described["format"] = value.format  # struct.Struct
    return described


def _ref(value):
    """The name an object of the package is known by, whatever the path it was reached by."""
    if isinstance(value, types.ModuleType):
        return value.__name__
    return f"{value.__module__}.{value.__qualname__}"


def _ours(value, package):
    """Whether ``value`` belongs to the package (so that it is walked into)."""
    name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
    return isinstance(name, str) and (name == package or name.startswith(package + "."))


def _members(obj):
    """``name -> raw value`` of a module's or class's attributes (dunders left out)."""
    found = {}
    if isinstance(obj, type):
        for name in sorted(set(dir(obj))):
            # The raw attribute keeps staticmethod/property wrappers visible.
            owner = next((k for k in obj.__mro__ if name in vars(k)), None)
            if owner is None or owner is object:
                continue
            found[name] = vars(owner)[name]
    else:
        for name in sorted(set(dir(obj))):
            try:
                found[name] = getattr(obj, name)
            except Exception as exc:  # an attribute that raises is part of the surface too
                found[name] = exc
    return {
        name: value
        for name, value in found.items()
        if not (name.startswith("__") and name.endswith("__")) or name in ("__init__", "__all__")
    }


def walk(package="peng3dnet"):
    """``{ref: {name: description}}`` of every module and class of the package that can
    be reached from it by attribute access; a description of a module or class member
    names its ref, so that paths can be followed in the comparison."""
    objects = {}
    queue = [sys.modules[package]]
    while queue and len(objects) < LIMIT:
        obj = queue.pop(0)
        ref = _ref(obj)
        if ref in objects:
            continue
        members = {}
        for name, value in _members(obj).items():
            if isinstance(value, BaseException):
                members[name] = {"kind": "error", "type": type(value).__name__}
                continue
            described = _describe(value)
            if isinstance(value, (types.ModuleType, type)):
                described["ref"] = _ref(value)
                if _ours(value, package):
                    queue.append(value)
            members[name] = described
        kind = "module" if isinstance(obj, types.ModuleType) else "class"
        objects[ref] = {"kind": kind, "members": members}
    return objects


def _attributes(obj):
    return {"vars": sorted(vars(obj)), "dir": sorted(set(dir(obj)))}


def instances():
    """Start a server and a client on loopback and record their attributes."""
    import peng3dnet
    from peng3dnet.packet import Packet

    class Echo(Packet):
        def receive(self, msg, cid=None):
            if cid is not None:
                self.peer.send_message("surface:echo", msg, cid)

    class Server(peng3dnet.Server):
        def _reg_packets_surface(self):
            self.register_packet("surface:echo", Echo(self.registry, self))

    class Client(peng3dnet.Client):
        def _reg_packets_surface(self):
            self.register_packet("surface:echo", Echo(self.registry, self))

    server = Server(addr=("127.0.0.1", 0))
    server.bind()
    server.runAsync()
    server.process_async()
    deadline = time.monotonic() + 10
    while server.sock is None and time.monotonic() < deadline:
        time.sleep(0.01)
    client = Client(addr=("127.0.0.1", server.sock.getsockname()[1]))
    client.runAsync()
    client.process_async()
    client.wait_for_connection(10)
    while not server.clients and time.monotonic() < deadline:
        time.sleep(0.01)
    (conn,) = server.clients.values()
    while conn.state != peng3dnet.STATE_ACTIVE and time.monotonic() < deadline:
        time.sleep(0.01)
    found = {
        "Server": _attributes(server),
        "Client": _attributes(client),
        "ClientOnServer": _attributes(conn),
        "PacketRegistry": _attributes(server.registry),
        "Packet": _attributes(server.registry.getObj("surface:echo")),
        "ClassicConnectionType": _attributes(server.conntypes["classic"]),
    }
    client.close_connection(None, "done")
    try:
        client.wait_for_close(5)
    except Exception:
        pass
    server.stop()
    client.stop()
    server.join(2)
    client.join(2)
    return found


def _open_files():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def import_effects():
    loggers = set(logging.Logger.manager.loggerDict)
    threads = threading.active_count()
    files = _open_files()
    import peng3dnet  # noqa: F401

    for module in list(sys.modules):
        if module.startswith("peng3dnet."):
            __import__(module)
    return {
        "new_loggers": sorted(set(logging.Logger.manager.loggerDict) - loggers),
        "new_threads": threading.active_count() - threads,
        "new_files": _open_files() - files,
    }


def main():
    effects = import_effects()
    import peng3dnet

    # Import every submodule the package has, so that the walk sees modules that are
    # only reachable after an explicit import (``import peng3dnet.ext.ping``).
    for module in (
        "net",
        "packet",
        "packet.internal",
        "conntypes",
        "constants",
        "registry",
        "util",
        "errors",
        "version",
        "ext",
        "ext.ping",
        "ext.mpgame",
    ):
        try:
            __import__(f"peng3dnet.{module}")
        except ImportError:
            pass
    result = {
        "impl": "ours" if hasattr(peng3dnet, "_core") else "reference",
        "objects": walk(),
        "instances": instances(),
        "import": effects,
    }
    json.dump(result, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
