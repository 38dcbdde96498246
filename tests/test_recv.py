"""Blocking receive (an addition): ``recv`` on clients and servers, with and without a
process loop, never taking messages away from the registered handlers."""

import time

import pytest
from support import Recorder, packets_mixin, wait_until

import peng3dnet
from peng3dnet.errors import TimedOutError


class EchoServer(peng3dnet.Server):
    _reg_packets_test = packets_mixin("test:echo", "test:other")


class RecordingClient(peng3dnet.Client):
    _reg_packets_test = packets_mixin("test:echo", "test:other", cls=Recorder)


KEEP = {"net.recv.enabled": True}  # with a process loop, replies may beat the first recv()


def test_client_recv_with_a_process_loop_does_not_steal(net):
    server = net.server(EchoServer)
    client = net.client(server, RecordingClient, cfg=KEEP)
    client.send_message("test:echo", {"n": 1})
    assert client.recv(timeout=5) == ("test:echo", {"n": 1})
    # The handler saw it too.
    assert client.test_packets["test:echo"].received == [({"n": 1}, None)]


def test_client_recv_without_a_process_loop_processes_itself(net):
    server = net.server(EchoServer)
    client = net.client(server, RecordingClient, process=False)
    client.send_message("test:echo", "ping")
    assert client.recv("test:echo", timeout=5) == ("test:echo", "ping")
    assert client.test_packets["test:echo"].received == [("ping", None)]


def test_recv_filters_by_type_and_keeps_the_rest_in_order(net):
    server = net.server(EchoServer)
    client = net.client(server, RecordingClient, cfg=KEEP)
    client.send_message("test:echo", "first")
    client.send_message("test:other", "second")
    client.send_message("test:echo", "third")
    other_id = client.registry.getID("test:other")
    assert client.recv(other_id, timeout=5) == ("test:other", "second")
    assert client.recv(timeout=5) == ("test:echo", "first")
    assert client.recv(client.test_packets["test:echo"], timeout=5) == ("test:echo", "third")


def test_server_recv_names_the_client(net):
    server = net.server(EchoServer, cfg=KEEP)
    client = net.client(server, RecordingClient)
    client.send_message("test:other", {"hi": "server"})
    cid, name, msg = server.recv("test:other", timeout=5)
    assert (name, msg) == ("test:other", {"hi": "server"})
    assert cid in server.clients


def test_recv_times_out(net):
    server = net.server(EchoServer)
    client = net.client(server, RecordingClient)
    started = time.monotonic()
    with pytest.raises(TimedOutError, match="test:other"):
        client.recv("test:other", timeout=0.3)
    assert 0.25 < time.monotonic() - started < 2


def test_recv_keeps_only_the_newest_messages(net):
    server = net.server(EchoServer)
    client = net.client(server, RecordingClient, cfg={**KEEP, "net.recv.buffer": 3})
    for i in range(5):
        client.send_message("test:echo", i)
    assert wait_until(lambda: len(client.test_packets["test:echo"].received) == 5)
    assert [client.recv(timeout=1)[1] for _ in range(3)] == [2, 3, 4]
    with pytest.raises(TimedOutError):
        client.recv(timeout=0.1)


def test_nothing_is_kept_until_recv_is_used(net):
    # Apps written for the original never call recv(): they must not pay for it.
    server = net.server(EchoServer)
    client = net.client(server, RecordingClient)
    client.send_message("test:echo", "before")
    assert wait_until(lambda: client.test_packets["test:echo"].received)
    assert "_recv_messages" not in client.__dict__ and "_recv_messages" not in server.__dict__
    with pytest.raises(TimedOutError):
        client.recv(timeout=0.1)  # "before" arrived before keeping started
    client.send_message("test:echo", "after")
    assert client.recv(timeout=5) == ("test:echo", "after")
