"""Limits: a client that breaks one is cut off with a reason; the others carry on."""

import threading

import peng3dnet
from peng3dnet.packet import Packet

echoed = threading.Event()


class Echo(Packet):
    def receive(self, msg, cid=None):
        if cid is not None:
            self.peer.send_message("demo:echo", msg, cid)
        else:
            echoed.set()


class LimitedServer(peng3dnet.Server):
    def _reg_packets_demo(self):
        self.register_packet("demo:echo", Echo(self.registry, self))


class DemoClient(peng3dnet.Client):
    _reg_packets_demo = LimitedServer._reg_packets_demo

    def on_close(self, reason=None):
        super().on_close(reason)
        self.reason = reason


# Frames over 1 MiB are refused before any of their body is read; so are bodies that
# inflate to more than that (a 1 MiB "zip bomb" cannot make the server hold 1 GiB).
limits = {"net.limits.max_frame": 1024 * 1024, "net.limits.max_inflated": 1024 * 1024}
server = LimitedServer(addr=("127.0.0.1", 0), cfg=limits)
server.bind()
server.runAsync()
server.process_async()
port = server.sock.getsockname()[1]

honest, greedy = (DemoClient(addr=("127.0.0.1", port)) for _ in range(2))
for client in (honest, greedy):
    client.runAsync()
    client.process_async()
    client.wait_for_connection(5)

greedy.send_message("demo:echo", {"blob": "x" * (4 * 1024 * 1024)})  # 4 MiB inflated
greedy.wait_for_close(5)
print("the greedy client was closed:", greedy.reason)

honest.send_message("demo:echo", {"hello": "still here"})
assert echoed.wait(5), "the honest client lost its reply"
print("the honest client still gets its replies")

honest.close_connection(reason="done")
server.shutdown(join=True, timeout=5)
