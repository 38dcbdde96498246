"""Echo client: sends messages, waits for them to come back, measures latency.

python examples/echo/client.py [--host 127.0.0.1] [--port 8080] [--count 100]
"""

import argparse
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")  # for the original peng3dnet

import peng3dnet
from protocol import register_packets


class EchoClient(peng3dnet.Client):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.echoes = []
        self.latencies = []
        self.changed = threading.Condition()

    def _reg_packets_echo(self):
        register_packets(self)

    def on_echo(self, msg):
        with self.changed:
            self.echoes.append(msg)
            self.changed.notify_all()

    def on_latency(self, seconds):
        with self.changed:
            self.latencies.append(seconds)
            self.changed.notify_all()

    def wait(self, predicate, timeout=10):
        with self.changed:
            if not self.changed.wait_for(predicate, timeout):
                raise peng3dnet.errors.TimedOutError("the server did not answer in time")


def main():
    parser = argparse.ArgumentParser(description="peng3dnet echo client")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()

    client = EchoClient(addr=(args.host, args.port))
    client.runAsync()
    client.process_async()
    client.wait_for_connection(10)

    started = time.perf_counter()
    for i in range(args.count):
        client.send_message("echo:echo", {"seq": i, "text": f"message {i}"})
        client.wait(lambda i=i: len(client.echoes) > i)
    elapsed = time.perf_counter() - started
    assert [m["seq"] for m in client.echoes] == list(range(args.count)), "echoes out of order"

    for i in range(20):
        client.send_message("echo:latency", {"sent": time.perf_counter()})
        client.wait(lambda i=i: len(client.latencies) > i)
    median_ms = statistics.median(client.latencies) * 1000

    print(f"{args.count} messages echoed in order in {elapsed:.3f} s; median round trip {median_ms:.2f} ms")
    client.close_connection(reason="done")
    try:
        client.wait_for_close(5)
    except peng3dnet.errors.TimedOutError:
        # The original peng3dnet can miss this wake-up when the close lands just as the
        # wait begins (it wakes its waiters before it marks the connection closed).
        if client.remote_state != peng3dnet.constants.STATE_CLOSED:
            raise
    client.stop()


if __name__ == "__main__":
    main()
