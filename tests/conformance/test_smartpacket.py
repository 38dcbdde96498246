"""SmartPacket conditions: state, side, mode, connection type, invalid_action."""

import time

import pytest
from support import Recorder, wait_until

import peng3dnet
from peng3dnet.constants import (
    MODE_CHAT,
    SIDE_CLIENT,
    SIDE_SERVER,
    SSLSEC_ENCRYPTED,
    STATE_ACTIVE,
    STATE_LOGGEDIN,
)
from peng3dnet.packet import SmartPacket


class Smart(SmartPacket):
    def __init__(self, reg, peer, obj=None):
        super().__init__(reg, peer, obj)
        self.received = []

    def receive(self, msg, cid=None):
        self.received.append((msg, cid))


def smart(**attrs):
    return type("SmartVariant", (Smart,), attrs)


def pair(net, server_packet, client_packet=Recorder, clientcls=None):
    """A server whose "test:p" is ``server_packet`` and a client whose is ``client_packet``."""

    class S(peng3dnet.Server):
        def _reg_packets_test(self):
            self.pkt = server_packet(self.registry, self)
            self.register_packet("test:p", self.pkt)
            self.marker = Recorder(self.registry, self)
            self.register_packet("test:marker", self.marker)

    class C(peng3dnet.Client):
        def _reg_packets_test(self):
            self.pkt = client_packet(self.registry, self)
            self.register_packet("test:p", self.pkt)
            self.marker = Recorder(self.registry, self)
            self.register_packet("test:marker", self.marker)

    server = net.server(S, clientcls=clientcls)
    client = net.client(server, C)
    assert wait_until(lambda: len(server.clients) == 1)
    (conn,) = server.clients.values()
    assert wait_until(lambda: conn.state == STATE_ACTIVE)
    return server, client, conn


def flush(server, client):
    """Send a marker packet after the packets under test and wait until it arrived, so
    that everything sent before it has been handled."""
    client.send_message("test:marker", "end")
    assert wait_until(lambda: server.marker.received)


@pytest.mark.parametrize(
    ("attrs", "handled"),
    [
        ({}, True),
        ({"state": STATE_LOGGEDIN}, False),
        ({"side": SIDE_SERVER}, True),
        ({"side": SIDE_CLIENT}, False),
        ({"conntype": "classic"}, True),
        ({"conntype": "other"}, False),
        ({"mode": MODE_CHAT}, False),
    ],
)
def test_receive_conditions(net, attrs, handled):
    server, client, _ = pair(net, smart(**attrs))
    client.send_message("test:p", "msg")
    flush(server, client)
    assert bool(server.pkt.received) == handled


def test_mode_condition_follows_the_connection_mode(net):
    server, client, conn = pair(net, smart(mode=MODE_CHAT))
    conn.mode = MODE_CHAT
    client.send_message("test:p", "chat")
    flush(server, client)
    assert server.pkt.received == [("chat", conn.cid)]


def test_state_set_by_the_app_counts(net):
    server, client, conn = pair(net, smart(state=STATE_LOGGEDIN))
    conn.state = STATE_LOGGEDIN
    client.send_message("test:p", "after login")
    flush(server, client)
    assert server.pkt.received == [("after login", conn.cid)]


@pytest.mark.reference_bug(18)
def test_invalid_action_close(net):
    reasons = []

    class Conn(peng3dnet.ClientOnServer):
        def on_close(self, reason=None):
            reasons.append(reason)

    server, client, _ = pair(net, smart(side=SIDE_CLIENT, invalid_action="close"), clientcls=Conn)
    client.send_message("test:p", "not allowed here")
    assert wait_until(lambda: reasons == ["smartpacketinvalid"])
    assert server.pkt.received == []


def test_invalid_action_unknown_value_is_reported_and_processing_goes_on(net):
    server, client, _ = pair(net, smart(side=SIDE_CLIENT, invalid_action="explode"))
    client.send_message("test:p", "bad")
    client.send_message("test:marker", "still processed")
    assert wait_until(lambda: server.marker.received)
    assert server.pkt.received == []


class SmartRecorder(Smart):
    def __init__(self, reg, peer, obj=None):
        super().__init__(reg, peer, obj)
        self.sent = []

    def send(self, msg, cid=None):
        self.sent.append((msg, cid))


@pytest.mark.parametrize(
    "attrs",
    [{"state": STATE_LOGGEDIN}, {"side": SIDE_CLIENT}, {"mode": MODE_CHAT}],
)
def test_failing_send_conditions_skip_the_send_hook_not_the_packet(net, attrs):
    # As in the original: the sender's conditions decide whether its send hook runs
    # (and invalid_action); the packet goes out, and the receiver's conditions decide.
    sender = type("SmartVariant", (SmartRecorder,), attrs)
    server, client, _ = pair(net, Recorder, client_packet=sender)
    client.send_message("test:p", "sent anyway")
    flush(server, client)
    assert server.pkt.received == [("sent anyway", next(iter(server.clients)))]
    assert client.pkt.sent == []


def test_send_hook_of_a_packet_that_meets_its_conditions(net):
    server, client, _ = pair(net, Recorder, client_packet=SmartRecorder)
    client.send_message("test:p", "fine")
    flush(server, client)
    assert client.pkt.sent == [("fine", None)]


@pytest.mark.ours_only
def test_a_packet_below_its_min_sslsec_level_is_not_sent(net):
    # The original sent it in the clear and only ran invalid_action; ours never sends it.
    sender = type("SmartVariant", (SmartRecorder,), {"min_sslsec_level": SSLSEC_ENCRYPTED})
    server, client, _ = pair(net, Recorder, client_packet=sender)
    client.send_message("test:p", "secret")
    flush(server, client)
    assert server.pkt.received == []
    assert client.pkt.sent == []


@pytest.mark.reference_bug(7)
def test_unknown_invalid_action_on_send_raises_the_documented_error(net):
    _, client, _ = pair(net, Recorder, client_packet=smart(side=SIDE_CLIENT, invalid_action="explode"))
    with pytest.raises(peng3dnet.errors.InvalidSmartPacketActionError):
        client.send_message("test:p", "x")


def test_invalid_send_with_close_action_closes_the_connection(net):
    reasons = []

    class Conn(peng3dnet.ClientOnServer):
        def on_close(self, reason=None):
            reasons.append(reason)

    _, client, _ = pair(
        net, Recorder, client_packet=smart(side=SIDE_CLIENT, invalid_action="close"), clientcls=Conn
    )
    client.send_message("test:p", "x")
    assert wait_until(lambda: reasons == ["smartpacketinvalid"])
    time.sleep(0.05)
