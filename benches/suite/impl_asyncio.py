"""The asyncio peer of the benchmark suite: asyncio streams on uvloop with peng3dnet's
framing, written the way a careful developer would (no per-message drain on the
server; handlers are plain functions getting decoded objects)."""

import asyncio
import threading
import time

import msgpack
import uvloop
from common import (
    BLOB,
    DONE,
    ECHO,
    ITEM,
    PREFIX,
    READY,
    UPDATE,
    WAVE,
    Clock,
    blob,
    frame,
    rtt_result,
    small_message,
    update_message,
)


async def _read(reader):
    (length,) = PREFIX.unpack(await reader.readexactly(4))
    rest = await reader.readexactly(length)
    return int.from_bytes(rest[:4], "big"), msgpack.unpackb(rest[6:])


def serve(params):
    started = threading.Event()
    box = {}

    def run():
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(_Server(params).handle, "127.0.0.1", 0))
        box["port"] = server.sockets[0].getsockname()[1]
        started.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    started.wait()
    return box["port"]


class _Server:
    def __init__(self, params):
        self.params = params
        self.items = 0
        self.ready = []

    async def handle(self, reader, writer):
        try:
            while True:
                kind, payload = await _read(reader)
                if kind in (ECHO, BLOB):
                    writer.write(frame(kind, payload))
                elif kind == ITEM:
                    self.items += 1
                    if self.items == self.params["count"]:
                        self.items = 0
                        writer.write(frame(DONE, self.params["count"]))
                elif kind == READY:
                    self.ready.append(writer)
                    if len(self.ready) == self.params["clients"]:
                        targets, self.ready = self.ready, []
                        await self.fan_out(targets)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def fan_out(self, targets):
        update = update_message(0)
        for tick in range(self.params["updates"]):
            update["tick"] = tick
            once = frame(UPDATE, update)
            for writer in targets:
                writer.write(once if self.params["mode"] == "broadcast" else frame(UPDATE, update))
            await asyncio.gather(*(writer.drain() for writer in targets))


def run_client(params):
    # The loop is left open: the conns scenario's connections stay up until the driver
    # has measured the server.
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop.run_until_complete(globals()["_scenario_" + params["scenario"]](params))


async def _connect(port):
    return await asyncio.open_connection("127.0.0.1", port)


async def _scenario_rtt(params):
    reader, writer = await _connect(params["port"])
    msg = small_message(0)
    for _ in range(params["warmup"]):
        writer.write(frame(ECHO, msg))
        await _read(reader)
    samples = []
    with Clock() as clock:
        for seq in range(params["count"]):
            msg["seq"] = seq
            started = time.perf_counter_ns()
            writer.write(frame(ECHO, msg))
            await _read(reader)
            samples.append(time.perf_counter_ns() - started)
    return rtt_result(samples, clock.seconds, clock.cpu)


async def _scenario_stream(params):
    reader, writer = await _connect(params["port"])
    msg = small_message(0)
    with Clock() as clock:
        for seq in range(params["count"]):
            msg["seq"] = seq
            writer.write(frame(ITEM, msg))
            if seq % 1000 == 999:
                await writer.drain()
        await _read(reader)
    return {"count": params["count"], "seconds": clock.seconds, "cpu": clock.cpu}


async def _scenario_big(params):
    reader, writer = await _connect(params["port"])
    seconds = {}
    for size in params["sizes"]:
        payload = blob(size)
        with Clock() as clock:
            writer.write(frame(BLOB, payload))
            await _read(reader)
        seconds[str(size)] = clock.seconds
    return {"seconds": seconds}


async def _scenario_fanout(params):
    streams = [await _connect(params["port"]) for _ in range(params["clients"])]
    for reader, writer in streams:  # every connection is up before the clock starts
        writer.write(frame(ECHO, None))
        await _read(reader)

    async def receive(reader):
        for _ in range(params["updates"]):
            await _read(reader)

    with Clock() as clock:
        for _, writer in streams:
            writer.write(frame(READY, None))
        await asyncio.wait_for(asyncio.gather(*(receive(r) for r, _ in streams)), params["timeout"])
    return {"clients": len(streams), "updates": params["updates"], "seconds": clock.seconds}


async def _scenario_conns(params):
    """Connections in waves of WAVE, each up with one echo round trip (the peers'
    stand-in for a handshake) before the next wave starts."""
    streams = []
    with Clock() as clock:
        while len(streams) < params["clients"]:
            count = min(WAVE, params["clients"] - len(streams))
            wave = await asyncio.gather(*(_connect(params["port"]) for _ in range(count)))
            for _, writer in wave:
                writer.write(frame(ECHO, None))
            await asyncio.gather(*(_read(reader) for reader, _ in wave))
            streams.extend(wave)
    _scenario_conns.keep = streams
    return {"clients": len(streams), "seconds": clock.seconds, "cpu": clock.cpu}
