"""The server that ``benches/attack.py`` attacks: an ordinary peng3dnet app, run with
either implementation's interpreter.

    python attack_server.py CFG_JSON

It registers three packets: "attack:echo" (sent back to its sender), "attack:pull"
(``{"n": N}``: the sender subscribes to N blobs of 256 KiB of random bytes, which the
server's tick thread sends one per subscriber every 20 ms, the way a game server
streams a map or world state), and "attack:blob". It prints ``PORT <n>``,
then answers commands on stdin, one per line:

    report -> one JSON line: {"closed": [[cid, reason], ...], "clients": [cid, ...],
              "memory": {the memory_* keys of Server.stats(), if it has them}}
    quit   -> exits
"""

import json
import os
import sys
import threading
import time

os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")

import peng3dnet
from peng3dnet.packet import Packet

BLOB = os.urandom(256 * 1024)
LOCK = threading.Lock()
CLOSED = []


class Echo(Packet):
    def receive(self, msg, cid=None):
        self.peer.send_message("attack:echo", msg, cid)


SUBSCRIBED = {}


class Pull(Packet):
    def receive(self, msg, cid=None):
        with LOCK:
            SUBSCRIBED[cid] = SUBSCRIBED.get(cid, 0) + int(msg.get("n", 1))


def tick(server):
    """The app's game loop: one blob to each subscriber per tick."""
    while True:
        time.sleep(0.02)
        with LOCK:
            due = [cid for cid, left in SUBSCRIBED.items() if left > 0]
        for cid in due:
            with LOCK:
                SUBSCRIBED[cid] -= 1
            if cid in server.clients:
                server.send_message("attack:blob", BLOB, cid)
            else:
                with LOCK:
                    SUBSCRIBED.pop(cid, None)


class Blob(Packet):
    def receive(self, msg, cid=None):
        pass


class Conn(peng3dnet.ClientOnServer):
    def on_close(self, reason=None):
        with LOCK:
            CLOSED.append((self.cid, reason))


class Server(peng3dnet.Server):
    def _reg_packets_spec(self):
        self.register_packet("attack:echo", Echo(self.registry, self))
        self.register_packet("attack:pull", Pull(self.registry, self))
        self.register_packet("attack:blob", Blob(self.registry, self))


def main():
    cfg = json.loads(sys.argv[1])
    server = Server(addr=("127.0.0.1", 0), clientcls=Conn, cfg=cfg)
    server.bind()
    server.runAsync()
    server.process_async()
    threading.Thread(target=tick, args=(server,), daemon=True).start()
    print(f"PORT {server.sock.getsockname()[1]}", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        if command == "report":
            with LOCK:
                closed = list(CLOSED)
            stats = server.stats() if hasattr(server, "stats") else {}
            memory = {k: v for k, v in stats.items() if k.startswith("memory_")}
            report = {"closed": closed, "clients": list(server.clients), "memory": memory}
            print(json.dumps(report), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
