"""Peer script: which overridable methods the installed peng3dnet calls, flow by flow.

Runs under either implementation's interpreter (tests/test_parity_calls.py compares
the two outputs):

    python call_trace.py [FLOW ...]

Every class an app subclasses (Server, Client, ClientOnServer, PacketRegistry, Packet,
SmartPacket, connection types, the ping mixins) is subclassed with every method of the
library wrapped, so that each call is recorded: who was called (``server``, ``client``,
``conn``, a packet or connection type by name and side), which method, and its
arguments, normalised so that both implementations give the same text for the same
call (frames become ``<frame pid>``, times ``<float>``, objects their role). Then the
flows below run, a server and a client in this process on 127.0.0.1, and the script
prints ``{flow: [[role, method, args], ...]}`` as JSON, in the order the calls started.
"""

import json
import os
import struct
import sys
import threading
import time
import types

os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")

import peng3dnet
from peng3dnet import conntypes, registry
from peng3dnet.constants import (
    MODE_CHAT,
    SIDE_CLIENT,
    SIDE_SERVER,
    SSLSEC_ENCRYPTED,
    STATE_ACTIVE,
    STATE_LOGGEDIN,
)
from peng3dnet.ext import ping
from peng3dnet.packet import Packet, SmartPacket

LOCK = threading.Lock()
CALLS = []
TRACING = threading.local()

# The selector-loop internals of the original (see parity.SURFACE_ALLOWED): ours has
# none of them, and they only wrap socket reads and writes.
UNTRACED = {"_accept", "_client_ready", "_sock_ready"}


def _norm(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
        if len(value) >= 10 and struct.unpack_from("!I", value)[0] == len(value) - 4:
            return f"<frame {struct.unpack_from('!I', value, 4)[0]}>"
        if len(value) >= 6:
            return f"<packet {struct.unpack_from('!I', value)[0]}>"
        return "<bytes>"
    if isinstance(value, str):
        versions = (peng3dnet.version.VERSION, peng3dnet.version.RELEASE)
        return "<version>" if value in versions else value
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return "<float>"
    if isinstance(value, dict):
        return {str(_norm(k)): _norm(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and value[0] == "127.0.0.1" and isinstance(value[1], int):
            return ["127.0.0.1", "<port>"]
        return [_norm(v) for v in value]
    role = getattr(value, "_trace_role", None)
    if role is not None:
        return f"<{role}>"
    if isinstance(value, type):
        return f"<class {value.__name__}>"
    if type(value).__name__ in ("socket", "SSLSocket", "Connection"):
        return "<sock>"
    return f"<{type(value).__name__}>"


def _role(obj):
    return getattr(obj, "_trace_role", None) or type(obj).__name__


def _wrap(name, func):
    def traced(self, *args, **kwargs):
        # Calls made while this thread is inside a traced call are recorded too: that
        # is the point (send_message calling on_send calling the packet's _send).
        with LOCK:
            CALLS.append([_role(self), name, _norm(list(args)), _norm(kwargs)])
        return func(self, *args, **kwargs)

    traced.__name__ = name
    traced.__qualname__ = getattr(func, "__qualname__", name)
    traced.__doc__ = getattr(func, "__doc__", None)
    return traced


def traced(cls):
    """A subclass of ``cls`` whose methods from the library record each call."""
    wrapped = {}
    for name in dir(cls):
        if name.startswith("__") or name in UNTRACED:
            continue
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is None or not owner.__module__.startswith("peng3dnet"):
            continue
        raw = vars(owner)[name]
        if not isinstance(raw, types.FunctionType):
            continue
        wrapped[name] = _wrap(name, raw)
    return type(f"Traced{cls.__name__}", (cls,), wrapped)


def with_role(cls, role):
    """``cls`` (already traced) whose instances carry ``role``."""
    return type(cls.__name__, (cls,), {"_trace_role": role})


# --- traced classes ------------------------------------------------------------------

TPacket = traced(Packet)
TSmart = traced(SmartPacket)
TRegistry = traced(registry.PacketRegistry)
TConnectionType = traced(conntypes.ConnectionType)


class Conn(traced(peng3dnet.ClientOnServer)):
    _trace_role = "conn"


def packet_role(peer, name):
    return f"{name}@{'server' if peer.side == SIDE_SERVER else 'client'}"


class Echo(TPacket):
    """Echoes on the server; records on both sides."""

    def receive(self, msg, cid=None):
        super().receive(msg, cid)
        if cid is not None:
            self.peer.send_message("t:echo", msg, cid)


class ServerOnly(TSmart):
    side = SIDE_SERVER  # may only be received by the server, i.e. sent by the client


class ClientOnly(TSmart):
    side = SIDE_CLIENT


class LoggedIn(TSmart):
    state = STATE_LOGGEDIN


class LoggedInClose(TSmart):
    state = STATE_LOGGEDIN
    invalid_action = "close"


class ChatMode(TSmart):
    mode = MODE_CHAT


class OtherType(TSmart):
    conntype = "other"


class Explodes(TSmart):
    state = STATE_LOGGEDIN
    invalid_action = "explode"


class Secure(TSmart):
    min_sslsec_level = SSLSEC_ENCRYPTED


PACKETS = [
    ("t:echo", Echo),
    ("t:plain", TPacket),
    ("t:server_only", ServerOnly),
    ("t:client_only", ClientOnly),
    ("t:loggedin", LoggedIn),
    ("t:loggedin_close", LoggedInClose),
    ("t:chat", ChatMode),
    ("t:other", OtherType),
    ("t:explodes", Explodes),
    ("t:secure", Secure),
]


def register_packets(peer):
    for name, cls in PACKETS:
        pkt = with_role(cls, packet_role(peer, name))(peer.registry, peer)
        peer.register_packet(name, pkt)


class Custom(TConnectionType):
    """A connection type of the app's own: active at once, no registry sync."""

    def init(self, cid):
        super().init(cid)
        if cid is None:
            self.peer.remote_state = STATE_ACTIVE
        else:
            self.peer.clients[cid].state = STATE_ACTIVE


class Server(traced(peng3dnet.Server)):
    _trace_role = "server"

    def _reg_packets_trace(self):
        register_packets(self)

    def _reg_conntypes_trace(self):
        self.addConnType("custom", with_role(Custom, "custom@server")(self))


class Client(traced(peng3dnet.Client)):
    _trace_role = "client"

    def _reg_packets_trace(self):
        register_packets(self)

    def _reg_conntypes_trace(self):
        self.addConnType("custom", with_role(Custom, "custom@client")(self))


class OwnRegistryClient(Client):
    """Replaces its registry in ``__init__``, as apps do to use a registry of their own."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.registry = with_role(TRegistry, "registry@client")()


class PingServer(traced(ping.PingableServerMixin), Server):
    pingdata = {"name": "trace"}

    def getPingData(self, msg, cid):
        super().getPingData(msg, cid)
        return {"players": 0}


class PingClient(traced(ping.PingableClientMixin), Client):
    pass


# --- flows -----------------------------------------------------------------------------


def wait(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def start_server(cls=Server):
    server = cls(addr=("127.0.0.1", 0), clientcls=Conn)
    server.runAsync()
    server.process_async()
    assert wait(lambda: server.sock is not None)
    return server


def start_client(server, cls=Client, **kwargs):
    client = cls(addr=("127.0.0.1", server.sock.getsockname()[1]), **kwargs)
    client.runAsync()
    client.process_async()
    return client


def connected_pair(client_cls=Client):
    server = start_server()
    client = start_client(server, client_cls)
    client.wait_for_connection(15)
    assert wait(lambda: server.clients and all(c.state == STATE_ACTIVE for c in server.clients.values()))
    return server, client


def received(peer, name, sender=None, timeout=15.0):
    """Wait until ``peer``'s packet ``name`` has received something. ``sender``: the peer
    that sent it, woken now and then: the original can leave a packet queued from
    another thread unsent until its loop wakes up (its bug 21); interrupt() is that
    wake-up (timing calls are not counted in the comparison)."""
    pkt = peer.registry.getObj(name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wait(lambda: any(c[0] == pkt._trace_role and c[1] == "receive" for c in CALLS), 0.5):
            return True
        if sender is not None:
            sender.interrupt()
    return False


def settle():
    time.sleep(0.2)


def finish(server, client):
    if client is not None:
        client.stop()
        client.join(2)
    server.stop()
    server.join(2)


def flow_echo():
    server, client = connected_pair()
    client.send_message("t:echo", {"n": 1})
    assert received(client, "t:echo", server)
    client.send_message("t:plain", [1, 2])
    assert received(server, "t:plain")
    settle()
    client.close_connection(None, "bye")
    assert wait(lambda: not server.clients)
    settle()
    finish(server, client)


def flow_smartpacket():
    server, client = connected_pair()
    (cid,) = server.clients
    client.send_message("t:server_only", "to server")  # allowed
    server.send_message("t:client_only", "to client", cid)  # allowed
    client.send_message("t:client_only", "wrong way")  # a failing side rule (ignore)
    server.send_message("t:loggedin", "not logged in", cid)  # a failing state rule (ignore)
    server.send_message("t:chat", "not chatting", cid)  # a failing mode rule
    client.send_message("t:other", "other type", cid)  # a failing conntype rule
    client.send_message("t:secure", "needs TLS")  # below its min_sslsec_level
    try:
        client.send_message("t:explodes", "unknown action")  # raises (not the same error)
    except Exception:
        pass
    client.send_message("t:plain", "marker")
    assert received(server, "t:plain")
    assert received(client, "t:client_only", server)
    settle()
    client.send_message("t:loggedin_close", "closes")  # a failing state rule (close)
    assert wait(lambda: not server.clients)
    settle()
    finish(server, client)


def flow_server_close():
    server, client = connected_pair()
    (cid,) = server.clients
    server.close_connection(cid, "kick")
    client.wait_for_close(15)
    assert wait(lambda: not server.clients)
    settle()
    finish(server, client)


def flow_shutdown():
    server, client = connected_pair()
    server.shutdown(join=True, timeout=2, reason="maintenance")
    client.wait_for_close(15)
    settle()
    finish(server, client)


def flow_custom_conntype():
    server = start_server()
    client = start_client(server, conntype="custom")
    assert wait(lambda: server.clients and all(c.state == STATE_ACTIVE for c in server.clients.values()))
    client.send_message(64, "raw id on a custom connection")
    assert received(server, "t:echo")
    assert received(client, "t:echo", server)
    settle()
    finish(server, client)


def flow_own_registry():
    server, client = connected_pair(OwnRegistryClient)
    client.send_message("t:echo", "through an own registry")
    assert received(client, "t:echo", server)
    settle()
    finish(server, client)


def flow_ping():
    server = start_server(PingServer)
    port = server.sock.getsockname()[1]
    answer = ping.pingServer(addr=("127.0.0.1", port), clientcls=PingClient, timeout=15)
    assert answer["name"] == "trace"
    settle()
    finish(server, None)


FLOWS = {
    "echo": flow_echo,
    "smartpacket": flow_smartpacket,
    "server_close": flow_server_close,
    "shutdown": flow_shutdown,
    "custom_conntype": flow_custom_conntype,
    "own_registry": flow_own_registry,
    "ping": flow_ping,
}


def main(names):
    out = {}
    for name in names or FLOWS:
        with LOCK:
            CALLS.clear()
        try:
            FLOWS[name]()
            error = None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        with LOCK:
            out[name] = {"calls": list(CALLS), "error": error}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
