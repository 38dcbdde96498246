"""Blocking receive: take replies in the order they came, without writing a handler."""

import peng3dnet
from peng3dnet.packet import Packet


class Echo(Packet):
    def receive(self, msg, cid=None):
        if cid is not None:
            self.peer.send_message("echo:echo", msg, cid)


class EchoServer(peng3dnet.Server):
    def _reg_packets_echo(self):
        self.register_packet("echo:echo", Echo(self.registry, self))
        # A plain Packet has no handler of its own: such messages are read with recv().
        self.register_packet("echo:note", Packet(self.registry, self))


class EchoClient(peng3dnet.Client):
    def _reg_packets_echo(self):
        self.register_packet("echo:echo", Packet(self.registry, self))
        self.register_packet("echo:note", Packet(self.registry, self))


server = EchoServer(addr=("127.0.0.1", 0))
server.bind()
server.runAsync()
server.process_async()
port = server.sock.getsockname()[1]

# Keep messages for recv() from connect() on: the process thread may take a reply
# before the first recv() call.
client = EchoClient(addr=("127.0.0.1", port), cfg={"net.recv.enabled": True})
client.runAsync()
client.process_async()
client.wait_for_connection(5)

for n in range(3):
    client.send_message("echo:echo", {"n": n})
    name, msg = client.recv("echo:echo", timeout=5)
    print("client got", name, msg)

client.send_message("echo:note", "the server reads this with recv()")
cid, name, msg = server.recv("echo:note", timeout=5)
print(f"server got from client {cid}: {name} {msg!r}")

try:
    client.recv("echo:note", timeout=0.1)
except peng3dnet.errors.TimedOutError:
    print("nothing else arrived")

client.close_connection(reason="done")
server.shutdown(join=True, timeout=5)
