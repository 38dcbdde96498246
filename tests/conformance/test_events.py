"""peng3d events: names and data keys as documented."""

import pytest
from support import FakePeng, Recorder, packets_mixin, wait_until

import peng3dnet


class EchoServer(peng3dnet.Server):
    _reg_packets_test = packets_mixin("test:echo")


class EchoClient(peng3dnet.Client):
    _reg_packets_test = packets_mixin("test:echo", cls=Recorder)


def test_client_events(net):
    peng = FakePeng()
    server = net.server(EchoServer)
    client = net.client(server, EchoClient, peng=peng)
    client.send_message("test:echo", "ping")
    echo_id = client.registry.getID("test:echo")
    assert wait_until(lambda: any(d["pid"] == echo_id for d in peng.of("peng3dnet:client.recv")))
    client.close_connection(reason="bye")
    assert wait_until(lambda: peng.of("peng3dnet:client.close"))
    client.stop()
    names = peng.names()
    for name in [
        "initialize",
        "connect",
        "start",
        "handshakecomplete",
        "send",
        "recv",
        "close",
        "stop",
        "interrupt",
    ]:
        assert f"peng3dnet:client.{name}" in names, name
    for _, data in peng.events:
        assert data["peng"] is peng
        assert data["client"] is client
    connect = peng.of("peng3dnet:client.connect")[0]
    assert tuple(connect["addr"]) == tuple(client.addr)
    assert "sock" in connect
    sends = [d for d in peng.of("peng3dnet:client.send") if d["pid"] == "test:echo"]
    assert sends and sends[0]["data"] == "ping", "the client's send event carries the raw message"
    recvs = [d for d in peng.of("peng3dnet:client.recv") if d["pid"] == echo_id]
    assert recvs == [{"pid": echo_id, "msg": "ping", "peng": peng, "client": client}]
    assert peng.of("peng3dnet:client.stop")[0]["reason"] == "method"


@pytest.mark.reference_bug(18)
def test_client_close_event_carries_the_given_reason(net):
    peng = FakePeng()
    server = net.server(EchoServer)
    client = net.client(server, EchoClient, peng=peng)
    client.close_connection(reason="bye")
    assert wait_until(lambda: peng.of("peng3dnet:client.close"))
    assert [d["reason"] for d in peng.of("peng3dnet:client.close")] == ["bye"]


@pytest.mark.reference_bug(5)
def test_server_events(net):
    peng = FakePeng()
    server = net.server(EchoServer, peng=peng)
    client = net.client(server, EchoClient)
    client.send_message("test:echo", "ping")
    assert wait_until(lambda: client.test_packets["test:echo"].received)
    (cid,) = server.clients
    conn = server.clients[cid]
    client.close_connection(reason="bye")
    assert wait_until(lambda: peng.of("peng3dnet:server.connection.close"))
    server.shutdown(join=True, timeout=2, reason="end")
    names = peng.names()
    for name in [
        "initialize",
        "bind",
        "start",
        "connection.accept",
        "connection.handshakecomplete",
        "connection.send",
        "connection.recv",
        "connection.close",
        "stop",
        "interrupt",
        "shutdown",
    ]:
        assert f"peng3dnet:server.{name}" in names, name
    for _, data in peng.events:
        assert data["peng"] is peng
        assert data["server"] is server
    assert tuple(peng.of("peng3dnet:server.bind")[0]["addr"]) == tuple(server.addr)
    accept = peng.of("peng3dnet:server.connection.accept")[0]
    assert accept["client"] is conn and accept["cid"] == cid and "sock" in accept and "addr" in accept
    assert peng.of("peng3dnet:server.connection.handshakecomplete")[0]["client"] is conn
    echo_id = server.registry.getID("test:echo")
    recv = next(d for d in peng.of("peng3dnet:server.connection.recv") if d["pid"] == echo_id)
    assert recv["client"] is conn and recv["msg"] == "ping"
    send = [d for d in peng.of("peng3dnet:server.connection.send") if d["client"] is conn]
    assert any(isinstance(d["data"], bytes) for d in send), (
        "the server's send event carries the encoded frame"
    )
    close = peng.of("peng3dnet:server.connection.close")[0]
    assert close["client"] is conn and close["reason"] == "bye"
    shutdown = peng.of("peng3dnet:server.shutdown")[0]
    assert (shutdown["reason"], shutdown["join"], shutdown["timeout"]) == ("end", True, 2)
    assert peng.of("peng3dnet:server.stop")[0]["reason"] == "method"
