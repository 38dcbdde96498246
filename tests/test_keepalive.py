"""Dead-peer detection (TCP keepalive, heartbeats between peng3dnet-rs peers) and the
statistics snapshots (additions to the original API), over real sockets, against raw
peers and against the original implementation."""

import os
import socket
import struct
import time

import msgpack
import pytest
from support import Recorder, RemoteServer, packets_mixin, run_remote_clients, wait_until
from test_broadcast import PACKETS, GroupServer

import peng3dnet
from peng3dnet import _core

# Probes every 50 ms; silence for 300 ms is death.
FAST = {"net.keepalive.interval": 0.05, "net.keepalive.timeout": 0.3}
HEARTBEAT_KEY = "rs.heartbeat"


class ReasonServer(peng3dnet.Server):
    """Records every connection's close reason."""

    def __init__(self, *args, **kwargs):
        self.reasons = []
        reasons = self.reasons

        class Conn(peng3dnet.ClientOnServer):
            def on_close(self, reason=None):
                reasons.append(reason)

        super().__init__(*args, clientcls=Conn, **kwargs)

    _reg_packets_test = packets_mixin("test:echo")


class ReasonClient(peng3dnet.Client):
    def __init__(self, *args, **kwargs):
        self.reasons = []
        super().__init__(*args, **kwargs)

    def on_close(self, reason=None):
        self.reasons.append(reason)

    _reg_packets_test = packets_mixin("test:echo", cls=Recorder)


def frame(pid, msg):
    return _core.FrameCodec().encode(pid, msg)


def read_frame(sock, timeout=5.0):
    """Reads one uncompressed frame from a raw socket; returns (pid, msg)."""
    sock.settimeout(timeout)

    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "the peer hung up"
            data += chunk
        return data

    (length,) = struct.unpack("!I", exactly(4))
    pid, _flags = struct.unpack("!IH", exactly(6))
    return pid, msgpack.unpackb(exactly(length - 6))


def test_idle_peers_stay_connected_through_heartbeats_and_time_round_trips(net):
    server = net.server(ReasonServer, cfg=dict(FAST))
    client = net.client(server, ReasonClient, cfg=dict(FAST))
    time.sleep(1.0)  # more than three timeouts without a single app packet
    assert client.reasons == [] and server.reasons == []
    stats = client.stats()
    assert stats["heartbeat"] is True
    assert 0 < stats["rtt"] < 0.3
    assert stats["packets_in"] >= 10  # the answers to ~20 probes, at least
    (server_side,) = server.stats(clients=True)["clients"].values()
    assert server_side["heartbeat"] is True and server_side["rtt"] is not None
    # And the connection still works.
    client.send_message("test:echo", "still here")
    assert wait_until(lambda: client.test_packets["test:echo"].received == [("still here", None)])


def test_an_idle_connection_costs_one_task_per_end(net):
    # Heartbeats further apart than a writer task's idle time (100 ms): a probe and a
    # reply sent close together go through a writer task, which then parks between
    # heartbeats (with FAST's 50 ms, writers could stay busy for the whole wait).
    cfg = {"net.keepalive.interval": 0.3, "net.keepalive.timeout": 1.5}
    server = net.server(ReasonServer, cfg=dict(cfg))
    net.port(server)  # heartbeats run over the network only
    net.client(server, ReasonClient, cfg=dict(cfg))  # the runtime and timer queue run
    before = _core.runtime_tasks()
    clients = [net.client(server, ReasonClient, cfg=dict(cfg)) for _ in range(5)]
    assert wait_until(lambda: len(server.clients) == 6)
    assert all(client.stats()["heartbeat"] for client in clients)
    # Both ends of each connection are in this process. While writing, each end has a
    # reader and a writer task; idle (heartbeats are written by their sender), only
    # the reader. The timers are entries in one queue (a timer task per connection
    # would add 10 more).
    assert wait_until(lambda: _core.runtime_tasks() - before <= 2 * len(clients), 3), (
        _core.runtime_tasks() - before
    )


def test_a_connection_holds_one_timer_entry_with_the_default_settings(net):
    # The handshake deadline (10 s) comes before the first heartbeat would (10 s after
    # the handshake): its entry starts the heartbeats, instead of a second entry.
    server = net.server(ReasonServer)
    net.port(server)
    net.client(server, ReasonClient)  # the runtime and timer queue run
    assert wait_until(lambda: len(server.clients) == 1)
    before = _core.timer_entries()
    clients = [net.client(server, ReasonClient) for _ in range(5)]
    assert wait_until(lambda: len(server.clients) == 6)
    assert all(client.stats()["heartbeat"] for client in clients)
    # Both ends of each connection are in this process.
    # (At most: entries of earlier tests' connections may come due meanwhile.)
    assert _core.timer_entries() - before <= 2 * len(clients)


def test_heartbeats_started_by_the_handshake_deadline_keep_an_idle_connection(net):
    # A deadline before the first probe is due: its timer entry starts the heartbeats,
    # which must then probe, time round trips and keep the idle connection open past
    # the keepalive timeout, as heartbeats with a timer of their own do.
    cfg = {"net.keepalive.interval": 0.4, "net.keepalive.timeout": 1.2, "net.timeout.handshake": 0.3}
    server = net.server(ReasonServer, cfg=dict(cfg))
    client = net.client(server, ReasonClient, cfg=dict(cfg))
    time.sleep(2.0)  # the deadline, then more than the timeout without an app packet
    assert client.reasons == [] and server.reasons == []
    stats = client.stats()
    assert stats["heartbeat"] is True and stats["rtt"] is not None
    assert stats["packets_in"] >= 3  # answers to probes every 0.4 s, from 0.4 s on
    client.send_message("test:echo", "still here")
    assert wait_until(lambda: client.test_packets["test:echo"].received == [("still here", None)])


def test_silent_client_that_offered_heartbeats_is_closed_with_timeout(net):
    server = net.server(ReasonServer, cfg=dict(FAST))
    with socket.create_connection(("127.0.0.1", net.port(server))) as raw:
        pid, hello = read_frame(raw)
        assert pid == 1 and hello[HEARTBEAT_KEY] == pytest.approx(0.05)
        raw.sendall(frame(2, {"conntype": "classic", HEARTBEAT_KEY: 1.0}))
        started = time.monotonic()
        assert wait_until(lambda: server.reasons == ["timeout"], timeout=5)
        assert time.monotonic() - started < 2
        # What the silent peer was sent: the handshake, probes, then why it was dropped.
        received = [read_frame(raw)]
        while received[-1][0] != 16:
            received.append(read_frame(raw))
        assert received[0][0] == 3
        probes = [msg for pid, msg in received if pid == 32]
        assert probes and all(set(msg) == {"ping"} for msg in probes)
        assert received[-1] == (16, {"reason": "timeout"})


def test_silent_server_that_offered_heartbeats_is_closed_with_timeout(net):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = ReasonClient(addr=listener.getsockname(), cfg=dict(FAST))
        net.clients.append(client)
        client.runAsync()
        client.process_async()
        raw, _ = listener.accept()
        with raw:
            raw.sendall(frame(1, {"version": "0.2.0", "protoversion": 2, HEARTBEAT_KEY: 1.0}))
            pid, settype = read_frame(raw)
            assert pid == 2 and settype["conntype"] == "classic"
            assert settype[HEARTBEAT_KEY] == pytest.approx(0.05)
            # ... and then the server says nothing more.
            assert wait_until(lambda: client.reasons == ["timeout"], timeout=5)


def test_peers_that_do_not_offer_heartbeats_are_never_sent_one(net):
    server = net.server(ReasonServer, cfg=dict(FAST))
    with socket.create_connection(("127.0.0.1", net.port(server))) as raw:
        assert HEARTBEAT_KEY in read_frame(raw)[1]
        raw.sendall(frame(2, {"conntype": "classic"}))  # what the original sends
        time.sleep(0.8)
        assert read_frame(raw)[0] == 3  # the handshake packet, and nothing else:
        raw.settimeout(0.2)
        with pytest.raises(socket.timeout):
            raw.recv(1)
        assert server.reasons == []


def test_keepalive_can_be_turned_off(net):
    off = {"net.keepalive.enabled": False}
    server = net.server(ReasonServer, cfg=dict(off))
    client = net.client(server, ReasonClient, cfg=dict(off))
    assert client.stats()["heartbeat"] is False
    with socket.socket(fileno=_dup(client.sock.fileno())) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


def _dup(fd):
    return os.dup(fd)


def test_tcp_keepalive_follows_the_config(net):
    cfg = {"net.keepalive.interval": 4.0, "net.keepalive.timeout": 12.0}
    server = net.server(ReasonServer, cfg=dict(cfg))
    client = net.client(server, ReasonClient, cfg=dict(cfg))
    with socket.socket(fileno=_dup(client.sock.fileno())) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 4
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 4
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 2


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"net.keepalive.interval": 0}, "net.keepalive.interval must be a positive number"),
        ({"net.keepalive.interval": 5.0, "net.keepalive.timeout": 5.0}, "must be longer than"),
    ],
)
def test_bad_keepalive_settings_say_what_to_fix(cfg, message):
    server = peng3dnet.Server(addr=("127.0.0.1", 0), cfg=dict(cfg))
    with pytest.raises(ValueError, match=message):
        server.bind()


def test_reference_client_in_a_group_on_a_server_with_heartbeats(net, tmp_path, ref_python):
    # The original ignores the heartbeat offer: it is never probed, never timed out,
    # even when silent for longer than the timeout, and groups work as usual.
    server = net.server(GroupServer, cfg=dict(FAST))
    (report,) = run_remote_clients(
        ref_python,
        tmp_path,
        net.port(server),
        PACKETS,
        [
            ("send", "test:join", {"group": "red", "who": "first"}),
            ("sleep", 1.2),
            ("send", "test:join", {"group": "red", "who": "second"}),
            ("sleep", 0.5),
        ],
    )
    assert report["error"] is None, report
    assert report["closed"] in ([], [None], ["socketclose"]), report
    assert report["received"]["test:news"] == [{"joined": "first"}, {"joined": "second"}]
    stats = server.stats()
    assert stats["accepted"] == 1 and stats["packets_in"] >= 2


def test_our_client_on_a_reference_server_is_not_timed_out(net, tmp_path, ref_python):
    remote = RemoteServer(ref_python, tmp_path, ["test:echo"])
    try:
        client = net.client(remote.port, ReasonClient, cfg=dict(FAST))
        time.sleep(1.0)
        assert client.reasons == []
        stats = client.stats()
        assert stats["heartbeat"] is False
        assert stats["rtt"] is not None  # estimated from the handshake
        client.send_message("test:echo", "hello")
        assert wait_until(lambda: client.test_packets["test:echo"].received == [("hello", None)])
    finally:
        remote.close()


def test_stats_count_packets_bytes_and_compression(net):
    server = net.server(ReasonServer)
    client = net.client(server, ReasonClient)
    before = client.stats()
    assert before["handshake_time"] is not None and before["handshake_time"] < 5
    big = "abc" * 100_000  # compresses well, above the 8 KiB threshold
    for i in range(10):
        client.send_message("test:echo", i)
    client.send_message("test:echo", big)
    echo = client.test_packets["test:echo"]
    assert wait_until(lambda: len(echo.received) == 11)
    after = client.stats()
    assert after["packets_out"] - before["packets_out"] >= 11
    assert after["packets_in"] - before["packets_in"] >= 11
    assert after["payload_out"] - before["payload_out"] > len(big)
    assert after["compression_out"] < 0.5 and after["compression_in"] < 0.5
    assert after["bytes_out"] < after["payload_out"]  # compressed on the wire
    assert after["queued_bytes"] == 0
    totals = server.stats()
    assert totals["connections"] == 1 and totals["accepted"] == 1
    assert totals["payload_in"] == after["payload_out"]
    assert wait_until(lambda: server.stats()["bytes_in"] == client.stats()["bytes_out"])
    # Totals survive the connection.
    client.close_connection(reason="done")
    assert wait_until(lambda: server.stats()["connections"] == 0)
    final = server.stats()
    assert final["accepted"] == 1 and final["payload_in"] >= after["payload_out"]
    assert final["rtt_mean"] is None


def test_stats_before_connecting():
    assert peng3dnet.Client(addr=("127.0.0.1", 1)).stats() is None
    totals = peng3dnet.Server(addr=("127.0.0.1", 0)).stats()
    assert totals["connections"] == 0 and totals["packets_in"] == 0
