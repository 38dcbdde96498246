"""Peer script for ping tests; runs with either implementation's interpreter.

python ping_peer.py server SECONDS     pingable server; prints "PORT <n>", serves SECONDS
python ping_peer.py client PORT        pingServer(); prints the answer as JSON
"""

import json
import os
import sys
import time

os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")

import peng3dnet
from peng3dnet.ext import ping


class Server(ping.PingableServerMixin, peng3dnet.Server):
    pingdata = {"name": "peer"}

    def getPingData(self, msg, cid):
        return {"asked": msg.get("question")}


def main():
    if sys.argv[1] == "server":
        server = Server(addr=("127.0.0.1", 0))
        server.bind()
        server.runAsync()
        server.process_async()
        print(f"PORT {server.sock.getsockname()[1]}", flush=True)
        time.sleep(float(sys.argv[2]))
        os._exit(0)
    data = {"question": "who are you?"}
    answer = ping.pingServer(addr=("127.0.0.1", int(sys.argv[2])), data=data, timeout=5)
    print(json.dumps({"answer": answer, "data_after": data}, default=repr), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
