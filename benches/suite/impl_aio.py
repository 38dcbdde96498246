"""peng3dnet-rs through its asyncio API (``peng3dnet.aio``) on uvloop.

The server is impl_peng's ``BenchServer`` (the same packet classes and handlers) run
by ``aio.start_server(server=...)`` instead of ``process_async()``: one packet set for
both APIs. The clients are written as asyncio apps would write them: packet types
registered by name, replies taken with ``await client.recv()``.
"""

import asyncio
import threading
import time

import impl_peng
import uvloop
from common import BLOB, DONE, ECHO, ITEM, NAMES, READY, UPDATE, Clock, blob, rtt_result, small_message

from peng3dnet import aio

PACKETS = [NAMES[kind] for kind in sorted(NAMES)]


def serve(params):
    started = threading.Event()
    box = {}

    async def main():
        server = await aio.start_server(server=impl_peng.BenchServer(params, addr=("127.0.0.1", 0)))
        box["port"] = server.address[1]
        started.set()
        await asyncio.Event().wait()  # serve until the process ends

    threading.Thread(target=lambda: uvloop.run(main()), daemon=True).start()
    started.wait()
    return box["port"]


def run_client(params):
    return uvloop.run(globals()["_scenario_" + params["scenario"]](params))


async def _connect(port):
    return await aio.connect(("127.0.0.1", port), packets=PACKETS, cfg=dict(impl_peng.CFG), timeout=60)


async def _scenario_rtt(params):
    client = await _connect(params["port"])
    msg = small_message(0)
    for _ in range(params["warmup"]):
        await client.send(NAMES[ECHO], msg)
        await client.recv(NAMES[ECHO])
    samples = []
    with Clock() as clock:
        for seq in range(params["count"]):
            msg["seq"] = seq
            started = time.perf_counter_ns()
            await client.send(NAMES[ECHO], msg)
            await client.recv(NAMES[ECHO])
            samples.append(time.perf_counter_ns() - started)
    return rtt_result(samples, clock.seconds, clock.cpu)


async def _scenario_stream(params):
    client = await _connect(params["port"])
    msg = small_message(0)
    with Clock() as clock:
        for seq in range(params["count"]):
            msg["seq"] = seq
            await client.send(NAMES[ITEM], msg)
        await client.recv(NAMES[DONE], timeout=params["timeout"])
    return {"count": params["count"], "seconds": clock.seconds, "cpu": clock.cpu}


async def _scenario_big(params):
    client = await _connect(params["port"])
    seconds = {}
    for size in params["sizes"]:
        payload = blob(size)
        with Clock() as clock:
            await client.send(NAMES[BLOB], payload)
            await client.recv(NAMES[BLOB], timeout=params["timeout"])
        seconds[str(size)] = clock.seconds
        if clock.seconds > params["give_up_after"]:
            break
    return {"seconds": seconds}


async def _scenario_fanout(params):
    clients = [await _connect(params["port"]) for _ in range(params["clients"])]

    async def take_all(client):
        for _ in range(params["updates"]):
            await client.recv(NAMES[UPDATE], timeout=params["timeout"])

    with Clock() as clock:
        for client in clients:
            await client.send(NAMES[READY], None)
        await asyncio.gather(*(take_all(client) for client in clients))
    return {"clients": len(clients), "updates": params["updates"], "seconds": clock.seconds}
