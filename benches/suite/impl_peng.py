"""The peng3dnet peer of the benchmark suite, written against the documented API so that
it runs unchanged on peng3dnet-rs and on the original (whichever the interpreter has).

Handlers are ``Packet.receive`` methods, as apps write them. Clients dispatch in the
thread that measures (``process(wait=True)``) where one connection is measured, and with
``process_async()`` where many are.
"""

import threading
import time

from common import (
    BLOB,
    DONE,
    ECHO,
    ITEM,
    NAMES,
    READY,
    UPDATE,
    Clock,
    measure_big,
    measure_rtt,
    measure_stream,
    update_message,
)

import peng3dnet
from peng3dnet.constants import STATE_ACTIVE, STATE_CLOSED
from peng3dnet.packet import Packet

OURS = hasattr(peng3dnet, "_core")

# Where clients connect; impl_memory points this at an in-process server instead.
SERVER_ADDRESS = None


def _address(port):
    return SERVER_ADDRESS or ("127.0.0.1", port)


# Room for the 64 MiB payloads of the "big" scenario (the original has no limits).
CFG = {"net.limits.max_frame": 1 << 30, "net.limits.max_inflated": 1 << 30}


class Handler(Packet):
    """Calls ``peer.on_<kind>(msg, cid)``."""

    def __init__(self, reg, peer, method):
        super().__init__(reg, peer)
        self.method = method

    def receive(self, msg, cid=None):
        self.method(msg, cid)


def _reg_packets_bench(self):
    for kind in sorted(NAMES):
        short = NAMES[kind].split(":")[1]
        self.register_packet(NAMES[kind], Handler(self.registry, self, getattr(self, "on_" + short)))


class BenchServer(peng3dnet.Server):
    _reg_packets_bench = _reg_packets_bench

    def __init__(self, params, **kwargs):
        self.params = params
        self.items = 0
        self.ready = set()
        super().__init__(cfg=dict(CFG), **kwargs)

    def on_echo(self, msg, cid):
        self.send_message(NAMES[ECHO], msg, cid)

    def on_blob(self, msg, cid):
        self.send_message(NAMES[BLOB], msg, cid)

    def on_item(self, msg, cid):
        self.items += 1
        if self.items == self.params["count"]:
            self.items = 0
            self.send_message(NAMES[DONE], self.params["count"], cid)

    def on_ready(self, msg, cid):
        self.ready.add(cid)
        if len(self.ready) == self.params["clients"]:
            targets, self.ready = sorted(self.ready), set()
            update = update_message(0)
            for tick in range(self.params["updates"]):
                update["tick"] = tick
                if self.params["mode"] == "broadcast":
                    self.broadcast(NAMES[UPDATE], update)
                else:
                    for target in targets:
                        self.send_message(NAMES[UPDATE], update, target)

    def on_done(self, msg, cid):
        pass

    on_update = on_done


def serve(params, server_class=BenchServer):
    server = server_class(params, addr=("127.0.0.1", 0))
    server.runAsync()
    server.process_async()
    while server.sock is None:
        time.sleep(0.01)
    return server.sock.getsockname()[1]


class BenchClient(peng3dnet.Client):
    _reg_packets_bench = _reg_packets_bench

    def __init__(self, **kwargs):
        self.replies = 0
        self.updates = 0
        self.all_updates = None
        self.done = threading.Event()
        super().__init__(cfg=dict(CFG), **kwargs)

    def on_echo(self, msg, cid):
        self.replies += 1

    on_blob = on_done = on_echo

    def on_update(self, msg, cid):
        self.updates += 1
        if self.updates == self.all_updates:
            self.done.set()

    def on_item(self, msg, cid):
        pass

    on_ready = on_item


def _connected(client):
    return STATE_ACTIVE <= client.remote_state < STATE_CLOSED


def _client(port):
    """A connected client that the calling thread dispatches for."""
    client = BenchClient(addr=_address(port))
    client.runAsync()
    deadline = time.monotonic() + 30
    while not _connected(client):
        client.process(wait=True, timeout=0.05)
        if time.monotonic() > deadline:
            raise TimeoutError("no handshake within 30 s")
    return client


def _await_replies(client, target, timeout=300):
    deadline = time.monotonic() + timeout
    while client.replies < target:
        client.process(wait=True, timeout=1)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{client.replies} of {target} replies")


def run_client(params):
    return globals()["_scenario_" + params["scenario"]](params)


def _scenario_rtt(params):
    client = _client(params["port"])

    def round_trip(msg):
        client.send_message(NAMES[ECHO], msg)
        _await_replies(client, client.replies + 1)

    return measure_rtt(params, round_trip)


def _scenario_stream(params):
    client = _client(params["port"])
    return measure_stream(
        params,
        lambda msg: client.send_message(NAMES[ITEM], msg),
        lambda: _await_replies(client, 1, timeout=params["timeout"]),
    )


def _scenario_big(params):
    client = _client(params["port"])

    def round_trip(payload):
        client.send_message(NAMES[BLOB], payload)
        _await_replies(client, client.replies + 1, timeout=params["timeout"])

    return measure_big(params, round_trip)


def _scenario_fanout(params):
    clients = []
    for _ in range(params["clients"]):
        client = BenchClient(addr=_address(params["port"]))
        client.all_updates = params["updates"]
        client.runAsync()
        client.process_async()
        clients.append(client)
    for client in clients:
        client.wait_for_connection(60)
    with Clock() as clock:
        for client in clients:
            client.send_message(NAMES[READY], None)
        for client in clients:
            if not client.done.wait(params["timeout"]):
                raise TimeoutError(f"a client got {client.updates} of {params['updates']} updates")
    return {"clients": len(clients), "updates": params["updates"], "seconds": clock.seconds}


def _scenario_conns(params):
    clients = []
    with Clock() as clock:
        for _ in range(params["clients"]):
            client = BenchClient(addr=_address(params["port"]))
            if OURS:
                client.connect()  # the handshake runs in the core: no thread needed
            else:
                client.runAsync()  # the original needs its I/O and dispatch threads
                client.process_async()
            clients.append(client)
        for client in clients:
            client.wait_for_connection(120)
    _scenario_conns.keep = clients  # connected until the driver has measured the server
    return {"clients": len(clients), "seconds": clock.seconds}
