"""Limits that are not about bad bytes: how many connections a server keeps, and how long
a silent connection may stay. (Hostile input is in conformance/test_hostile.py.)"""

import time

import pytest
from support import Recorder, packets_mixin, wait_until

import peng3dnet
from peng3dnet.errors import ConnectionClosedError


class EchoServer(peng3dnet.Server):
    _reg_packets_test = packets_mixin("test:echo")


class EchoClient(peng3dnet.Client):
    _reg_packets_test = packets_mixin("test:echo", cls=Recorder)


def test_connections_beyond_the_maximum_are_refused_with_a_reason(net, caplog):
    server = net.server(EchoServer, cfg={"net.limits.max_connections": 2})
    first = net.client(server, EchoClient)
    net.client(server, EchoClient)
    with pytest.raises(ConnectionClosedError) as refused:
        net.client(server, EchoClient, timeout=5)
    assert refused.value.reason == "serverfull"
    assert wait_until(lambda: "net.limits.max_connections" in caplog.text)
    # The clients already connected are unaffected ...
    first.send_message("test:echo", "still here")
    assert wait_until(lambda: first.test_packets["test:echo"].received)
    assert len(server.clients) == 2
    # ... and once one leaves, there is room again.
    first.close_connection(reason="bye")
    first.wait_for_close(5)
    assert wait_until(lambda: server._core.connection_count == 1, timeout=5)
    later = net.client(server, EchoClient)
    later.send_message("test:echo", "in")
    assert wait_until(lambda: later.test_packets["test:echo"].received)


def test_idle_timeout_closes_only_silent_connections(net):
    server = net.server(EchoServer, cfg={"net.timeout.idle": 0.6})
    silent = net.client(server, EchoClient)
    chatty = net.client(server, EchoClient)
    started = time.monotonic()
    while time.monotonic() - started < 1.8:
        chatty.send_message("test:echo", "tick")
        time.sleep(0.1)
    silent.wait_for_close(2)
    assert silent._close_reason == "idletimeout"
    assert chatty.remote_state == peng3dnet.constants.STATE_ACTIVE
    assert len(server.clients) == 1


def test_no_idle_timeout_by_default(net):
    server = net.server(EchoServer)
    client = net.client(server, EchoClient)
    time.sleep(1.0)
    client.send_message("test:echo", "still connected")
    assert wait_until(lambda: client.test_packets["test:echo"].received)
    assert server.cfg["net.timeout.idle"] is None
