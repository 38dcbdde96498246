"""Echo server: sends every message back and reports its clients.

    python examples/echo/server.py [--host 127.0.0.1] [--port 8080] [--seconds N]

Stops after N seconds (default: on Ctrl-C), telling every client why.
"""

import argparse
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")  # for the original peng3dnet

import peng3dnet
from protocol import register_packets


class EchoClientOnServer(peng3dnet.ClientOnServer):
    """One connected client, with a count of what it sent."""

    def __init__(self, server, conn, addr, cid):
        super().__init__(server, conn, addr, cid)
        self.echoed = 0

    def on_handshake_complete(self):
        super().on_handshake_complete()
        print(f"client {self.cid} joined from {self.addr[0]}:{self.addr[1]}", flush=True)

    def on_close(self, reason=None):
        print(f"client {self.cid} left ({reason}) after {self.echoed} messages", flush=True)


class EchoServer(peng3dnet.Server):
    def _reg_packets_echo(self):
        register_packets(self)


def main():
    parser = argparse.ArgumentParser(description="peng3dnet echo server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args()

    server = EchoServer(addr=(args.host, args.port), clientcls=EchoClientOnServer)
    server.bind()
    server.runAsync()
    server.process_async()
    host, port = server.sock.getsockname()[:2]
    print(f"echo server listening on {host}:{port}", flush=True)
    try:
        threading.Event().wait(args.seconds)
    except KeyboardInterrupt:
        pass
    server.shutdown(join=True, timeout=5, reason="servershutdown")
    print("echo server stopped", flush=True)


if __name__ == "__main__":
    main()
