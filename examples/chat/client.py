"""Chat client: joins with a nickname, says a few lines, prints what others say.

python examples/chat/client.py --nick alice [--say "hi" --say "bye"] [--port 8081]
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")  # for the original peng3dnet

import peng3dnet
from protocol import register_packets


class ChatClient(peng3dnet.Client):
    def __init__(self, nick, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.nick = nick
        self.welcomed = threading.Event()
        self.heard = []

    def _reg_packets_chat(self):
        register_packets(self)

    def on_handshake_complete(self):
        super().on_handshake_complete()
        self.send_message("chat:nick", {"nick": self.nick})

    def on_welcome(self, msg):
        print(f"[{self.nick}] welcome! present: {', '.join(msg['present'])}", flush=True)
        self.welcomed.set()

    def on_chat(self, nick, text):
        self.heard.append((nick, text))
        print(f"[{self.nick}] <{nick}> {text}", flush=True)


def main():
    parser = argparse.ArgumentParser(description="peng3dnet chat client")
    parser.add_argument("--nick", required=True)
    parser.add_argument("--say", action="append", default=[])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--listen", type=float, default=0.5, help="seconds to listen after talking")
    args = parser.parse_args()

    client = ChatClient(args.nick, addr=(args.host, args.port))
    client.runAsync()
    client.process_async()
    client.wait_for_connection(10)
    if not client.welcomed.wait(10):
        raise SystemExit("the server did not welcome us")
    for line in args.say:
        client.send_message("chat:message", {"text": line})
    time.sleep(args.listen)
    client.close_connection(reason="quit")
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
