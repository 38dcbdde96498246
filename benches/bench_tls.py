"""What TLS costs: round trips and streaming over loopback, plain TCP next to TLS 1.3.

A server and a client of peng3dnet-rs in this process; for each transport: the median
and 99th percentile round-trip time of a small echo packet, the rate of a stream of
small packets, and the time to move one 8 MB packet of random bytes (best of two
alternating rounds). Certificates are made on the fly
(``tests/tls_certs.py``). The original's SSL mode cannot complete a handshake (see the
README), so it has no row here.

    ./run bench            (runs this after the codec benchmark)
    .venv/bin/python benches/bench_tls.py [--json FILE]
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time

import peng3dnet
from peng3dnet.packet import Packet

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from tls_certs import make_pki

ROUND_TRIPS = 2000
STREAM = 50_000
BIG = 8 * 1024 * 1024


class Echo(Packet):
    def receive(self, msg, cid=None):
        if cid is not None:
            self.peer.send_message("bench:echo", msg, cid)
        else:
            self.peer.arrived(msg)


class Sink(Packet):
    def receive(self, msg, cid=None):
        self.peer.sunk(msg)


class BenchServer(peng3dnet.Server):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.count = 0
        self.done = threading.Event()
        self.expect = 0

    def _reg_packets_bench(self):
        self.register_packet("bench:echo", Echo(self.registry, self))
        self.register_packet("bench:sink", Sink(self.registry, self))

    def sunk(self, msg):
        self.count += 1
        if self.count >= self.expect:
            self.done.set()


class BenchClient(peng3dnet.Client):
    _reg_packets_bench = BenchServer._reg_packets_bench

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.answer = threading.Event()

    def arrived(self, msg):
        self.answer.set()


def measure(server_cfg, client_cfg):
    server = BenchServer(addr=("127.0.0.1", 0), cfg=server_cfg)
    server.bind()
    server.runAsync()
    server.process_async()
    client = BenchClient(addr=("127.0.0.1", server.sock.getsockname()[1]), cfg=client_cfg)
    client.runAsync()
    client.process_async()
    client.wait_for_connection(10)
    try:
        times = []
        for i in range(ROUND_TRIPS):
            client.answer.clear()
            started = time.perf_counter()
            client.send_message("bench:echo", i)
            client.answer.wait(5)
            times.append(time.perf_counter() - started)
        times.sort()
        server.count, server.expect = 0, STREAM
        server.done.clear()
        started = time.perf_counter()
        for i in range(STREAM):
            client.send_message("bench:sink", {"i": i, "pad": "x" * 64})
        server.done.wait(60)
        stream_rate = STREAM / (time.perf_counter() - started)
        server.count, server.expect = 0, 1
        server.done.clear()
        blob = os.urandom(BIG)  # incompressible: what is measured is the transport
        started = time.perf_counter()
        client.send_message("bench:sink", blob)
        server.done.wait(60)
        big_seconds = time.perf_counter() - started
    finally:
        client.stop()
        client.join(5)
        server.stop()
        server.join(5)
    return {
        "rtt_p50_us": statistics.median(times) * 1e6,
        "rtt_p99_us": times[int(len(times) * 0.99)] * 1e6,
        "stream_packets_per_s": stream_rate,
        "big_8mb_ms": big_seconds * 1e3,
    }


def best(results):
    return {key: (max if key.endswith("_per_s") else min)(r[key] for r in results) for key in results[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    pki = make_pki(pathlib.Path(tempfile.mkdtemp(prefix="peng3dnet-bench-")))
    tls_server = {
        "net.ssl.enabled": True,
        "net.ssl.server.certfile": pki["self_signed"],
        "net.ssl.server.keyfile": pki["self_signed_key"],
    }
    tls_client = {
        "net.ssl.enabled": True,
        "net.ssl.cafile": pki["self_signed"],
        "net.ssl.client.force_verify": True,
    }
    # Two alternating rounds, best of each: the first round also warms up.
    rounds = {"plain": [], "tls": []}
    for _ in range(2):
        rounds["plain"].append(measure({}, {}))
        rounds["tls"].append(measure(tls_server, tls_client))
    plain, tls = (best(rounds[name]) for name in ("plain", "tls"))
    rows = [
        ("round trip p50 (us)", "rtt_p50_us", False),
        ("round trip p99 (us)", "rtt_p99_us", False),
        ("stream of 50k small packets (packets/s)", "stream_packets_per_s", True),
        ("one 8 MB packet (ms)", "big_8mb_ms", False),
    ]
    print(f"{'peng3dnet-rs over loopback':42} {'plain TCP':>12} {'TLS 1.3':>12} {'TLS cost':>9}")
    for label, key, higher_is_better in rows:
        ratio = plain[key] / tls[key] if higher_is_better else tls[key] / plain[key]
        print(f"{label:42} {plain[key]:12.1f} {tls[key]:12.1f} {ratio:8.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"plain": plain, "tls": tls}, f, indent=2)


if __name__ == "__main__":
    main()
