"""Broadcast and groups (additions to the original API), over real sockets, with clients
of both implementations."""

import time

import pytest
from support import Recorder, packets_mixin, run_remote_clients, wait_until

import peng3dnet
from peng3dnet.packet import Packet, SmartPacket

PACKETS = ["test:join", "test:news"]


class Join(Packet):
    """On the server: join the sender to the group named in the message, then tell the
    group who joined."""

    def receive(self, msg, cid=None):
        if cid is not None:
            self.peer.join_group(cid, msg["group"])
            self.peer.send_group(msg["group"], "test:news", {"joined": msg["who"]})


class GroupServer(peng3dnet.Server):
    def _reg_packets_test(self):
        self.register_packet("test:join", Join(self.registry, self))
        self.register_packet("test:news", Recorder(self.registry, self))


class GroupClient(peng3dnet.Client):
    _reg_packets_test = packets_mixin(*PACKETS, cls=Recorder)


def news(client):
    return [m for m, _ in client.test_packets["test:news"].received]


def clients(net, server, count):
    made = [net.client(server, GroupClient) for _ in range(count)]
    assert wait_until(lambda: len(server.clients) == count)
    return made


def test_broadcast_reaches_every_active_client_once(net):
    server = net.server(GroupServer)
    everyone = clients(net, server, 4)
    assert server.broadcast("test:news", {"big": "x" * 100_000}) == 4  # compressed once
    assert wait_until(lambda: all(news(c) == [{"big": "x" * 100_000}] for c in everyone))


def test_broadcast_selects_and_excludes(net):
    server = net.server(GroupServer)
    a, b, c = clients(net, server, 3)
    cid_of = {tuple(client.addr[:2]): cid for cid, client in server.clients.items()}
    cid_a, cid_b, cid_c = (cid_of[tuple(x.sock.getsockname()[:2])] for x in (a, b, c))
    assert server.broadcast("test:news", "to a and b", cids=[cid_a, cid_b]) == 2
    assert server.broadcast("test:news", "not to c", exclude=cid_c) == 2
    assert server.broadcast("test:news", "only c", exclude=[cid_a, cid_b]) == 1
    assert server.broadcast("test:news", "unknown ids are skipped", cids=[999_999]) == 0
    # Each client is its own connection: wait for all three, not for one of a pair.
    assert wait_until(lambda: len(news(a)) == len(news(b)) == 2 and len(news(c)) == 1)
    assert news(a) == news(b) == ["to a and b", "not to c"]
    assert news(c) == ["only c"]


def test_broadcast_skips_closing_clients_and_others_carry_on(net):
    server = net.server(GroupServer)
    a, b = clients(net, server, 2)
    a.close_connection(reason="bye")
    a.wait_for_close(5)
    assert server.broadcast("test:news", "after a left") <= 2
    assert wait_until(lambda: news(b) == ["after a left"])
    assert news(a) == []


def test_broadcast_checks_smartpacket_conditions_per_client(net):
    class ChatOnly(SmartPacket):
        mode = peng3dnet.constants.MODE_CHAT

    class Server(peng3dnet.Server):
        def _reg_packets_test(self):
            self.register_packet("test:news", ChatOnly(self.registry, self))

    class Client(peng3dnet.Client):
        _reg_packets_test = packets_mixin("test:news", cls=Recorder)

    server = net.server(Server)
    a, b = (net.client(server, Client) for _ in range(2))
    assert wait_until(lambda: len(server.clients) == 2)
    first = min(server.clients)
    server.clients[first].mode = peng3dnet.constants.MODE_CHAT
    assert server.broadcast("test:news", "chatters only") == 1
    received = [c.test_packets["test:news"].received for c in (a, b)]
    assert wait_until(lambda: sum(map(len, received)) == 1)
    time.sleep(0.1)
    assert sum(map(len, received)) == 1


def test_internal_packets_cannot_be_broadcast(net):
    server = net.server(GroupServer)
    with pytest.raises(ValueError, match="cannot be broadcast"):
        server.broadcast("peng3dnet:internal.closeconn", {"reason": "no"})


def test_groups_membership_and_end_with_the_connection(net):
    server = net.server(GroupServer)
    a, b = clients(net, server, 2)
    a.send_message("test:join", {"group": "red", "who": "a"})
    b.send_message("test:join", {"group": "blue", "who": "b"})
    assert wait_until(lambda: news(a) == [{"joined": "a"}] and news(b) == [{"joined": "b"}])
    (cid_a,) = server.members("red")
    server.join_group(cid_a, "blue")
    assert server.groups_of(cid_a) == {"red", "blue"}
    assert server.send_group("blue", "test:news", "blue news", exclude=cid_a) == 1
    assert wait_until(lambda: news(b)[-1:] == ["blue news"])
    server.leave_group(cid_a, "red")
    assert server.members("red") == set() and server.groups_of(cid_a) == {"blue"}
    with pytest.raises(KeyError):
        server.join_group(424242, "red")
    a.close_connection(reason="bye")
    a.wait_for_close(5)
    assert wait_until(lambda: server.groups_of(cid_a) == set())
    assert len(server.members("blue")) == 1


def test_reference_client_in_a_group(net, tmp_path, ref_python):
    # A client of the original joins a group on our server and receives what is sent to
    # it, next to our own clients (the wire protocol is unchanged).
    server = net.server(GroupServer)
    (ours,) = clients(net, server, 1)
    ours.send_message("test:join", {"group": "red", "who": "ours"})
    assert wait_until(lambda: news(ours) == [{"joined": "ours"}])
    (report,) = run_remote_clients(
        ref_python,
        tmp_path,
        net.port(server),
        PACKETS,
        [("send", "test:join", {"group": "red", "who": "reference"}), ("sleep", 1.0)],
    )
    assert report["error"] is None, report
    assert report["received"]["test:news"] == [{"joined": "reference"}]
    assert wait_until(lambda: news(ours) == [{"joined": "ours"}, {"joined": "reference"}])
