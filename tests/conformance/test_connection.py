"""A server and clients of the implementation under test: handshake, packets both ways,
hooks, closing and shutdown."""

import math
import threading
import time

import msgpack
import pytest
from support import IMPL, Recorder, packets_mixin, wait_until

import peng3dnet
from peng3dnet.constants import CONNTYPE_CLASSIC, MODE_CLOSED, STATE_ACTIVE, STATE_CLOSED


class EchoServer(peng3dnet.Server):
    _reg_packets_test = packets_mixin("test:echo", "test:other")


class EchoClient(peng3dnet.Client):
    _reg_packets_test = packets_mixin("test:echo", "test:other", cls=Recorder)


def echo_pair(net, server_kw=None, client_kw=None):
    server = net.server(EchoServer, **(server_kw or {}))
    client = net.client(server, EchoClient, **(client_kw or {}))
    assert wait_until(lambda: len(server.clients) == 1)
    return server, client


def test_handshake_reaches_active_state(net):
    server, client = echo_pair(net)
    assert client.remote_state == STATE_ACTIVE
    (conn,) = server.clients.values()
    assert wait_until(lambda: conn.state == STATE_ACTIVE)
    assert conn.conntype == CONNTYPE_CLASSIC
    assert isinstance(conn, peng3dnet.ClientOnServer)
    assert conn.server is server
    assert conn.cid in server.clients
    assert tuple(conn.conn.getpeername())[1] == tuple(client.sock.getsockname())[1]


@pytest.mark.reference_bug(19)
def test_client_conntype_is_set(net):
    _, client = echo_pair(net)
    assert client.conntype == CONNTYPE_CLASSIC


VALUES = [
    None,
    True,
    False,
    0,
    -1,
    127,
    128,
    2**32,
    -(2**63),
    2**64 - 1,
    0.5,
    -0.0,
    math.inf,
    "",
    "text",
    "é" * 40,
    b"",
    b"\x00\xff",
    [],
    [1, [2, [3]]],
    {},
    {"nested": {"list": [1, "a", None]}},
    {b"bytes-key": 1},
    msgpack.ExtType(3, b"ext"),
    msgpack.Timestamp(12, 34),
]


def test_every_msgpack_type_round_trips(net):
    server, client = echo_pair(net)
    for value in VALUES:
        client.send_message("test:echo", value)
    received = client.test_packets["test:echo"].received
    if not wait_until(lambda: len(received) == len(VALUES)) and IMPL == "reference":
        # The original can leave a packet queued from its process thread unsent until
        # its next send (its bug 21, not what this test is about): one more echo
        # pushes the stuck one out.
        client.send_message("test:echo", "flush")
        assert wait_until(lambda: len(received) > len(VALUES))
        del received[len(VALUES) :]
    assert len(received) == len(VALUES)
    assert [msg for msg, _ in received] == [msgpack.unpackb(msgpack.packb(v)) for v in VALUES]
    assert all(cid is None for _, cid in received)
    server_side = server.test_packets["test:echo"].received
    (cid,) = server.clients
    assert all(c == cid for _, c in server_side)


@pytest.mark.parametrize("size", [8191, 8192, 8193, 100_000, 1_000_000])
def test_compression_both_ways(net, size):
    _, client = echo_pair(net)
    payload = {"data": "z" * size, "tail": list(range(10))}
    client.send_message("test:echo", payload)
    received = client.test_packets["test:echo"].received
    assert wait_until(lambda: received, timeout=20)
    assert received[0][0] == payload


@pytest.mark.reference_bug(1)
def test_many_small_packets_back_to_back(net):
    _, client = echo_pair(net)
    for i in range(2000):
        client.send_message("test:echo", i)
    received = client.test_packets["test:echo"].received
    assert wait_until(lambda: len(received) == 2000, timeout=10)
    assert [m for m, _ in received] == list(range(2000))


@pytest.mark.reference_bug(17)
def test_registry_sync_with_different_registration_order(net):
    class ReorderedClient(peng3dnet.Client):
        _reg_packets_test = packets_mixin("test:other", "test:echo", cls=Recorder)

    server = net.server(EchoServer)
    client = net.client(server, ReorderedClient)
    for name in ("test:echo", "test:other"):
        assert client.registry.getID(name) == server.registry.getID(name)
    client.send_message("test:other", "other")
    client.send_message("test:echo", "hello")
    received = client.test_packets["test:echo"].received
    assert wait_until(lambda: received)
    assert received[0][0] == "hello"
    assert [m for m, _ in server.test_packets["test:other"].received] == ["other"]


def test_registry_mismatch_closes_with_reason(net):
    closed = []

    class ExtraClient(peng3dnet.Client):
        _reg_packets_test = packets_mixin("test:echo", "test:other", "test:extra", cls=Recorder)

        def on_close(self, reason=None):
            closed.append(reason)

    class Srv(EchoServer):
        pass

    server = net.server(Srv)
    server_reasons = []
    server.clientcls = type(
        "C", (peng3dnet.ClientOnServer,), {"on_close": lambda s, r=None: server_reasons.append(r)}
    )
    client = net.client(server, ExtraClient, wait=False)
    with pytest.raises(peng3dnet.errors.TimedOutError):
        client.wait_for_connection(2)
    assert wait_until(lambda: server_reasons == ["packetregmismatch"])


def test_registry_mismatch_can_be_ignored(net):
    class ExtraClient(peng3dnet.Client):
        _reg_packets_test = packets_mixin("test:echo", "test:other", "test:extra", cls=Recorder)

    server = net.server(EchoServer)
    client = net.client(server, ExtraClient, cfg={"net.registry.missingpacketaction": "ignore"})
    client.send_message("test:echo", 1)
    assert wait_until(lambda: client.test_packets["test:echo"].received)


def test_hooks_are_called(net):
    calls = []

    class Conn(peng3dnet.ClientOnServer):
        def on_connect(self):
            calls.append(("server", "connect", self.cid))

        def on_handshake_complete(self):
            super().on_handshake_complete()
            calls.append(("server", "handshake", self.state))

        def on_receive(self, ptype, msg):
            if ptype >= 64:
                calls.append(("server", "receive", ptype, msg))

        def on_send(self, ptype, msg):
            if self.server.registry.getName(ptype) == "test:echo":
                calls.append(("server", "send", msg))

        def on_close(self, reason=None):
            calls.append(("server", "close", reason))

    class Cl(EchoClient):
        def on_handshake_complete(self):
            super().on_handshake_complete()
            calls.append(("client", "handshake", self.remote_state))

        def on_receive(self, ptype, msg):
            if ptype >= 64:
                calls.append(("client", "receive", ptype, msg))

        def on_send(self, ptype, msg):
            if ptype == "test:echo":
                calls.append(("client", "send", ptype, msg))

    server = net.server(EchoServer, clientcls=Conn)
    client = net.client(server, Cl)
    echo_id = server.registry.getID("test:echo")
    client.send_message("test:echo", {"x": 1})
    assert wait_until(lambda: ("client", "receive", echo_id, {"x": 1}) in calls)
    (cid,) = server.clients
    assert ("server", "connect", cid) in calls
    assert ("server", "handshake", STATE_ACTIVE) in calls
    assert ("client", "handshake", STATE_ACTIVE) in calls
    assert ("client", "send", "test:echo", {"x": 1}) in calls
    # The original calls a server's on_receive after the packet's handler has sent the
    # echo, so the client can see the echo before the server hook has run: wait for it.
    assert wait_until(lambda: ("server", "receive", echo_id, {"x": 1}) in calls)
    assert wait_until(lambda: [c for c in calls if c[:2] == ("server", "send")])


def test_sends_by_name_follow_registry_changes(net):
    # A send by name must use what the registry holds at that moment, however often
    # the name was sent before (peng3dnet-rs keeps looked-up names until a change).
    _, client = echo_pair(net)
    registry = client.registry
    echo_id = registry.getID("test:echo")
    old = client.test_packets["test:echo"]
    client.send_message("test:echo", "first")
    assert wait_until(lambda: ("first", None) in old.received)

    registry.deleteObj("test:echo")
    with pytest.raises(KeyError):
        client.send_message("test:echo", "gone")

    new = Recorder(registry, client)
    registry.register(new, "test:echo", echo_id)
    client.send_message("test:echo", "second")
    assert ("second", None) in new.sent
    assert ("second", None) not in old.sent
    assert wait_until(lambda: ("second", None) in new.received)

    # Renaming an id in the two-way map directly is seen too.
    registry.reg_int_str[echo_id] = "test:renamed"
    with pytest.raises(KeyError):
        client.send_message("test:echo", "old name")
    client.send_message("test:renamed", "third")
    assert wait_until(lambda: ("third", None) in new.received)


def test_on_send_gets_the_frame_on_the_server_and_the_message_on_the_client(net):
    # What the original passes (its documentation says "the Python object" for both):
    # the server's on_send and packet send hooks see the encoded frame.
    sent = {"server": [], "client": []}

    class Conn(peng3dnet.ClientOnServer):
        def on_send(self, ptype, msg):
            if self.server.registry.getName(ptype) == "test:echo":  # the echo sends its object
                sent["server"].append(msg)

    class Cl(EchoClient):
        def on_send(self, ptype, msg):
            if ptype == "test:echo":
                sent["client"].append(msg)

    server = net.server(EchoServer, clientcls=Conn)
    client = net.client(server, Cl)
    client.send_message("test:echo", {"x": 1})
    assert wait_until(lambda: sent["server"])
    assert sent["client"] == [{"x": 1}]
    (frame,) = sent["server"]
    assert isinstance(frame, bytes)
    (length,) = peng3dnet.net.STRUCT_LENGTH32.unpack_from(frame)
    pid, _ = peng3dnet.net.STRUCT_HEADER.unpack_from(frame, 4)
    assert length == len(frame) - 4 and pid == server.registry.getID("test:echo")
    assert server.test_packets["test:echo"].sent == [(frame, next(iter(server.clients)))]


def test_hooks_assigned_on_instances(net):
    server = net.server(EchoServer)
    client = net.client(server, EchoClient)
    got = []
    client.on_receive = lambda ptype, msg: got.append(msg)
    client.send_message("test:echo", "via instance hook")
    assert wait_until(lambda: "via instance hook" in got)


@pytest.mark.reference_bug(18)
def test_server_close_reason_reaches_both_sides(net):
    reasons = {}

    class Conn(peng3dnet.ClientOnServer):
        def on_close(self, reason=None):
            reasons["server"] = reason

    server = net.server(EchoServer, clientcls=Conn)
    client = net.client(server, EchoClient)
    client.on_close = lambda reason=None: reasons.setdefault("client", reason)
    (cid,) = server.clients
    server.close_connection(cid, "kicked")
    assert wait_until(lambda: len(reasons) == 2)
    assert reasons == {"server": "kicked", "client": "kicked"}
    assert wait_until(lambda: cid not in server.clients)


def test_client_close_reason_reaches_server(net):
    reasons = []

    class Conn(peng3dnet.ClientOnServer):
        def on_close(self, reason=None):
            reasons.append(reason)

    server = net.server(EchoServer, clientcls=Conn)
    client = net.client(server, EchoClient)
    client.close_connection(reason="leaving")
    assert wait_until(lambda: reasons == ["leaving"])
    assert wait_until(lambda: server.clients == {})


def test_packets_sent_before_close_are_delivered(net):
    server = net.server(EchoServer)
    client = net.client(server, EchoClient)
    for i in range(50):
        client.send_message("test:other", i)
    client.close_connection(reason="done")
    received = server.test_packets["test:other"].received
    assert wait_until(lambda: len(received) == 50)
    assert [m for m, _ in received] == list(range(50))


def test_closed_connection_state(net):
    server = net.server(EchoServer)
    client = net.client(server, EchoClient)
    (conn,) = server.clients.values()
    client.close_connection(reason="bye")
    client.wait_for_close(5)
    assert wait_until(lambda: client.remote_state == STATE_CLOSED)
    assert wait_until(lambda: conn.state == STATE_CLOSED)
    assert conn.mode == MODE_CLOSED


@pytest.mark.reference_bug(18)
def test_shutdown_delivers_reason_to_every_client(net):
    server_reasons = []

    class Conn(peng3dnet.ClientOnServer):
        def on_close(self, reason=None):
            server_reasons.append(reason)

    server = net.server(EchoServer, clientcls=Conn)
    clients = [net.client(server, EchoClient) for _ in range(5)]
    reasons = []
    lock = threading.Lock()
    for c in clients:
        c.on_close = lambda reason=None: (lock.acquire(), reasons.append(reason), lock.release())
    assert wait_until(lambda: len(server.clients) == 5)
    server.shutdown(join=True, timeout=5, reason="maintenance")
    assert wait_until(lambda: len(reasons) == 5)
    assert reasons == ["maintenance"] * 5
    assert server_reasons == ["maintenance"] * 5


def test_many_clients_at_once(net):
    server = net.server(EchoServer)
    clients = [net.client(server, EchoClient, wait=False) for _ in range(30)]
    for c in clients:
        c.wait_for_connection(10)
    for i, c in enumerate(clients):
        c.send_message("test:echo", i)
    for i, c in enumerate(clients):
        assert wait_until(lambda c=c: c.test_packets["test:echo"].received, timeout=10)
        assert c.test_packets["test:echo"].received[0][0] == i
    assert len(server.clients) == 30
    assert len(set(server.clients)) == 30


def test_server_sends_to_specific_client(net):
    server = net.server(EchoServer)
    a, b = net.client(server, EchoClient), net.client(server, EchoClient)
    assert wait_until(lambda: len(server.clients) == 2)
    cid_b = max(server.clients)
    server.send_message("test:other", "only b", cid_b)
    assert wait_until(lambda: b.test_packets["test:other"].received)
    time.sleep(0.1)
    assert a.test_packets["test:other"].received == []


def test_send_by_id_name_and_object(net):
    server = net.server(EchoServer)
    client = net.client(server, EchoClient)
    obj = client.test_packets["test:other"]
    client.send_message(client.registry.getID("test:other"), "by id")
    client.send_message("test:other", "by name")
    client.send_message(obj, "by object")
    received = server.test_packets["test:other"].received
    assert wait_until(lambda: len(received) == 3)
    assert [m for m, _ in received] == ["by id", "by name", "by object"]


def injected_stream(server, count):
    other = server.registry.getID("test:other")
    raw = peng3dnet.net.STRUCT_HEADER.pack(other, 0) + msgpack.packb({"injected": True})
    return (peng3dnet.net.STRUCT_LENGTH32.pack(len(raw)) + raw) * count


def test_receive_data_feeds_a_connection_by_hand(net):
    # Bytes given to receive_data are handled as if they had arrived on the connection.
    server, _ = echo_pair(net)
    (cid,) = server.clients
    stream = injected_stream(server, 3)
    server.receive_data(stream[: len(stream) // 3 * 2 - 5], cid)
    server.receive_data(stream[len(stream) // 3 * 2 - 5 :], cid)
    received = server.test_packets["test:other"].received
    assert wait_until(lambda: len(received) == 3)
    assert received == [({"injected": True}, cid)] * 3


@pytest.mark.ours_only
def test_receive_data_split_inside_a_length_prefix(net):
    # The original spins forever here (its bug 1), so this runs on ours only.
    server, _ = echo_pair(net)
    (cid,) = server.clients
    stream = injected_stream(server, 2)
    server.receive_data(stream[:2], cid)
    server.receive_data(stream[2 : len(stream) // 2 + 1], cid)
    server.receive_data(stream[len(stream) // 2 + 1 :], cid)
    received = server.test_packets["test:other"].received
    assert wait_until(lambda: len(received) == 2)


def test_debug_print_flags(net, capsys):
    debug = {"net.debug.print.send": True, "net.debug.print.recv": True}
    server = net.server(EchoServer, cfg=debug)
    client = net.client(server, EchoClient, cfg=debug)
    client.send_message("test:echo", "hello")
    assert wait_until(lambda: client.test_packets["test:echo"].received)
    out = capsys.readouterr().out
    assert "SEND" in out and "RECV" in out
    quiet = net.client(server, EchoClient)
    capsys.readouterr()
    quiet.send_message("test:echo", "quiet")
    assert wait_until(lambda: quiet.test_packets["test:echo"].received)
    assert "SEND test:echo\n" not in capsys.readouterr().out


def test_print_packet_prints(net, capsys):
    class S(peng3dnet.Server):
        def _reg_packets_test(self):
            self.register_packet("test:print", peng3dnet.packet.PrintPacket(self.registry, self))

    class C(peng3dnet.Client):
        _reg_packets_test = S._reg_packets_test

    server = net.server(S)
    client = net.client(server, C)
    client.send_message("test:print", {"shown": 42})
    assert wait_until(lambda: "42" in capsys.readouterr().out)


@pytest.mark.ours_only
def test_process_loses_nothing_when_batches_are_full(net, monkeypatch):
    # process() takes queued events in batches and stops after a few full ones so that a
    # busy stream cannot keep it from returning; what it leaves must stay queued for the
    # next call. Tiny batches make the limit easy to reach.
    monkeypatch.setattr(peng3dnet.net._peer, "_BATCH", 4)
    monkeypatch.setattr(peng3dnet.net._peer, "_MAX_BATCHES", 2)
    server = net.server(EchoServer, process=False)
    net.client(server, EchoClient, wait=False)
    assert wait_until(lambda: server.process() is not None and len(server.clients) == 1)
    (cid,) = server.clients
    server.receive_data(injected_stream(server, 50), cid)
    received = server.test_packets["test:other"].received
    for _ in range(100):
        if server.process() == 0 and len(received) >= 50:
            break
    assert len(received) == 50
