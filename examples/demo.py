"""peng3dnet-rs demo: a server and clients talking on loopback.

Starts a server on 127.0.0.1 (a free port) and three clients, then shows, in order:
chat lines relayed to everyone, request/response latency, a stream of small packets,
a large compressed packet, a hostile peer being cut off while the others carry on,
a shutdown whose reason reaches every client, and the same server class run by the
asyncio API over the in-process transport. Ends with a summary.

    ./run demo          (or: .venv/bin/python examples/demo.py)
"""

import asyncio
import os
import socket
import struct
import threading
import time

import peng3dnet
from peng3dnet.packet import Packet


class Chat(Packet):
    """Client -> server: a line; server -> every client: the line with its sender."""

    def receive(self, msg, cid=None):
        if cid is not None:
            sender = self.peer.clients[cid].nick
            for other in list(self.peer.clients):
                self.peer.send_message("demo:chat", {"from": sender, "text": msg["text"]}, other)
        else:
            self.peer.heard.append(f"<{msg['from']}> {msg['text']}")
            self.peer.changed()


class Echo(Packet):
    """Sent back unchanged by the server."""

    def receive(self, msg, cid=None):
        if cid is not None:
            self.peer.send_message("demo:echo", msg, cid)
        else:
            self.peer.echoes += 1
            self.peer.changed()


class Sink(Packet):
    """Counted by the server, never answered."""

    def receive(self, msg, cid=None):
        self.peer.sunk += 1
        self.peer.sunk_bytes += len(msg) if isinstance(msg, (bytes, str)) else 0


def register(peer):
    peer.register_packet("demo:chat", Chat(peer.registry, peer))
    peer.register_packet("demo:echo", Echo(peer.registry, peer))
    peer.register_packet("demo:sink", Sink(peer.registry, peer))


class Player(peng3dnet.ClientOnServer):
    def __init__(self, server, conn, addr, cid):
        super().__init__(server, conn, addr, cid)
        self.nick = f"client{cid}"

    def on_close(self, reason=None):
        self.server.closed.append((self.cid, reason))


class DemoServer(peng3dnet.Server):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sunk = 0
        self.sunk_bytes = 0
        self.closed = []

    _reg_packets_demo = register


class DemoClient(peng3dnet.Client):
    def __init__(self, nick, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.nick = nick
        self.heard = []
        self.echoes = 0
        self.close_reasons = []
        self._cond = threading.Condition()

    _reg_packets_demo = register

    def changed(self):
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, predicate, timeout=10):
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise peng3dnet.errors.TimedOutError("the demo server did not answer in time")

    def on_close(self, reason=None):
        self.close_reasons.append(reason)
        self.changed()


def section(title):
    print(f"\n== {title}")


def main():
    started = time.perf_counter()
    server = DemoServer(addr=("127.0.0.1", 0), clientcls=Player)
    server.runAsync()
    server.process_async()
    port = server.sock.getsockname()[1]
    print(
        f"peng3dnet-rs {peng3dnet.version.VERSION} (protocol {peng3dnet.PROTOVERSION}): "
        f"server listening on 127.0.0.1:{port}"
    )

    clients = []
    for nick in ("alice", "bob", "carol"):
        client = DemoClient(nick, addr=("127.0.0.1", port))
        client.runAsync()
        client.process_async()
        client.wait_for_connection(5)
        clients.append(client)
    for client, (_, player) in zip(clients, sorted(server.clients.items())):
        player.nick = client.nick
    alice, bob, carol = clients
    print(f"{len(clients)} clients connected and handshaken: {', '.join(c.nick for c in clients)}")

    section("chat: each line goes through the server to everyone")
    lines = [(alice, "hi all"), (bob, "hello alice"), (carol, "ready when you are")]
    for client, text in lines:
        client.send_message("demo:chat", {"text": text})
        for listener in clients:
            listener.wait_for(lambda listener=listener, text=text: any(text in h for h in listener.heard))
    for line in carol.heard:
        print(f"  carol sees {line}")

    section("latency: 2000 request/response round trips, one at a time")
    samples = []
    for _ in range(2000):
        before = bob.echoes
        t0 = time.perf_counter()
        bob.send_message("demo:echo", {"seq": before})
        bob.wait_for(lambda before=before: bob.echoes > before)
        samples.append(time.perf_counter() - t0)
    samples.sort()
    p50, p99 = samples[len(samples) // 2] * 1e6, samples[int(len(samples) * 0.99)] * 1e6
    print(f"  p50 {p50:.0f} us, p99 {p99:.0f} us, {len(samples) / sum(samples):,.0f} round trips/s")

    section("stream: 50000 small packets back to back")
    t0 = time.perf_counter()
    for _ in range(50_000):
        alice.send_message("demo:sink", "x")
    deadline = time.monotonic() + 20
    while server.sunk < 50_000 and time.monotonic() < deadline:
        time.sleep(0.001)
    stream_rate = 50_000 / (time.perf_counter() - t0)
    print(
        f"  all {server.sunk:,} packets handled by the server's Python handler: {stream_rate:,.0f} packets/s"
    )

    section("a large packet: 8 MB, compressed on the wire")
    big = "peng3dnet " * 800_000
    before = server.sunk
    t0 = time.perf_counter()
    carol.send_message("demo:sink", big)
    while server.sunk == before and time.monotonic() < deadline + 10:
        time.sleep(0.001)
    print(f"  {len(big) / 1e6:.0f} MB delivered in {(time.perf_counter() - t0) * 1000:.0f} ms")

    section("a hostile peer announces a 4 GiB packet")
    with socket.create_connection(("127.0.0.1", port)) as hostile:
        hostile.settimeout(5)
        hostile.sendall(struct.pack("!I", 2**32 - 1))
        data = b""
        try:
            while chunk := hostile.recv(65536):
                data += chunk
        except OSError:
            pass
    frames = _frames(data)
    reason = next((msg for pid, msg in frames if pid == 16), None)
    print(f"  the server closed it with: {reason}")
    alice.send_message("demo:chat", {"text": "still here?"})
    bob.wait_for(lambda: any("still here?" in h for h in bob.heard))
    print("  the honest clients did not notice: bob still hears alice")

    section("shutdown: the reason reaches every client")
    server.shutdown(join=True, timeout=5, reason="demo over")
    for client in clients:
        client.wait_for(lambda client=client: client.close_reasons)
        print(f"  {client.nick} was told: {client.close_reasons[0]}")
        client.stop()

    section("asyncio API, in-process: the same server class over memory:, no sockets")
    aio_p50, aio_rate, aio_reason = asyncio.run(_aio_in_process())
    print(f"  1000 round trips on the event loop: p50 {aio_p50:.0f} us")
    print(f"  20000 packets streamed to the server's handler: {aio_rate:,.0f} packets/s")
    print(f"  closed with: {aio_reason}")

    section("summary")
    print(f"  chat lines relayed:    {len(lines) + 1} x {len(clients)} clients")
    print(f"  round trips:           {len(samples):,} (p50 {p50:.0f} us, p99 {p99:.0f} us)")
    print(f"  streamed packets:      {server.sunk - 1:,} ({stream_rate:,.0f}/s)")
    print(f"  hostile peers cut off: 1 (reason sent: {reason})")
    told = sum(1 for c in clients if c.close_reasons == ["demo over"])
    print(f"  clean shutdown:        {told}/{len(clients)} clients got the reason")
    print(f"  asyncio, in-process:   p50 {aio_p50:.0f} us, {aio_rate:,.0f} packets/s")
    print(f"  total time:            {time.perf_counter() - started:.2f} s")


async def _aio_in_process():
    """The demo's server class run by the asyncio API on an in-process address, and an
    asyncio client that takes the echoes with ``recv()`` (its packet types have no
    handlers of their own)."""
    from peng3dnet import aio

    server = DemoServer(addr="memory:demo", clientcls=Player)
    async with aio.start_server(server=server):
        async with aio.connect("memory:demo", packets=["demo:chat", "demo:echo", "demo:sink"]) as client:
            samples = []
            for seq in range(1000):
                t0 = time.perf_counter()
                await client.send("demo:echo", {"seq": seq})
                await client.recv("demo:echo", timeout=5)
                samples.append(time.perf_counter() - t0)
            samples.sort()
            t0 = time.perf_counter()
            for _ in range(20_000):
                await client.send("demo:sink", "x")
            while server.sunk < 20_000:
                await asyncio.sleep(0.001)
            rate = 20_000 / (time.perf_counter() - t0)
            reason = await client.close("demo over")
    return samples[len(samples) // 2] * 1e6, rate, reason


def _frames(data):
    """(pid, msg) of each complete frame in ``data`` (for looking at raw bytes)."""
    from peng3dnet import _core

    codec = _core.FrameCodec()
    try:
        return [
            (pid, msg.get("reason") if isinstance(msg, dict) else msg) for pid, _, msg in codec.feed(data)
        ]
    except peng3dnet.errors.ProtocolError:
        return []


if __name__ == "__main__":
    os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")
    main()
