"""The ping extension: pingable servers and clients, pingServer."""

import socket
import threading
import time

import pytest
from support import wait_until

import peng3dnet
from peng3dnet.ext import ping


class PingServer(ping.PingableServerMixin, peng3dnet.Server):
    pingdata = {"name": "conformance"}

    def getPingData(self, msg, cid):
        return {"players": 7, "asked": msg.get("question")}


def test_names():
    for name in [
        "PingConnectionType",
        "PingableServerMixin",
        "PingableClientMixin",
        "pingServer",
        "WRITEBACK",
    ]:
        assert hasattr(ping, name)
    assert ping.WRITEBACK is True
    assert issubclass(ping.PingConnectionType, peng3dnet.conntypes.ConnectionType)
    assert peng3dnet.CONNTYPE_PING == "ping"


def test_ping_server_answers(net):
    server = net.server(PingServer)
    answer = ping.pingServer(addr=net.address(server), data={"question": "hi"}, timeout=5)
    assert answer["name"] == "conformance"
    assert answer["players"] == 7
    assert answer["asked"] == "hi"
    assert answer["oldmsg"]["question"] == "hi"
    info = answer["peng3dnet"]
    assert info["protoversion"] == 2
    assert {"version", "release"} <= set(info)
    assert 0 <= answer["delay"] < 5
    assert abs(answer["recvtime"] - time.time()) < 5


def test_ping_connection_type_version_data():
    data = ping.PingConnectionType(None).getPingData({}, 1)
    assert data["peng3dnet"]["protoversion"] == peng3dnet.PROTOVERSION
    assert data["peng3dnet"]["version"] == peng3dnet.version.VERSION


def test_server_sees_ping_mode_and_client_closes(net):
    server = net.server(PingServer)
    modes = []
    reasons = []

    class Conn(peng3dnet.ClientOnServer):
        def on_close(self, reason=None):
            modes.append(self.mode)
            reasons.append(reason)

    server.clientcls = Conn
    ping.pingServer(addr=net.address(server), timeout=5)
    assert wait_until(lambda: reasons)
    assert modes[0] in (peng3dnet.MODE_PING, peng3dnet.MODE_CLOSED)


@pytest.mark.ours_only
def test_server_learns_why_a_ping_connection_closed(net):
    # The original's server may report None here: it sees the socket end before it
    # dispatches the close packet.
    reasons = []

    class Conn(peng3dnet.ClientOnServer):
        def on_close(self, reason=None):
            reasons.append(reason)

    server = net.server(PingServer, clientcls=Conn)
    ping.pingServer(addr=net.address(server), timeout=5)
    assert wait_until(lambda: reasons)
    assert reasons == ["pingcomplete"]


@pytest.mark.reference_bug(9)
def test_ping_server_does_not_modify_the_callers_data(net):
    server = net.server(PingServer)
    data = {"question": "unchanged?"}
    ping.pingServer(addr=net.address(server), data=data, timeout=5)
    assert data == {"question": "unchanged?"}


def test_each_client_waits_for_its_own_pong(net):
    class Client(ping.PingableClientMixin, peng3dnet.Client):
        pass

    server = net.server(PingServer)
    first = Client(addr=net.address(server), conntype=peng3dnet.CONNTYPE_PING)
    first.setPingData({"n": 1, "time": "__AUTO__"})  # the original requires the key
    net.clients.append(first)
    first.runAsync()
    first.process_async()
    assert first.wait_for_pong(5)["oldmsg"]["n"] == 1
    # A second client has not pinged: it must not see the first client's answer.
    second = Client(addr=net.address(server), conntype=peng3dnet.CONNTYPE_PING)
    with pytest.raises(peng3dnet.errors.FailedPingError):
        second.wait_for_pong(0.2)


def test_concurrent_pings_each_get_their_own_answer(net):
    server = net.server(PingServer)
    answers = {}

    def run(n):
        answers[n] = ping.pingServer(addr=net.address(server), data={"question": n}, timeout=10)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(answers) == list(range(8))
    assert all(answers[n]["asked"] == n for n in answers)


def test_ping_fails_against_a_silent_server():
    with socket.create_server(("127.0.0.1", 0)) as silent:
        stop = threading.Event()

        def accept():
            silent.settimeout(0.2)
            conns = []
            while not stop.is_set():
                try:
                    conns.append(silent.accept()[0])
                except OSError:
                    pass
            for c in conns:
                c.close()

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        started = time.monotonic()
        try:
            with pytest.raises(peng3dnet.errors.FailedPingError):
                ping.pingServer(addr=("127.0.0.1", silent.getsockname()[1]), timeout=0.5)
            assert time.monotonic() - started < 5
        finally:
            stop.set()
            thread.join(2)


@pytest.mark.ours_only
def test_ping_to_a_closed_port_is_a_connection_error():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        ping.pingServer(addr=("127.0.0.1", port), timeout=5)
    assert time.monotonic() - started < 2


def test_writeback_can_be_turned_off(net, monkeypatch):
    monkeypatch.setattr(ping, "WRITEBACK", False)
    server = net.server(PingServer)

    class Client(ping.PingableClientMixin, peng3dnet.Client):
        pass

    client = Client(addr=net.address(server), conntype=peng3dnet.CONNTYPE_PING)
    client.setPingData({"secret": 1, "time": "__AUTO__"})
    net.clients.append(client)
    client.runAsync()
    client.process_async()
    answer = client.wait_for_pong(5)
    assert "oldmsg" not in answer
    assert answer["name"] == "conformance"
