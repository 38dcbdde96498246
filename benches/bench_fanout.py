"""Fan-out: one server sends the same state update to many clients.

Runs under either implementation's interpreter (the driver, ``--compare``, runs it under
both): a server and CLIENTS clients in one process on loopback; the server sends
UPDATES messages of about 1 kB to every client, either with a Python loop over
``send_message`` (the only way in the original) or with ``broadcast`` (peng3dnet-rs).
Reports the time the server spent sending and the time until every client had
everything, as client deliveries per second.

    ./run bench                                   (part of the benchmark run)
    .venv/bin/python benches/bench_fanout.py --compare .venv-ref/bin/python
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")

import peng3dnet
from peng3dnet.packet import Packet

CLIENTS = 50
UPDATES = 200


class Update(Packet):
    def receive(self, msg, cid=None):
        self.peer.got()


class FanServer(peng3dnet.Server):
    def _reg_packets_bench(self):
        self.register_packet("bench:update", Update(self.registry, self))


class FanClient(peng3dnet.Client):
    _reg_packets_bench = FanServer._reg_packets_bench

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.count = 0
        self.done = threading.Event()

    def got(self):
        self.count += 1
        if self.count >= UPDATES:
            self.done.set()


def run(mode):
    server = FanServer(addr=("127.0.0.1", 0))
    server.runAsync()
    server.process_async()
    while server.sock is None:
        time.sleep(0.01)
    port = server.sock.getsockname()[1]
    clients = []
    for _ in range(CLIENTS):
        client = FanClient(addr=("127.0.0.1", port))
        client.runAsync()
        client.process_async()
        clients.append(client)
    for client in clients:
        client.wait_for_connection(30)
    deadline = time.monotonic() + 30
    while len(server.clients) < CLIENTS and time.monotonic() < deadline:
        time.sleep(0.01)
    update = {"tick": 0, "players": [{"id": i, "x": i * 1.5, "y": -i * 0.5, "hp": 100} for i in range(25)]}
    started = time.perf_counter()
    for tick in range(UPDATES):
        update["tick"] = tick
        if mode == "broadcast":
            server.broadcast("bench:update", update)
        else:
            for cid in list(server.clients):
                server.send_message("bench:update", update, cid)
    sent = time.perf_counter() - started
    for client in clients:
        client.done.wait(60)
    delivered = time.perf_counter() - started
    complete = all(c.count >= UPDATES for c in clients)
    for client in clients:
        client.stop()
    server.stop()
    return {
        "mode": mode,
        "send_ms": sent * 1e3,
        "all_delivered_ms": delivered * 1e3,
        "deliveries_per_s": CLIENTS * UPDATES / delivered,
        "complete": complete,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["loop", "broadcast"])
    parser.add_argument(
        "--compare", metavar="REFERENCE_PYTHON", help="run all rows; the reference under this interpreter"
    )
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run(args.mode)))
        return
    rows = []
    for label, python, mode in [
        ("reference: loop over send_message", args.compare, "loop"),
        ("peng3dnet-rs: loop over send_message", sys.executable, "loop"),
        ("peng3dnet-rs: broadcast", sys.executable, "broadcast"),
    ]:
        if python is None:
            continue
        out = subprocess.run([python, __file__, "--mode", mode], capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            print(f"{label}: failed\n{out.stderr[-2000:]}")
            continue
        rows.append((label, json.loads(out.stdout.strip().splitlines()[-1])))
    print(f"fan-out: {UPDATES} updates of ~1 kB to each of {CLIENTS} clients, one process, loopback")
    print(f"{'':38} {'send (ms)':>10} {'delivered (ms)':>15} {'deliveries/s':>13} {'vs ref':>7}")
    base = rows[0][1]["deliveries_per_s"] if rows and args.compare else None
    for label, r in rows:
        ratio = f"{r['deliveries_per_s'] / base:6.1f}x" if base else ""
        flag = "" if r["complete"] else "  (incomplete!)"
        timings = f"{r['send_ms']:10.1f} {r['all_delivered_ms']:15.1f} {r['deliveries_per_s']:13.0f}"
        print(f"{label:38} {timings} {ratio:>7}{flag}")


if __name__ == "__main__":
    main()
