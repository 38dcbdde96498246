"""Soak benchmark: many clients, random disconnects, minutes of traffic.

Starts ``peng3dnet serve`` in its own process and runs client sessions against it from
many threads: each session connects, exchanges a batch of echo messages (every one must
come back, in order), then leaves, gracefully or by dropping the connection, and a new
session starts. The server's memory is sampled throughout.

    ./run soak [MINUTES]      (or: .venv/bin/python benches/soak.py --minutes 2)

Prints the server's memory over time, sessions, messages and lost messages; with
``--json FILE`` also writes them as JSON. A measurement, not a test: it asserts nothing.
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time

import peng3dnet
from peng3dnet.packet import Packet

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from support import rss

PACKETS = ("echo:echo", "echo:latency", "chat:nick", "chat:welcome", "chat:message")


class Counting(Packet):
    def receive(self, msg, cid=None):
        self.peer.got(msg)


class SoakClient(peng3dnet.Client):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.received = []
        self.cond = threading.Condition()

    def _reg_packets_soak(self):
        for name in PACKETS:
            self.register_packet(name, Counting(self.registry, self))

    def got(self, msg):
        with self.cond:
            self.received.append(msg)
            self.cond.notify_all()


def session(port, rng, stats, lock):
    """One client session; returns (sent, lost)."""
    client = SoakClient(addr=("127.0.0.1", port))
    client.runAsync()
    client.process_async()
    try:
        client.wait_for_connection(10)
        count = rng.randint(20, 200)
        payload = "x" * rng.choice([10, 100, 1000, 20000])
        for seq in range(count):
            client.send_message("echo:echo", {"seq": seq, "data": payload})
        with client.cond:
            client.cond.wait_for(lambda: len(client.received) >= count, timeout=30)
        got = [m["seq"] for m in client.received]
        lost = count - len(got) + (0 if got == list(range(len(got))) else 1)
        how = rng.choice(["close_connection", "close", "stop"])
        if how == "close_connection":
            client.close_connection(reason="soak")
            client.wait_for_close(10)
        elif how == "close":
            client.close()
        client.stop()
        client.join(2)
        if lost:
            with lock:
                stats.setdefault("lost_detail", []).append((count, len(got), client._close_reason, how))
        with lock:
            stats["sessions"] += 1
            stats["messages"] += count
            stats["lost"] += lost
            stats["leaves"][how] += 1
    except Exception as exc:
        with lock:
            stats["errors"].append(f"{type(exc).__name__}: {exc}")
        client.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=40, help="concurrent client threads")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    # The server logs every connection; a file (unlike a pipe this busy process would
    # have to drain) can never make the server wait.
    log = tempfile.NamedTemporaryFile("w+", prefix="peng3dnet-soak-", suffix=".log")
    server = subprocess.Popen(
        [sys.executable, "-m", "peng3dnet", "serve", "--port", "0"], stdout=log, stderr=subprocess.STDOUT
    )
    port = None
    while port is None and server.poll() is None:
        time.sleep(0.05)
        match = re.search(r"listening on [\d.]+:(\d+)", open(log.name).read())
        port = int(match.group(1)) if match else None

    stats = {
        "sessions": 0,
        "messages": 0,
        "lost": 0,
        "errors": [],
        "leaves": dict.fromkeys(["close_connection", "close", "stop"], 0),
    }
    lock = threading.Lock()
    deadline = time.monotonic() + args.minutes * 60
    samples = []

    def worker(i):
        rng = random.Random(i)
        while time.monotonic() < deadline:
            session(port, rng, stats, lock)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    print(
        f"soak: {args.clients} concurrent clients against peng3dnet serve (pid {server.pid}) "
        f"for {args.minutes:g} min"
    )
    print(f"{'elapsed':>8} {'server RSS':>11} {'sessions':>9} {'messages':>10} {'lost':>5}")
    while time.monotonic() < deadline:
        time.sleep(min(10, max(deadline - time.monotonic(), 0)))
        with lock:
            row = (
                time.monotonic() - started,
                rss(server.pid),
                stats["sessions"],
                stats["messages"],
                stats["lost"],
            )
        samples.append(row)
        print(f"{row[0]:7.0f}s {row[1] / 2**20:9.1f} MiB {row[2]:9} {row[3]:10} {row[4]:5}", flush=True)
    for t in threads:
        t.join(60)
    server.terminate()
    server.wait(10)

    warm = [s[1] for s in samples[len(samples) // 3 :]] or [samples[-1][1]]
    summary = {
        "minutes": args.minutes,
        "clients": args.clients,
        "sessions": stats["sessions"],
        "messages": stats["messages"],
        "lost": stats["lost"],
        "errors": stats["errors"][:10],
        "error_count": len(stats["errors"]),
        "leaves": stats["leaves"],
        "server_rss_mib": [round(s[1] / 2**20, 1) for s in samples],
        "rss_after_warmup_min_max_mib": [round(min(warm) / 2**20, 1), round(max(warm) / 2**20, 1)],
    }
    if stats.get("lost_detail"):
        print(
            "sessions that lost messages (count, received, reason, how they left):", stats["lost_detail"][:10]
        )
    print(
        f"sessions {summary['sessions']}, messages {summary['messages']}, lost {summary['lost']}, "
        f"errors {summary['error_count']}, leaves {summary['leaves']}"
    )
    print(
        f"server RSS after warm-up: {summary['rss_after_warmup_min_max_mib'][0]}-"
        f"{summary['rss_after_warmup_min_max_mib'][1]} MiB"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    if summary["lost"] or summary["error_count"] or not summary["messages"]:
        print("soak failed: messages were lost, sessions failed, or nothing was sent", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")
    sys.exit(main())
