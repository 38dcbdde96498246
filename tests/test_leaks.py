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


def _heap_in_use():
    """Bytes the C heap has handed out (glibc's mallinfo2), or None elsewhere."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks")
        ]

    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return info.uordblks + info.hblkhd


def test_idle_connections_hold_no_read_buffer(net):
    """A connection waiting for its peer sets no read buffer aside (one would be
    64 KiB of heap per connection end: 6.5 GB for 50,000 connections)."""
    import pytest

    if _heap_in_use() is None:
        pytest.skip("needs glibc's mallinfo2")
    server = net.server(EchoServer)
    before = _heap_in_use()
    clients = [net.client(server, EchoClient, process=False, wait=False) for _ in range(200)]
    for client in clients:
        client.wait_for_connection(10)
    assert wait_until(lambda: len(server.clients) == 200, timeout=10)
    per_end = (_heap_in_use() - before) / 400  # both ends of each connection live here
    assert per_end < 24 * 1024, f"{per_end / 1024:.1f} KiB of heap per idle connection end"
