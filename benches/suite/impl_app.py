"""The peng3dnet peer of the suite driven the way a peng3d app drives the library (runs
on ours and on the original, whichever the interpreter has).

Where ``impl_peng`` measures with the thread that dispatches, this one follows app code:

- handlers are ``SmartPacket`` subclasses (their state and side checks run per packet);
- the server runs ``runAsync()`` + ``process_async()`` and handles in its process thread;
  its fan-out is a Python loop of ``send_message`` over ``server.clients``;
- a single client also runs ``runAsync()`` + ``process_async()``; the main thread sends
  and waits for its handler to signal the reply;
- many clients in one process are started in waves of 100 (``Client(...)``,
  ``runAsync()``, ``wait_for_connection``) and one pump thread calls ``process()`` on
  each of them in turn, sleeping 0.5 ms when none had anything to do. The connect
  scenario times all of it, client start-up included.
"""

import threading
import time

import impl_peng
from common import (
    BLOB,
    DONE,
    ECHO,
    ITEM,
    NAMES,
    READY,
    UPDATE,
    WAVE,
    Clock,
    measure_big,
    measure_rtt,
    measure_stream,
    update_message,
)

from peng3dnet.constants import SIDE_CLIENT, SIDE_SERVER
from peng3dnet.packet import SmartPacket


def _packet_class(kind, side):
    short = NAMES[kind].split(":")[1]

    class Handler(SmartPacket):
        def receive(self, msg, cid=None):
            getattr(self.peer, "on_" + short)(msg, cid)

    Handler.side = side
    Handler.__name__ = Handler.__qualname__ = f"{short.capitalize()}Packet"
    return Handler


# What the server handles is a server-side packet; what the client handles, a client-side
# one; echo and blob go both ways (no side condition).
SERVER_BOUND = {ITEM, READY}
CLIENT_BOUND = {UPDATE, DONE}
PACKETS = {
    kind: _packet_class(
        kind, SIDE_SERVER if kind in SERVER_BOUND else SIDE_CLIENT if kind in CLIENT_BOUND else None
    )
    for kind in NAMES
}


def _reg_packets_bench(self):
    for kind in sorted(NAMES):
        self.register_packet(NAMES[kind], PACKETS[kind](self.registry, self))


class AppServer(impl_peng.BenchServer):
    """The suite's server with SmartPacket handlers, fanning out over ``server.clients``."""

    _reg_packets_bench = _reg_packets_bench

    def on_ready(self, msg, cid):
        self.ready.add(cid)
        if len(self.ready) < self.params["clients"]:
            return
        self.ready = set()
        update = update_message(0)
        for tick in range(self.params["updates"]):
            update["tick"] = tick
            if self.params["mode"] == "broadcast":
                self.broadcast(NAMES[UPDATE], update)
            else:
                for cid in list(self.clients):
                    self.send_message(NAMES[UPDATE], update, cid)


def serve(params):
    return impl_peng.serve(params, AppServer)


class AppClient(impl_peng.BenchClient):
    """The suite's client with SmartPacket handlers; its handler signals each reply."""

    _reg_packets_bench = _reg_packets_bench

    def __init__(self, **kwargs):
        self.reply = threading.Event()
        super().__init__(**kwargs)

    def on_echo(self, msg, cid):
        super().on_echo(msg, cid)
        self.reply.set()

    on_blob = on_done = on_echo


def run_client(params):
    return globals()["_scenario_" + params["scenario"]](params)


def _single_client(port):
    client = AppClient(addr=("127.0.0.1", port))
    client.runAsync()
    client.process_async()
    client.wait_for_connection(30)
    return client


def _request(client, name, timeout=300):
    """Send from this thread; the process thread's handler signals the reply."""

    def round_trip(msg):
        client.reply.clear()
        client.send_message(name, msg)
        if not client.reply.wait(timeout):
            raise TimeoutError(f"no reply within {timeout} s")

    return round_trip


def _scenario_rtt(params):
    return measure_rtt(params, _request(_single_client(params["port"]), NAMES[ECHO]))


def _scenario_big(params):
    client = _single_client(params["port"])
    return measure_big(params, _request(client, NAMES[BLOB], params["timeout"]))


def _scenario_stream(params):
    client = _single_client(params["port"])

    def await_done():
        if not client.reply.wait(params["timeout"]):
            raise TimeoutError("the server did not confirm the stream")

    return measure_stream(params, lambda msg: client.send_message(NAMES[ITEM], msg), await_done)


class Pump:
    """One thread that calls ``process()`` on every client in turn."""

    def __init__(self):
        self.clients = []
        self.running = True
        self.thread = threading.Thread(target=self._run, name="pump", daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            busy = 0
            for client in list(self.clients):
                busy += client.process()
            if not busy:
                time.sleep(0.0005)


def _start_clients(port, count, pump, all_updates=None):
    """``count`` clients started in waves of WAVE, each wave connected before the next."""
    clients = []
    while len(clients) < count:
        wave = []
        for _ in range(min(WAVE, count - len(clients))):
            client = AppClient(addr=("127.0.0.1", port))
            client.all_updates = all_updates
            client.runAsync()
            wave.append(client)
        pump.clients.extend(wave)
        for client in wave:
            client.wait_for_connection(120)
        clients.extend(wave)
    return clients


def _scenario_fanout(params):
    pump = Pump()
    clients = _start_clients(params["port"], params["clients"], pump, params["updates"])
    with Clock() as clock:
        for client in clients:
            client.send_message(NAMES[READY], None)
        for client in clients:
            if not client.done.wait(params["timeout"]):
                raise TimeoutError(f"a client got {client.updates} of {params['updates']} updates")
    return {"clients": len(clients), "updates": params["updates"], "seconds": clock.seconds}


def _scenario_conns(params):
    pump = Pump()
    with Clock() as clock:
        clients = _start_clients(params["port"], params["clients"], pump)
    _scenario_conns.keep = clients  # connected until the driver has measured the server
    return {"clients": len(clients), "seconds": clock.seconds, "cpu": clock.cpu}
