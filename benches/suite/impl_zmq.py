"""The pyzmq + msgpack peer of the benchmark suite: what a Python developer would pick
instead of peng3dnet. A ROUTER server (one thread) and DEALER clients; each zmq message
is ``msgpack.packb([kind, payload])`` and handlers get the decoded payload."""

import threading
import time

import msgpack
import zmq
from common import (
    BLOB,
    DONE,
    ECHO,
    ITEM,
    READY,
    UPDATE,
    WAVE,
    Clock,
    measure_big,
    measure_rtt,
    measure_stream,
    update_message,
)

CONTEXT = zmq.Context.instance()


def serve(params):
    router = CONTEXT.socket(zmq.ROUTER)
    router.setsockopt(zmq.SNDHWM, 0)  # queue fan-out updates instead of dropping them
    port = router.bind_to_random_port("tcp://127.0.0.1")
    threading.Thread(target=_serve_forever, args=(router, params), daemon=True).start()
    return port


def _serve_forever(router, params):
    items = 0
    ready = []
    while True:
        ident, data = router.recv_multipart(copy=False)
        kind, payload = msgpack.unpackb(data.buffer)
        if kind in (ECHO, BLOB):
            router.send_multipart([ident, msgpack.packb([kind, payload])])
        elif kind == ITEM:
            items += 1
            if items == params["count"]:
                items = 0
                router.send_multipart([ident, msgpack.packb([DONE, params["count"]])])
        elif kind == READY:
            ready.append(ident.bytes)
            if len(ready) == params["clients"]:
                targets, ready = ready, []
                update = update_message(0)
                for tick in range(params["updates"]):
                    update["tick"] = tick
                    once = msgpack.packb([UPDATE, update])
                    for target in targets:
                        data = once if params["mode"] == "broadcast" else msgpack.packb([UPDATE, update])
                        router.send_multipart([target, data])


def _dealer(port):
    dealer = CONTEXT.socket(zmq.DEALER)
    dealer.setsockopt(zmq.RCVHWM, 0)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    return dealer


def _request(dealer, kind, payload):
    dealer.send(msgpack.packb([kind, payload]))
    return msgpack.unpackb(dealer.recv())[1]


def run_client(params):
    return globals()["_scenario_" + params["scenario"]](params)


def _scenario_rtt(params):
    dealer = _dealer(params["port"])
    return measure_rtt(params, lambda msg: _request(dealer, ECHO, msg))


def _scenario_stream(params):
    dealer = _dealer(params["port"])
    return measure_stream(
        params,
        lambda msg: dealer.send(msgpack.packb([ITEM, msg])),
        lambda: msgpack.unpackb(dealer.recv()),
    )


def _scenario_big(params):
    dealer = _dealer(params["port"])
    return measure_big(params, lambda payload: _request(dealer, BLOB, payload))


def _scenario_fanout(params):
    dealers = [_dealer(params["port"]) for _ in range(params["clients"])]
    poller = zmq.Poller()
    for dealer in dealers:
        poller.register(dealer, zmq.POLLIN)
    # One echo each first: every connection is up before the clock starts.
    for dealer in dealers:
        _request(dealer, ECHO, None)
    counts = {dealer: 0 for dealer in dealers}
    remaining = len(dealers)
    with Clock() as clock:
        for dealer in dealers:
            dealer.send(msgpack.packb([READY, None]))
        deadline = time.monotonic() + params["timeout"]
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError("fan-out updates missing")
            for dealer, _ in poller.poll(1000):
                while True:
                    try:
                        data = dealer.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    msgpack.unpackb(data)
                    counts[dealer] += 1
                    if counts[dealer] == params["updates"]:
                        remaining -= 1
    return {"clients": len(dealers), "updates": params["updates"], "seconds": clock.seconds}


def _scenario_conns(params):
    """DEALER sockets in waves of WAVE, each answered once (an echo round trip, the
    peers' stand-in for a handshake) before the next wave starts."""
    dealers = []
    with Clock() as clock:
        while len(dealers) < params["clients"]:
            wave = [_dealer(params["port"]) for _ in range(min(WAVE, params["clients"] - len(dealers)))]
            for dealer in wave:
                dealer.send(msgpack.packb([ECHO, None]))
            for dealer in wave:
                dealer.recv()
            dealers.extend(wave)
    _scenario_conns.keep = dealers
    return {"clients": len(dealers), "seconds": clock.seconds, "cpu": clock.cpu}
