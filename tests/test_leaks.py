"""Nothing leaks: after many connect / exchange / disconnect cycles, left in every way a
connection can end, the process has as many threads, file descriptors and runtime tasks
as before, and the server has no connections left."""

import os
import threading

from support import Harness, Recorder, packets_mixin, wait_until

import peng3dnet
from peng3dnet import _core

CYCLES = 120
LEAVES = ("client close", "client stop", "server close_connection", "client close_connection")


class EchoServer(peng3dnet.Server):
    _reg_packets_test = packets_mixin("test:echo")


class EchoClient(peng3dnet.Client):
    _reg_packets_test = packets_mixin("test:echo", cls=Recorder)


def resources():
    return {
        "python threads": threading.active_count(),
        "os threads": len(os.listdir("/proc/self/task")),
        "file descriptors": len(os.listdir("/proc/self/fd")),
        "runtime tasks": _core.runtime_tasks(),
    }


def not_above(now, before):
    return all(now[key] <= before[key] for key in before)


def cycle(net, server, leave):
    client = net.client(server, EchoClient)
    net.clients.remove(client)  # this test ends every client itself
    client.send_message("test:echo", {"leave": leave})
    assert wait_until(lambda: client.test_packets["test:echo"].received, timeout=10)
    if leave == "client close":
        client.close("bye")
    elif leave == "client stop":
        client.stop()
    elif leave == "server close_connection":
        (cid,) = server.clients
        server.close_connection(cid, "go away")
        client.wait_for_close(10)
    else:
        client.close_connection(reason="bye")
        client.wait_for_close(10)
    client.join(10)
    assert not any(t.is_alive() for t in (client._run_thread, client._process_thread) if t is not None)
    assert wait_until(lambda: not server.clients, timeout=10)


def test_connect_disconnect_cycles_leak_nothing():
    net = Harness()
    try:
        server = net.server(EchoServer)
        for leave in LEAVES:  # warm up: the runtime, lazily built pools
            cycle(net, server, leave)
        assert wait_until(lambda: server._core.connection_count == 0, timeout=10)
        before = resources()
        for i in range(CYCLES):
            cycle(net, server, LEAVES[i % len(LEAVES)])
        # Lingering closes end within the linger time; give them that long.
        assert wait_until(lambda: server._core.connection_count == 0, timeout=10)
        # (Idle threads of the runtime's blocking pool may also have exited meanwhile.)
        assert wait_until(lambda: not_above(resources(), before), timeout=10), (before, resources())
    finally:
        net.close()
