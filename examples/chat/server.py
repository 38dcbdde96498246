"""Chat server: clients choose a nickname, then every line goes to everyone.

python examples/chat/server.py [--host 127.0.0.1] [--port 8081] [--seconds N]
"""

import argparse
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")  # for the original peng3dnet

import peng3dnet
from peng3dnet.constants import MODE_CHAT
from protocol import register_packets


class ChatClientOnServer(peng3dnet.ClientOnServer):
    """A connected client; ``nick`` is None until it has chosen one."""

    def __init__(self, server, conn, addr, cid):
        super().__init__(server, conn, addr, cid)
        self.nick = None

    def on_close(self, reason=None):
        if self.nick is not None:
            self.server.broadcast({"nick": "*", "text": f"{self.nick} left ({reason})"}, exclude=self.cid)


class ChatServer(peng3dnet.Server):
    def _reg_packets_chat(self):
        register_packets(self)

    def chatters(self):
        return {cid: client for cid, client in list(self.clients.items()) if client.mode == MODE_CHAT}

    def set_nick(self, cid, nick):
        client = self.clients[cid]
        client.nick = nick
        client.mode = MODE_CHAT
        present = sorted(c.nick for c in self.chatters().values())
        self.send_message("chat:welcome", {"nick": nick, "present": present}, cid)
        self.broadcast({"nick": "*", "text": f"{nick} joined"}, exclude=cid)
        print(f"{nick} joined (client {cid})", flush=True)

    def broadcast(self, msg, exclude=None):
        """Send a chat line to every client in chat mode."""
        for cid in self.chatters():
            if cid != exclude:
                self.send_message("chat:message", msg, cid)


def main():
    parser = argparse.ArgumentParser(description="peng3dnet chat server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args()

    server = ChatServer(addr=(args.host, args.port), clientcls=ChatClientOnServer)
    server.bind()
    server.runAsync()
    server.process_async()
    host, port = server.sock.getsockname()[:2]
    print(f"chat server listening on {host}:{port}", flush=True)
    try:
        threading.Event().wait(args.seconds)
    except KeyboardInterrupt:
        pass
    server.shutdown(join=True, timeout=5, reason="servershutdown")
    print("chat server stopped", flush=True)


if __name__ == "__main__":
    main()
