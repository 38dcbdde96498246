"""The in-process transport (an addition): ``memory:NAME`` addresses.

The conformance suite runs every harness test over this transport too (see
conftest.py); these tests cover what is particular to it: addresses, isolation of the
objects handed over, the errors, and what is left out on purpose (compression,
heartbeats, TLS).
"""

import errno
import itertools
import os

import pytest
from support import Harness, Recorder, packets_mixin, wait_until

import peng3dnet
from peng3dnet import errors, util

_names = itertools.count(1)


def fresh_name():
    return f"memory:test-memory-{os.getpid()}-{next(_names)}"


class EchoServer(peng3dnet.Server):
    _reg_packets_test = packets_mixin("test:echo", "test:big")


class RecordingClient(peng3dnet.Client):
    _reg_packets_test = packets_mixin("test:echo", "test:big", cls=Recorder)


@pytest.fixture
def mem():
    """A harness on the in-process transport."""
    harness = Harness("memory")
    yield harness
    harness.close()


@pytest.fixture
def pair(mem):
    server = mem.server(EchoServer, addr=fresh_name())
    client = mem.client(server, RecordingClient, addr=server.addr)
    return server, client


def test_addresses_of_both_ends(pair):
    server, client = pair
    name = server.addr[0]
    assert server.addr == (name, 0) and name.startswith("memory:")
    assert server.sock.getsockname() == (name, 0)
    assert server.sock.fileno() == -1
    (cid,) = server.clients
    on_server = server.clients[cid]
    assert on_server.addr == (name, cid)
    assert on_server.conn.getpeername() == (name, cid)
    assert on_server.conn.getsockname() == (name, 0)
    assert client.sock.getpeername() == (name, 0)
    assert client.sock.getsockname() == (name, cid)
    assert client.sock.fileno() == -1
    assert client.addr == (name, 0)


def test_receiver_gets_its_own_objects_with_the_wire_types(pair):
    server, client = pair
    message = {"list": [1, 2], "tuple": (3, 4), "bytes": b"\x00\xff", "nested": {"a": [None, 1.5]}}
    client.send_message("test:echo", message)
    # The sender changes its object at once; the server must not see the change.
    message["list"].append("changed")
    message["nested"]["a"].clear()
    received = client.test_packets["test:echo"].received
    assert wait_until(lambda: received, 5)
    echoed = received[0][0]
    # As over TCP: a tuple arrives as a list.
    assert echoed == {"list": [1, 2], "tuple": [3, 4], "bytes": b"\x00\xff", "nested": {"a": [None, 1.5]}}
    server_side = server.test_packets["test:echo"].received[0][0]
    assert server_side is not echoed


def test_large_bodies_go_uncompressed(pair):
    _server, client = pair
    body = "compressible " * 100_000
    client.send_message("test:big", body)
    received = client.test_packets["test:big"].received
    assert wait_until(lambda: received, 10)
    assert received[0][0] == body
    stats = client.stats()
    assert stats["compression_out"] == 1.0 and stats["compression_in"] == 1.0
    assert stats["heartbeat"] is False


def test_unknown_name_is_refused_with_a_clear_message():
    client = peng3dnet.Client(addr=fresh_name())
    with pytest.raises(ConnectionRefusedError, match="no server of this process listens on memory:"):
        client.connect()
    with pytest.raises(errors.ConnectionClosedError):
        client.wait_for_connection(1)


def test_a_name_is_held_until_its_server_stops(mem):
    name = fresh_name()
    first = mem.server(EchoServer, addr=name)
    second = EchoServer(addr=name)
    with pytest.raises(OSError) as raised:
        second.bind()
    assert raised.value.errno == errno.EADDRINUSE
    assert "already listens on" in str(raised.value)
    first.stop()
    third = mem.server(EchoServer, addr=name)
    client = mem.client(third, RecordingClient)
    client.send_message("test:echo", "again")
    assert wait_until(lambda: client.test_packets["test:echo"].received, 5)


@pytest.mark.parametrize("bad", ["memory:", "memory:two words", ("memory:", 0)])
def test_malformed_names(bad):
    with pytest.raises(errors.InvalidAddressError, match="not a valid in-process address"):
        peng3dnet.Server(addr=bad)


def test_memory_name_helper():
    assert util.memory_name("memory:game1") == "game1"
    assert util.memory_name(("memory:game1", 0)) == "game1"
    assert util.memory_name("127.0.0.1:80") is None
    assert util.memory_name(("localhost", 80)) is None


def test_configured_address_and_tls_options_do_not_apply(mem):
    name = fresh_name()
    # TLS switched on without certificates would fail over TCP; in-process it is unused.
    tls = {"net.ssl.enabled": True}
    server = mem.server(EchoServer, addr=None, cfg={"net.server.addr": name, **tls})
    assert server.addr == (name, 0)
    client = mem.client(server, RecordingClient, addr=None, cfg={"net.client.addr": name, **tls})
    assert client.ssl_seclevel == peng3dnet.SSLSEC_NONE
    client.send_message("test:echo", 1)
    assert wait_until(lambda: client.test_packets["test:echo"].received, 5)


def test_limits_apply_as_over_tcp(mem):
    closed = []

    class Watching(EchoServer):
        pass

    server = mem.server(Watching, addr=fresh_name(), cfg={"net.limits.max_frame": 4096})
    server.clientcls = type(
        "C", (peng3dnet.ClientOnServer,), {"on_close": lambda self, reason=None: closed.append(reason)}
    )
    client = mem.client(server, RecordingClient)
    client.send_message("test:big", "x" * 10_000)
    assert wait_until(lambda: closed, 5)
    assert closed[0].startswith("protocolerror")
    client.wait_for_close(5)
