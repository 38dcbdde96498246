"""Peer script: a peng3dnet server driven by commands on stdin.

Runs with either implementation's interpreter:

    python serve.py SPEC_PICKLE

SPEC holds ``{"packets": [names in registration order], "cfg": {...}}``. Every packet of
type "test:echo" is sent back to its sender; every packet is recorded. The script
prints ``PORT <n>``, then reads one base64 pickle per line from stdin, a command tuple,
and answers each with one base64 pickle line on stdout:

    ("report",)                   -> {"received": {name: [(cid, msg)]}, "closed": [(cid, reason)],
                                      "clients": [cid], "handshakes": [cid]}
    ("send", cid, name, data)     -> True
    ("close", cid | None, reason) -> True    (None: every client)
    ("shutdown", reason)          -> True
    ("quit",)                     -> exits
"""

import base64
import os
import pickle
import sys
import threading

os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")

import peng3dnet
from peng3dnet.packet import Packet

LOCK = threading.Lock()
RECEIVED = {}
CLOSED = []
HANDSHAKES = []


class Recording(Packet):
    def receive(self, msg, cid=None):
        name = self.reg.getName(self)
        with LOCK:
            RECEIVED.setdefault(name, []).append((cid, msg))
        if name == "test:echo":
            self.peer.send_message(self, msg, cid)


class Conn(peng3dnet.ClientOnServer):
    def on_handshake_complete(self):
        super().on_handshake_complete()
        with LOCK:
            HANDSHAKES.append(self.cid)

    def on_receive(self, ptype, msg):
        if ptype == 16:
            with LOCK:
                RECEIVED.setdefault("peng3dnet:internal.closeconn", []).append((self.cid, msg))

    def on_close(self, reason=None):
        with LOCK:
            CLOSED.append((self.cid, reason))


def main():
    with open(sys.argv[1], "rb") as f:
        spec = pickle.load(f)

    class Server(peng3dnet.Server):
        def _reg_packets_spec(self):
            for name in spec["packets"]:
                self.register_packet(name, Recording(self.registry, self))

    server = Server(addr=("127.0.0.1", 0), clientcls=Conn, cfg=dict(spec.get("cfg", {})))
    server.bind()
    server.runAsync()
    server.process_async()
    print(f"PORT {server.sock.getsockname()[1]}", flush=True)
    for line in sys.stdin:
        command = pickle.loads(base64.b64decode(line))
        if command[0] == "quit":
            break
        if command[0] == "report":
            with LOCK:
                answer = {
                    "received": {k: list(v) for k, v in RECEIVED.items()},
                    "closed": list(CLOSED),
                    "clients": sorted(server.clients),
                    "handshakes": list(HANDSHAKES),
                }
        elif command[0] == "send":
            _, cid, name, data = command
            server.send_message(name, data, cid)
            answer = True
        elif command[0] == "close":
            _, cid, reason = command
            for target in [cid] if cid is not None else list(server.clients):
                server.close_connection(target, reason)
            answer = True
        elif command[0] == "shutdown":
            server.shutdown(join=False, reason=command[1])
            answer = True
        else:
            answer = f"unknown command {command[0]!r}"
        sys.stdout.write(base64.b64encode(pickle.dumps(answer)).decode() + "\n")
        sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
