"""Peer script: peng3dnet clients that follow a script, then report what happened.

Runs with either implementation's interpreter:

    python connect.py SPEC_PICKLE

SPEC holds ``{"port": n, "packets": [names], "cfg": {...}, "clients": k, "actions":
[...]}``. Each of the ``k`` clients connects and performs the actions:

    ("send", name, data)        send a packet
    ("echo", name, data)        send a packet and wait for it to come back (5 s)
    ("close", reason)           close_connection(reason=reason)
    ("wait_close", seconds)     wait until the connection is closed
    ("sleep", seconds)

Prints one base64 pickle line: a list with one report per client, ``{"connected",
"error", "received": {name: [msg]}, "closed": [reasons], "registry": {name: id}}``.
"""

import base64
import os
import pickle
import sys
import threading
import time

os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")

import peng3dnet
from peng3dnet.packet import Packet


class Recording(Packet):
    def receive(self, msg, cid=None):
        self.peer.record(self.reg.getName(self), msg)


class ScriptedClient(peng3dnet.Client):
    def __init__(self, spec, **kwargs):
        self.spec = spec
        self.lock = threading.Lock()
        self.received = {}
        self.closed = []
        super().__init__(**kwargs)

    def _reg_packets_spec(self):
        for name in self.spec["packets"]:
            self.register_packet(name, Recording(self.registry, self))

    def record(self, name, msg):
        with self.lock:
            self.received.setdefault(name, []).append(msg)

    def on_receive(self, ptype, msg):
        if ptype == 16:
            self.record("peng3dnet:internal.closeconn", msg)

    def on_close(self, reason=None):
        with self.lock:
            self.closed.append(reason)

    def count(self, name):
        with self.lock:
            return len(self.received.get(name, []))


def wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def run_client(spec):
    report = {"connected": False, "error": None, "received": {}, "closed": [], "registry": {}}
    client = ScriptedClient(spec, addr=("127.0.0.1", spec["port"]), cfg=dict(spec.get("cfg", {})))
    try:
        client.runAsync()
        client.process_async()
        client.wait_for_connection(10)
        report["connected"] = True
        report["registry"] = {name: client.registry.getID(name) for name in spec["packets"]}
        for action in spec["actions"]:
            kind = action[0]
            if kind == "send":
                client.send_message(action[1], action[2])
            elif kind == "echo":
                name, before = action[1], client.count(action[1])
                client.send_message(name, action[2])
                if not wait_for(lambda name=name, before=before: client.count(name) > before, 5):
                    raise RuntimeError(f"no echo for {name}")
            elif kind == "close":
                client.close_connection(reason=action[1])
            elif kind == "wait_close":
                if not wait_for(lambda: client.closed, action[1]):
                    raise RuntimeError("the connection did not close")
            elif kind == "sleep":
                time.sleep(action[1])
    except Exception as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
    with client.lock:
        report["received"] = {k: list(v) for k, v in client.received.items()}
        report["closed"] = list(client.closed)
    return report


def main():
    with open(sys.argv[1], "rb") as f:
        spec = pickle.load(f)
    reports = [None] * spec.get("clients", 1)

    def run(i):
        reports[i] = run_client(spec)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(reports))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sys.stdout.write(base64.b64encode(pickle.dumps(reports)).decode() + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
