"""Connection types: registration, init on both sides, receive/send hooks."""

import pytest
from support import Recorder, wait_until

import peng3dnet
from peng3dnet.conntypes import ClassicConnectionType, ConnectionType
from peng3dnet.constants import STATE_ACTIVE


class Custom(ConnectionType):
    """A connection type without the registry handshake: active right after init."""

    def __init__(self, peer):
        super().__init__(peer)
        self.inits = []
        self.received = []
        self.sent = []
        self.swallow = False

    def init(self, cid):
        self.inits.append(cid)
        if cid is None:
            self.peer.remote_state = STATE_ACTIVE
        else:
            self.peer.clients[cid].state = STATE_ACTIVE

    def receive(self, msg, pid, flags, cid):
        self.received.append((msg, pid, flags, cid))
        return self.swallow

    def send(self, data, pid, cid):
        self.sent.append((pid, cid))
        return False


def custom_peers():
    class S(peng3dnet.Server):
        def _reg_packets_test(self):
            self.pkt = Recorder(self.registry, self)
            self.register_packet("test:p", self.pkt)

        def _reg_conntypes_test(self):
            self.custom = Custom(self)
            self.addConnType("custom", self.custom)

    class C(peng3dnet.Client):
        _reg_packets_test = S._reg_packets_test
        _reg_conntypes_test = S._reg_conntypes_test

    return S, C


def test_custom_conntype_init_and_hooks(net):
    S, C = custom_peers()
    server = net.server(S)
    client = net.client(server, C, conntype="custom", wait=False)
    assert wait_until(lambda: client.remote_state == STATE_ACTIVE)
    assert wait_until(lambda: len(server.clients) == 1)
    (cid,) = server.clients
    assert wait_until(lambda: server.custom.inits == [cid])
    assert client.custom.inits == [None]
    assert server.clients[cid].conntype == "custom"
    assert wait_until(lambda: server.clients[cid].state == STATE_ACTIVE)
    client.send_message(64, {"hello": 1})
    assert wait_until(lambda: server.pkt.received)
    assert server.custom.received == [({"hello": 1}, 64, 0, cid)]
    assert client.custom.sent == [(64, None)]
    server.send_message(64, "back", cid)
    assert wait_until(lambda: client.pkt.received == [("back", None)])
    assert server.custom.sent == [(64, cid)]


def test_receive_returning_true_stops_processing(net):
    S, C = custom_peers()
    server = net.server(S)
    client = net.client(server, C, conntype="custom", wait=False)
    assert wait_until(lambda: len(server.clients) == 1 and server.custom.inits)
    server.custom.swallow = True
    client.send_message(64, "swallowed")
    assert wait_until(lambda: server.custom.received)
    assert server.pkt.received == []


@pytest.mark.reference_bug(6)
def test_unknown_conntype_closes_with_reason(net):
    reasons = []

    class C(peng3dnet.Client):
        def _reg_conntypes_test(self):
            self.addConnType("nope", Custom(self))

        def on_close(self, reason=None):
            reasons.append(reason)

    server = net.server()
    net.client(server, C, conntype="nope", wait=False)
    assert wait_until(lambda: reasons == ["unknownconntype"])


def test_classic_subclass_with_own_init_still_handshakes(net):
    inits = []

    class Traced(ClassicConnectionType):
        def init(self, cid):
            inits.append(cid)
            super().init(cid)

    # Replacing the registered classic type, as an app would from a hook.
    def _reg_conntypes_test(self):
        self.conntypes["classic"] = Traced(self)

    Srv = type("Srv", (peng3dnet.Server,), {"_reg_conntypes_test": _reg_conntypes_test})
    Cl = type("Cl", (peng3dnet.Client,), {"_reg_conntypes_test": _reg_conntypes_test})

    server = net.server(Srv)
    client = net.client(server, Cl)
    assert client.remote_state == STATE_ACTIVE
    (cid,) = server.clients
    assert wait_until(lambda: sorted(inits, key=str) == sorted([cid, None], key=str))


def test_duplicate_conntype_is_refused():
    server = peng3dnet.Server()
    server.addConnType("x", ConnectionType(server))
    with pytest.raises(peng3dnet.errors.AlreadyRegisteredError):
        server.addConnType("x", ConnectionType(server))
