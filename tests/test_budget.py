"""The memory budget (an addition): what all of a server's (or a client's) connections
may hold because of what their peers send or do not read, however many there are.

The proof of the whole is ``benches/attack.py`` (``./run attack`` runs it with the
default settings, next to the original); here it runs scaled down (a 32 MiB budget,
8 MiB frames), with assertions on what must hold on any machine: memory, loss,
reasons. Latency is reported there, not asserted here.
"""

import logging
import socket
import struct
import sys
import threading

import msgpack
import pytest
from support import IMPL, PYTHONS, ROOT, Recorder, packets_mixin, wait_until

import peng3dnet

pytestmark = pytest.mark.skipif(IMPL != "ours", reason="the memory budget is an addition")

sys.path.insert(0, str(ROOT / "benches"))
import attack  # noqa: E402

MIB = 1024 * 1024


class BigServer(peng3dnet.Server):
    _reg_packets_test = packets_mixin("test:echo", "test:big")


class BigClient(peng3dnet.Client):
    _reg_packets_test = packets_mixin("test:echo", "test:big", cls=Recorder)


def test_an_attack_of_sixty_connections_stays_within_the_budget():
    budget = 32 * MIB
    report = attack.run(
        str(PYTHONS["ours"]),
        {
            "net.limits.memory": budget,
            "net.limits.max_frame": 8 * MIB,
            "net.timeout.memory_pressure": 0.2,
        },
        hold=5.0,
    )
    print(report)
    assert report["server_survived"]
    honest = report["honest"]
    assert honest["survived"] and honest["lost"] == 0, honest
    assert honest["attack"]["n"] > 100, "the honest client made no progress during the attack"
    for kind, outcome in report["attackers"].items():
        assert outcome["cut_off"] == outcome["total"] == 20, (kind, outcome)
    closed = report["server_closed"]
    assert closed["count"] == 60 and closed["without_reason"] == 0, closed
    assert "memorylimit" in closed["reasons"], closed
    # The budget plus a constant: the interpreter's own allocations, the bodies of one
    # batch of events Python holds, thread stacks touched by the attack.
    assert report["peak_growth_mib"] * MIB <= budget + 24 * MIB, report
    assert report["usable_after"]
    assert report["after_rss_mib"] <= report["baseline_rss_mib"] + 16, report
    memory = report["server_memory"]
    assert memory["memory_used"] == 0 and memory["memory_budget"] == budget, memory


def test_a_64_mib_packet_goes_both_ways_with_the_default_settings(net):
    server = net.server(BigServer)
    client = net.client(server, BigClient)
    # Incompressible (sent as it is) and compressible (inflated on arrival).
    got = client.test_packets["test:echo"].received
    for n, payload in enumerate((bytes(range(256)) * (64 * MIB // 256), b"\x00" * (64 * MIB))):
        client.send_message("test:echo", payload)
        assert wait_until(lambda n=n: len(got) > n, timeout=60)
        assert got[n][0] == payload
    stats = server.stats()
    assert stats["memory_budget"] >= 64 * MIB
    assert wait_until(lambda: server.stats()["memory_used"] == 0)
    assert client.stats()["memory_used"] == 0


def raw_connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock, timeout=10):
    sock.settimeout(timeout)
    data = bytearray()
    try:
        while chunk := sock.recv(1 << 16):
            data.extend(chunk)
    except OSError:
        pass
    return bytes(data)


def test_before_the_handshake_only_small_frames_are_read(net):
    server = net.server(BigServer)
    sock = raw_connect(net.port(server))
    # The hello arrives; then a frame announcing 64 KiB + 1 byte is refused at once,
    # before any of it is buffered.
    sock.sendall(struct.pack("!I", 64 * 1024 + 1))
    data = read_until_closed(sock)
    assert b"exceeds the limit of 65536 bytes" in data
    sock.close()


def test_lasting_pressure_drops_the_largest_holder_and_says_so(net, caplog):
    caplog.set_level(logging.INFO, logger="peng3dnet")
    server = net.server(
        BigServer,
        cfg={"net.limits.memory": 4 * MIB, "net.timeout.memory_pressure": 0.1},
    )
    honest = net.client(server, BigClient)
    wire = attack.Wire(net.port(server))
    # A frame of 8 MiB sent in full: more than the whole budget.
    header = struct.pack("!IIH", 8 * MIB, wire.pid("test:echo"), 0)

    def send():
        try:
            wire.sock.sendall(header + bytes(8 * MIB - 6))
        except OSError:
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    assert wire.wait_closed(10), "the attacker was not dropped"
    assert wait_until(lambda: server.stats()["memory_evictions"] >= 1)
    assert wait_until(lambda: "memory budget exhausted" in caplog.text)
    assert wait_until(lambda: "holds the most" in caplog.text)
    assert wait_until(lambda: "memory budget available again" in caplog.text, timeout=5)
    stats = server.stats()
    assert stats["memory_budget"] == 4 * MIB and stats["memory_peak"] >= 1 * MIB
    assert wait_until(lambda: server.stats()["memory_used"] == 0)
    # The honest client never noticed.
    honest.send_message("test:echo", "still here")
    assert wait_until(lambda: honest.test_packets["test:echo"].received)
    assert honest.test_packets["test:echo"].received[0][0] == "still here"
    wire.close()


def test_a_server_cannot_make_a_client_inflate_beyond_its_budget(net):
    server = net.server(BigServer)
    client = net.client(server, BigClient, cfg={"net.limits.memory": 8 * MIB})
    (cid,) = server.clients
    # 64 MiB of zeros: about 64 KiB on the wire.
    server.send_message("test:big", b"\x00" * (64 * MIB), cid)
    client.wait_for_close(10)
    assert client._close_reason == "memorylimit"
    assert client.test_packets["test:big"].received == []


def test_the_budget_must_be_large_enough_to_be_useful(net):
    with pytest.raises(ValueError, match=r"net\.limits\.memory must be at least"):
        net.server(BigServer, cfg={"net.limits.memory": 1024})


def test_a_connection_reports_what_it_holds(net):
    server = net.server(BigServer)
    client = net.client(server, BigClient)
    stats = client.stats()
    assert stats["memory_held"] == 0
    assert {"memory_budget", "memory_used", "memory_peak", "memory_evictions"} <= set(stats)
    assert all("memory_held" in each for each in server.stats(clients=True)["clients"].values())


def test_handshake_frame_limit_is_configurable(net):
    server = net.server(BigServer, cfg={"net.limits.handshake_frame": 128})
    # Our own client's handshake packets fit in far less than the default.
    client = net.client(server, BigClient)
    client.send_message("test:echo", "x" * 10_000)
    assert wait_until(lambda: client.test_packets["test:echo"].received)
    sock = raw_connect(net.port(server))
    sock.sendall(struct.pack("!IIH", 6 + 200, 2, 0) + msgpack.packb("y" * 190))
    assert b"exceeds the limit of 128 bytes" in read_until_closed(sock)
    sock.close()
