"""The asyncio API (an addition): ``peng3dnet.aio`` servers and clients, over TCP and
the in-process transport, with threaded peers and with the original library."""

import asyncio
import itertools
import logging
import os
import threading

import pytest
from support import Harness, Recorder, RemoteServer, packets_mixin, run_remote_clients, wait_until

import peng3dnet
from peng3dnet import aio, errors
from peng3dnet.packet import Packet, SmartPacket

_names = itertools.count(1)


def run(coro, timeout=30, loop_factory=None):
    """Run ``coro`` on a new event loop, failing after ``timeout`` seconds."""

    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    if loop_factory is None:
        return asyncio.run(bounded())
    loop = loop_factory()
    try:
        return loop.run_until_complete(bounded())
    finally:
        loop.close()


async def until(predicate, timeout=5.0):
    """Poll ``predicate`` without blocking the loop; returns its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate() and loop.time() < deadline:
        await asyncio.sleep(0.005)
    return bool(predicate())


async def first_client(server):
    """The cid of the server's first client, once the server has dispatched its
    connection (a client's handshake completes before the server's Python side runs)."""
    assert await until(lambda: server.clients), "no client connected"
    return next(iter(server.clients))


@pytest.fixture(params=["tcp", "memory"])
def addr(request):
    """Where a test server listens: loopback with a free port, or a fresh in-process name."""
    if request.param == "memory":
        return f"memory:test-aio-{os.getpid()}-{next(_names)}"
    return ("127.0.0.1", 0)


def reachable(server):
    """The address a client uses to reach ``server`` (an AioServer)."""
    return server.address


class AsyncEcho(Packet):
    """Echoes on the server from an async handler, recording the thread it ran on."""

    threads = []

    async def receive(self, msg, cid=None):
        AsyncEcho.threads.append(threading.get_ident())
        if cid is not None:
            await asyncio.sleep(0)
            await self.peer.aio.send(self, msg, cid)


def test_round_trip_both_ways_and_close_reason(addr):
    async def main():
        closed = []
        async with aio.start_server(
            addr, packets=["t:msg"], on_close=lambda cid, reason: closed.append((cid, reason))
        ) as server:
            client = await aio.connect(reachable(server), packets=["t:msg"])
            await client.send("t:msg", {"from": "client", "tuple": (1, 2)})
            cid, name, msg = await server.recv(timeout=5)
            assert (name, msg) == ("t:msg", {"from": "client", "tuple": [1, 2]})
            await server.send("t:msg", {"from": "server"}, cid)
            assert await client.recv(timeout=5) == ("t:msg", {"from": "server"})
            assert await client.close("bye") == "bye"
            assert client.closed and client.close_reason == "bye"
            # The client is done once its close packet is out; the server reads it soon.
            assert await until(lambda: closed)
        assert closed == [(cid, "bye")]

    run(main())


def test_handlers_run_on_the_loop_thread_and_may_be_async(addr):
    AsyncEcho.threads = []

    async def main():
        async with aio.start_server(addr, packets={"t:echo": AsyncEcho}) as server:
            async with aio.connect(reachable(server), packets=["t:echo"]) as client:
                for n in range(20):
                    await client.send("t:echo", n)
                got = [await client.recv("t:echo", timeout=5) for _ in range(20)]
                assert [msg for _, msg in got] == list(range(20))
        return threading.get_ident()

    loop_thread = run(main())
    assert AsyncEcho.threads and set(AsyncEcho.threads) == {loop_thread}


def test_messages_iterates_until_the_server_shuts_down(addr):
    async def main():
        server = await aio.start_server(addr, packets=["t:msg"])
        client = await aio.connect(reachable(server), packets=["t:msg"])
        cid = await first_client(server)
        for n in range(100):
            await server.send("t:msg", n, cid)
        got = []

        async def read_all():
            async for name, msg in client.messages():
                got.append((name, msg))

        reader = asyncio.ensure_future(read_all())
        while len(got) < 100:
            await asyncio.sleep(0.01)
        await server.shutdown("closing time")
        await asyncio.wait_for(reader, 5)
        assert got == [("t:msg", n) for n in range(100)]
        assert await client.wait_closed() == "closing time"
        with pytest.raises(errors.ConnectionClosedError):
            await client.recv(timeout=1)
        with pytest.raises(errors.ConnectionClosedError):
            await client.send("t:msg", 1)

    run(main())


def test_recv_back_pressure_loses_nothing(addr):
    async def main():
        cfg = {"net.aio.recv_buffer": 10, "net.limits.inbox": 4096}
        async with aio.start_server(addr, packets=["t:msg"]) as server:
            async with aio.connect(reachable(server), packets=["t:msg"], cfg=cfg) as client:
                cid = await first_client(server)
                for n in range(3000):
                    await server.send("t:msg", {"n": n, "pad": "x" * 100}, cid)
                await asyncio.sleep(0.3)  # the client reads nothing meanwhile
                # The client stopped taking messages near its limit instead of growing:
                # at most its limit, plus what its core had waiting (the inbox limit,
                # plus one 64 KiB read of ~120-byte packets) when it paused.
                waiting = len(client._queue._items)
                assert 10 <= waiting <= 10 + (4096 + 64 * 1024) // 100, waiting
                got = [await client.recv(timeout=5) for _ in range(3000)]
                assert [msg["n"] for _, msg in got] == list(range(3000))

    run(main())


def test_send_waits_while_the_peer_does_not_read():
    """A threaded client that never processes: its core stops reading once its inbox
    is full, the kernel buffers fill, and the server's queue reaches the write buffer."""
    received = []

    class Slow(peng3dnet.Client):
        _reg_packets_test = packets_mixin("t:big", cls=Recorder)

    async def main():
        cfg = {"net.aio.write_buffer": 256 * 1024, "net.compress.enabled": False}
        async with aio.start_server(("127.0.0.1", 0), packets=["t:big"], cfg=cfg) as server:
            port = server.address[1]
            client = harness.client(
                port, Slow, process=False, cfg={"net.limits.inbox": 64 * 1024, "net.compress.enabled": False}
            )
            cid = await first_client(server)
            conn = server.clients[cid].conn
            chunk = os.urandom(64 * 1024)
            sent = 0
            blocked = False
            peak = 0
            while sent < 400:
                try:
                    await asyncio.wait_for(server.send("t:big", chunk, cid), 0.5)
                except asyncio.TimeoutError:
                    blocked = True
                    break
                sent += 1
                peak = max(peak, conn.queued_bytes)
            assert blocked, "send never waited although the client read nothing"
            assert peak <= 256 * 1024 + 2 * len(chunk) + 64
            # Now the client reads: everything sent arrives, in order, none lost.
            client.process_async()
            for _ in range(50):
                await server.send("t:big", chunk, cid)
            total = sent + 50
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: wait_until(lambda: len(client.test_packets["t:big"].received) >= total, 20)
            )
            received.extend(client.test_packets["t:big"].received)
            return total

    harness = Harness()
    try:
        total = run(main(), timeout=60)
    finally:
        harness.close()
    assert len(received) == total and all(msg == received[0][0] for msg, _ in received)


def test_timeouts_and_refusals():
    async def main():
        with pytest.raises(ConnectionRefusedError):
            await aio.connect(f"memory:test-aio-nobody-{os.getpid()}")
        with pytest.raises(ConnectionRefusedError):
            await aio.connect(("127.0.0.1", 1))
        async with aio.start_server(("127.0.0.1", 0), packets=["t:msg"]) as server:
            async with aio.connect(server.address, packets=["t:msg"]) as client:
                with pytest.raises(errors.TimedOutError, match=r"within 0\.1 seconds"):
                    await client.recv(timeout=0.1)
                with pytest.raises(errors.TimedOutError):
                    await server.recv(timeout=0.05)
                with pytest.raises(KeyError, match="no connected client"):
                    await server.send("t:msg", 1, 12345)

    run(main())


def test_registry_mismatch_fails_the_connect():
    async def main():
        async with aio.start_server(("127.0.0.1", 0), packets=["t:a"]) as server:
            with pytest.raises(errors.ConnectionClosedError) as raised:
                await aio.connect(server.address, packets=["t:a", "t:only-here"])
            assert raised.value.reason == "packetregmismatch"

    run(main())


def test_bad_packet_specs():
    async def main():
        with pytest.raises(TypeError, match="Packet subclass"):
            await aio.start_server(("127.0.0.1", 0), packets={"t:a": 42})
        with pytest.raises(TypeError, match="not the string"):
            await aio.start_server(("127.0.0.1", 0), packets="t:a")

    run(main())


def test_async_receive_on_a_threaded_peer_is_a_clear_error(net, caplog):
    class AsyncOnThreads(peng3dnet.Server):
        def _reg_packets_test(self):
            self.register_packet("t:echo", AsyncEcho(self.registry, self))

    class Plain(peng3dnet.Client):
        _reg_packets_test = packets_mixin("t:echo", cls=Recorder)

    server = net.server(AsyncOnThreads)
    client = net.client(server, Plain)
    with caplog.at_level(logging.ERROR, logger="peng3dnet"):
        client.send_message("t:echo", 1)
        assert wait_until(lambda: "async handlers run only" in caplog.text, 5)


def test_failing_async_handler_is_logged_and_processing_goes_on(caplog):
    class Flaky(Packet):
        async def receive(self, msg, cid=None):
            if msg == "boom":
                raise ValueError("boom")
            await self.peer.aio.send(self, msg, cid)

    async def main():
        async with aio.start_server(("127.0.0.1", 0), packets={"t:f": Flaky}) as server:
            async with aio.connect(server.address, packets=["t:f"]) as client:
                await client.send("t:f", "boom")
                await client.send("t:f", "fine")
                assert await client.recv(timeout=5) == ("t:f", "fine")

    with caplog.at_level(logging.ERROR, logger="peng3dnet.aio"):
        run(main())
    assert "an async handler raised" in caplog.text and "ValueError: boom" in caplog.text


def test_smartpacket_conditions_apply_to_recv():
    class ServerOnly(SmartPacket):
        side = peng3dnet.SIDE_SERVER  # only the server may receive it

    class ClientOnly(SmartPacket):
        side = peng3dnet.SIDE_CLIENT  # only the client may receive it

    async def main():
        server_packets = {"t:s": ServerOnly, "t:c": ClientOnly, "t:m": None}
        async with aio.start_server(("127.0.0.1", 0), packets=server_packets) as server:
            # The client registers "t:c" as a plain packet, so its sender-side check
            # lets it through: the server must drop it on receipt, not keep it for recv.
            client_packets = {"t:s": ServerOnly, "t:c": None, "t:m": None}
            async with aio.connect(server.address, packets=client_packets) as client:
                cid = await first_client(server)
                await client.send("t:s", "to the server")
                assert await server.recv(timeout=5) == (cid, "t:s", "to the server")
                await client.send("t:c", "not for the server")
                await client.send("t:m", "after it")
                assert await server.recv(timeout=5) == (cid, "t:m", "after it")

    run(main())


# --- interoperation -----------------------------------------------------------------------


class ThreadedEchoServer(peng3dnet.Server):
    _reg_packets_test = packets_mixin("test:echo", "test:other")


class ThreadedClient(peng3dnet.Client):
    _reg_packets_test = packets_mixin("test:echo", "test:other", cls=Recorder)


def test_threaded_client_on_an_aio_server(addr):
    harness = Harness("memory" if isinstance(addr, str) else "tcp")

    class Echo(Packet):
        def receive(self, msg, cid=None):
            self.peer.send_message(self, msg, cid)

    async def main():
        async with aio.start_server(addr, packets={"test:echo": Echo, "test:other": None}) as server:

            def threaded():
                client = harness.client(0, ThreadedClient, wait=False, addr=server.address)
                client.wait_for_connection(5)
                client.send_message("test:echo", {"n": 1})
                client.send_message("test:other", "kept")
                assert wait_until(lambda: client.test_packets["test:echo"].received, 5)
                return client.test_packets["test:echo"].received

            echoed = await asyncio.get_running_loop().run_in_executor(None, threaded)
            assert echoed == [({"n": 1}, None)]
            _, name, msg = await server.recv(timeout=5)
            assert (name, msg) == ("test:other", "kept")

    try:
        run(main())
    finally:
        harness.close()


def test_aio_client_on_a_threaded_server(addr):
    harness = Harness("memory" if isinstance(addr, str) else "tcp")
    server = harness.server(ThreadedEchoServer, addr=addr)

    async def main():
        address = server.addr if isinstance(addr, str) else ("127.0.0.1", server.sock.getsockname()[1])
        async with aio.connect(address, packets=["test:echo", "test:other"]) as client:
            await client.send("test:echo", [1, "two", None])
            assert await client.recv(timeout=5) == ("test:echo", [1, "two", None])

    try:
        run(main())
    finally:
        harness.close()


def test_aio_client_on_the_reference_server(ref_python, tmp_path):
    remote = RemoteServer(ref_python, tmp_path, ["test:echo", "test:other"])
    try:

        async def main():
            async with aio.connect(("127.0.0.1", remote.port), packets=["test:echo", "test:other"]) as client:
                # One at a time: the original hangs on small packets streamed back to
                # back (its known bug 1).
                for n in range(20):
                    await client.send("test:echo", {"n": n, "blob": b"\x00" * n})
                    assert await client.recv(timeout=10) == ("test:echo", {"n": n, "blob": b"\x00" * n})
                await client.close("aio says bye")

        run(main())
        report = remote.wait_report(lambda r: r["closed"])
        assert [reason for _, reason in report["closed"]] == ["aio says bye"]
    finally:
        remote.close()


def test_reference_clients_on_an_aio_server(ref_python, tmp_path):
    class Echo(Packet):
        def receive(self, msg, cid=None):
            self.peer.send_message(self, msg, cid)

    async def main():
        async with aio.start_server(
            ("127.0.0.1", 0), packets={"test:echo": Echo, "test:other": None}
        ) as server:
            actions = [("echo", "test:echo", {"hello": "aio"}), ("send", "test:other", 7), ("close", "done")]
            reports = await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: run_remote_clients(
                    ref_python, tmp_path, server.address[1], ["test:echo", "test:other"], actions, clients=3
                ),
            )
            kept = [await server.recv("test:other", timeout=5) for _ in range(3)]
            return reports, kept

    reports, kept = run(main(), timeout=60)
    assert all(r["error"] is None and r["received"]["test:echo"] == [{"hello": "aio"}] for r in reports)
    assert sorted(msg for _, _, msg in kept) == [7, 7, 7]


# --- loops ------------------------------------------------------------------------------


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_loop_shutdown_leaves_no_tasks_or_sockets():
    from peng3dnet import _core

    async def leave_everything_open():
        server = await aio.start_server(("127.0.0.1", 0), packets=["t:m"])
        clients = [await aio.connect(server.address, packets=["t:m"]) for _ in range(5)]
        for client in clients:
            await client.send("t:m", "hello")
        await asyncio.sleep(0.05)
        # Returning without closing anything: asyncio.run cancels our tasks.

    run(leave_everything_open())  # warm up the runtime threads and the executor
    before_fds = _open_fds()
    before_tasks = _core.runtime_tasks()
    run(leave_everything_open())
    assert wait_until(lambda: _core.runtime_tasks() <= before_tasks, 5), _core.runtime_tasks()
    assert wait_until(lambda: _open_fds() <= before_fds, 5), (before_fds, _open_fds())


def test_cancelling_a_waiting_recv_and_send_is_clean():
    async def main():
        async with aio.start_server(("127.0.0.1", 0), packets=["t:m"]) as server:
            async with aio.connect(server.address, packets=["t:m"]) as client:
                waiting = asyncio.ensure_future(client.recv())
                await asyncio.sleep(0.05)
                waiting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiting
                assert not client._queue._getters
                await server.send("t:m", "after", await first_client(server))
                assert await client.recv(timeout=5) == ("t:m", "after")

    run(main())


def test_under_uvloop(addr):
    uvloop = pytest.importorskip("uvloop")

    async def main():
        async with aio.start_server(addr, packets={"t:echo": AsyncEcho}) as server:
            async with aio.connect(reachable(server), packets=["t:echo"]) as client:
                for n in range(100):
                    await client.send("t:echo", n)
                got = [msg for _, msg in [await client.recv(timeout=5) for _ in range(100)]]
                assert got == list(range(100))
        return type(asyncio.get_running_loop()).__module__

    assert run(main(), loop_factory=uvloop.new_event_loop).startswith("uvloop")


def test_loops_that_cannot_watch_sockets_await_the_core(monkeypatch):
    """Where a loop has no add_reader (Windows' proactor loop), the dispatch task awaits
    the core through pyo3-async-runtimes instead of the wake-up socket."""
    monkeypatch.setattr(aio._AioPeer, "_watch_wakeup", lambda self: None)

    async def main():
        async with aio.start_server(("127.0.0.1", 0), packets={"t:echo": AsyncEcho}) as server:
            async with aio.connect(server.address, packets=["t:echo"]) as client:
                for n in range(50):
                    await client.send("t:echo", n)
                    assert await client.recv(timeout=5) == ("t:echo", n)

    run(main())


def _free_direct_reader_places(needed, timeout=10):
    """Only the process's first few plain TCP connections are read by their waiting
    thread or loop; wait until earlier tests' connections have given theirs back."""
    assert wait_until(lambda: _core_direct_readers()[0] + needed <= _core_direct_readers()[1], timeout)


def _core_direct_readers():
    from peng3dnet import _core

    return _core.direct_readers()


class _PlainClient(peng3dnet.Client):
    _reg_packets_test = packets_mixin("t:echo", cls=Packet)


@pytest.mark.parametrize("threaded_client", [False, True], ids=["aio-client", "threaded-client"])
def test_waiting_loops_and_threads_read_their_sockets_themselves(threaded_client):
    """While waiting for events, an event loop (and a thread in process()) reads the
    socket itself; the round trips come back whole and in order either way."""
    _free_direct_reader_places(2)

    async def main():
        async with aio.start_server(("127.0.0.1", 0), packets={"t:echo": AsyncEcho}) as server:
            if threaded_client:
                client = _PlainClient(addr=server.address)
                client.runAsync()
                client.process_async()
                client.wait_for_connection(10)
                try:
                    for n in range(30):
                        client.send_message("t:echo", {"n": n, "pad": "x" * (n * 300)})
                        _, msg = await asyncio.to_thread(client.recv, "t:echo", 5)
                        assert msg == {"n": n, "pad": "x" * (n * 300)}
                    stats = client.stats()
                finally:
                    client.stop()
            else:
                async with aio.connect(server.address, packets=["t:echo"]) as client:
                    for n in range(30):
                        await client.send("t:echo", {"n": n, "pad": "x" * (n * 300)})
                        _, msg = await client.recv("t:echo", timeout=5)
                        assert msg == {"n": n, "pad": "x" * (n * 300)}
                    stats = client.peer.stats()
            server_stats = server.peer.stats()
        return stats, server_stats

    stats, server_stats = run(main())
    # Network threads may win a race for the data now and then, not every time.
    assert stats["direct_reads"] > 0, stats
    assert server_stats["direct_reads"] > 0, server_stats
