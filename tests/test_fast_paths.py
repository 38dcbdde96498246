"""The shortcuts taken for apps that run many clients in one process (issue: performance
as apps drive it) keep the documented behaviour: what each skips is shown to still
happen where an app could notice."""

import gc
import os
import socket
import struct
import sys
import threading
import time

import msgpack
import pytest
from support import Recorder, packets_mixin, wait_until

import peng3dnet
from peng3dnet.net._peer import _hook_names


class EchoServer(peng3dnet.Server):
    _reg_packets_test = packets_mixin("test:echo")


class EchoClient(peng3dnet.Client):
    _reg_packets_test = packets_mixin("test:echo", cls=Recorder)


def _client_threads():
    return [t for t in threading.enumerate() if t.name == "peng3dnet Client Thread"]


def test_started_clients_hold_no_thread_and_still_work(net):
    server = net.server(EchoServer)
    before = len(threading.enumerate())
    clients = [net.client(server, EchoClient, process=False) for _ in range(20)]
    assert len(threading.enumerate()) == before
    assert _client_threads() == []
    for client in clients:
        client.send_message("test:echo", "hi")
    assert wait_until(lambda: all(c.process() or c.test_packets["test:echo"].received for c in clients))
    clients[1].join(5)  # no thread to wait for: returns after stop()
    # runBlocking still connects and blocks until stop(), in whatever thread calls it.
    blocking = EchoClient(addr=net.address(server))
    net.clients.append(blocking)
    done = threading.Event()
    runner = threading.Thread(target=lambda: (blocking.runBlocking(), done.set()), daemon=True)
    runner.start()
    blocking.wait_for_connection(5)
    assert not done.wait(0.2)
    blocking.stop()
    assert done.wait(5)


def test_process_without_work_returns_zero_but_clears_an_interrupt(net):
    server = net.server(EchoServer)
    client = net.client(server, EchoClient, process=False)
    while client.process():
        pass
    assert client.process() == 0
    # interrupt() wakes the next wait once, whether or not a process() came between.
    client.interrupt()
    assert client.process() == 0
    started = time.monotonic()
    client.process(wait=True, timeout=0.3)
    assert time.monotonic() - started >= 0.25


class _Hooked(peng3dnet.Client):
    def __init__(self, calls, **kwargs):
        self.calls = calls
        super().__init__(**kwargs)

    def _reg_packets_b(self):
        self.calls.append("b")

    def _reg_packets_a(self):
        self.calls.append("a")


def test_registration_hooks_run_in_dir_order_including_late_and_own_ones():
    calls = []
    _Hooked(calls).initialize()
    assert calls == ["a", "b"]
    # A hook added to the class after its first instance is found too.
    _Hooked._reg_packets_c = lambda self: self.calls.append("c")
    try:
        calls.clear()
        _Hooked(calls).initialize()
        assert calls == ["a", "b", "c"]
        # And one set on the object itself, in dir() order with the others.
        calls.clear()
        client = _Hooked(calls)
        client._reg_packets_ab = lambda: calls.append("ab")
        client.initialize()
        assert calls == ["a", "ab", "b", "c"]
        assert _hook_names(client, "_reg_packets_") == [
            name for name in dir(client) if name.startswith("_reg_packets_")
        ]
    finally:
        del _Hooked._reg_packets_c


def test_the_registry_takes_the_servers_ids_and_next_id(net):
    class Extra(EchoServer):
        def _reg_packets_extra(self):
            self.register_packet("test:late", Recorder(self.registry, self), 300)

    class ExtraClient(EchoClient):
        def _reg_packets_extra(self):
            self.register_packet("test:late", Recorder(self.registry, self))

    server = net.server(Extra)
    client = net.client(server, ExtraClient)
    assert client.registry.getID("test:late") == 300
    assert client.registry.nextid == 301  # after the highest id, as the rebuilt maps set it
    assert client.registry.getID("test:echo") == server.registry.getID("test:echo")


def test_a_refused_connect_raises_at_once():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        client = EchoClient(addr=("127.0.0.1", port))
        with pytest.raises(ConnectionRefusedError):
            client.runAsync()


def test_a_thread_sending_large_messages_lets_other_threads_run(net):
    # A server thread that streams large blobs (a map, a world state) must not keep the
    # app's other threads (its process thread answering requests) from the GIL: the
    # copy into the frame and the write of a large frame happen with the GIL released.
    # The switch interval is raised so that a sender that kept the GIL would show as
    # waits of 100 ms in a thread that wakes up every millisecond.
    blob = bytes(range(256)) * 1024  # 256 KiB
    cfg = {"net.compress.enabled": False}
    server = net.server(EchoServer, cfg=cfg)
    net.client(server, EchoClient, cfg=cfg)
    (cid,) = server.clients
    waits, stop = [], threading.Event()

    def waking_thread():
        while not stop.is_set():
            asleep = time.perf_counter()
            time.sleep(0.001)
            waits.append(time.perf_counter() - asleep - 0.001)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.1)
    try:
        waker = threading.Thread(target=waking_thread)
        waker.start()
        time.sleep(0.01)
        for _ in range(300):
            server.send_message("test:echo", blob, cid)
        stop.set()
        waker.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(waits) > 5
    assert max(waits) < 0.05, f"a thread waited {max(waits) * 1000:.0f} ms for the GIL"


class PlainServer(peng3dnet.Server):
    """Its packet has no send hooks: nothing asks for a copy of the frame."""

    _reg_packets_test = packets_mixin("test:echo", cls=peng3dnet.packet.Packet)


def _raw_client_that_never_reads(port):
    """A client socket that completes the classic handshake by hand, then reads nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    buf = bytearray()

    def next_pid():
        while len(buf) < 4 or len(buf) < 4 + struct.unpack_from("!I", buf)[0]:
            buf.extend(sock.recv(65536))
        (length,) = struct.unpack_from("!I", buf)
        (pid,) = struct.unpack_from("!I", buf, 4)
        del buf[: 4 + length]
        return pid

    def send(pid, msg):
        body = msgpack.packb(msg)
        sock.sendall(struct.pack("!IIH", len(body) + 6, pid, 0) + body)

    assert next_pid() == 1  # hello
    send(2, {"conntype": "classic"})
    assert next_pid() == 3  # the handshake with the registry
    send(4, {"success": True})
    return sock


@pytest.mark.parametrize("compress", [False, True])
def test_a_large_bytes_body_is_sent_from_the_object_itself(net, compress):
    # Sent uncompressed, the data of a large bytes object is written from the object's
    # own buffer, not copied into the frame: a frame waiting to be written holds the
    # object. (Random data is sent uncompressed with compression on too: it does not
    # look compressible.)
    server = net.server(PlainServer, cfg={"net.compress.enabled": compress})
    sock = _raw_client_that_never_reads(server.sock.getsockname()[1])
    try:
        assert wait_until(lambda: len(server.clients) == 1)
        (cid,) = server.clients
        blob = os.urandom(4 * 1024 * 1024)
        before = sys.getrefcount(blob)
        for _ in range(6):
            server.send_message("test:echo", {"before": 1, "data": blob, "after": [2, 3]}, cid)
        # At most a socket buffer's worth was written: most frames wait, each holding it.
        assert sys.getrefcount(blob) - before >= 4
        # A compressible body is compressed, from a copy: nothing holds the object.
        text = b"compressible " * 40_000
        held = sys.getrefcount(text)
        server.send_message("test:echo", {"data": text}, cid)
        assert sys.getrefcount(text) == held or not compress
    finally:
        sock.close()


@pytest.mark.parametrize("compress", [False, True])
def test_bodies_around_large_bytes_objects_arrive_whole(net, compress):
    # Every layout of a message with large bytes objects (sent in pieces where it can)
    # arrives as it was sent, compressed or not, with direct writes and queued ones.
    cfg = {"net.compress.enabled": compress}
    server = net.server(PlainServer, cfg=cfg)
    # Dispatched by this thread alone: with a process thread as well, two threads would
    # each run handlers of their own batch, and their order would be the scheduler's.
    client = net.client(server, EchoClient, cfg=cfg, process=False)
    (cid,) = server.clients
    noise = os.urandom(1024 * 1024)
    messages = [
        noise,
        {"a": 1, "data": noise, "z": "end"},
        [noise[: 64 * 1024], noise[: 64 * 1024 - 1], "x" * 10],
        {"first": noise, "second": noise[:300_000]},  # the second one is copied
        {"text": b"compressible " * 30_000, "n": 5},
        [b"z" * 70_000],
    ]
    for message in messages:
        server.send_message("test:echo", message, cid)
    received = client.test_packets["test:echo"].received
    assert wait_until(lambda: client.process() >= 0 and len(received) >= len(messages), timeout=10)
    assert [msg for msg, _ in received] == messages


class _Counting(peng3dnet.packet.Packet):
    """Counts what it receives and keeps none of it."""

    received = 0

    def receive(self, msg, cid=None):
        self.received += 1


class CountingClient(peng3dnet.Client):
    _reg_packets_test = packets_mixin("test:echo", cls=_Counting)


def _queued_at_idle_client(net, client_cls, msg, count):
    """A client that dispatches only when told, with ``count`` copies of ``msg`` from
    the server read and queued, none of them dispatched yet."""
    server = net.server(EchoServer)
    client = net.client(server, client_cls, process=False)
    while client.process():
        pass
    cid = next(iter(server.clients))
    before = client.stats()["packets_in"]
    for _ in range(count):
        server.send_message("test:echo", msg, cid)
    assert wait_until(lambda: client.stats()["packets_in"] >= before + count, 10)
    return client


def test_a_batch_is_decoded_packet_by_packet_as_it_is_dispatched(net):
    # Two thousand messages of nested containers, queued before one process() call
    # takes them: decoded all at once they would be alive together, and the cyclic GC
    # would run several times over them (each time finding all of them alive).
    msg = {"players": [{"id": i, "x": i * 1.5} for i in range(5)]}
    client = _queued_at_idle_client(net, CountingClient, msg, 2000)
    collections = []

    def count(phase, info):
        if phase == "start":
            collections.append(info["generation"])

    threshold = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    gc.callbacks.append(count)
    try:
        gc.collect()
        collections.clear()
        handled = client.process()
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*threshold)
    assert handled == 2000
    assert client.test_packets["test:echo"].received == 2000
    assert len(collections) <= 1, collections


def test_short_strings_of_a_batch_are_shared_between_its_messages(net):
    # Keys that repeat from message to message are decoded once per batch; keys whose
    # hashes meet in the cache are both kept (x and hp alternate in every player).
    keys = ["id", "x", "y", "hp", "name", "team", "score", "alive", "dx", "dy", "angle", "tick"]
    msg = {"players": [dict.fromkeys(keys, i) for i in range(4)]}
    client = _queued_at_idle_client(net, EchoClient, msg, 3)
    assert client.process() == 3
    received = [m for m, _ in client.test_packets["test:echo"].received]
    assert received == [msg] * 3
    first = list(received[0]["players"][0])
    for m in received:
        for player in m["players"]:
            assert all(a is b for a, b in zip(player, first)), "a key was decoded again"
