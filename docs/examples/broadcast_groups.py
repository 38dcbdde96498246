"""Broadcast and groups: one encode, many recipients; named groups of clients."""

import collections
import threading
import time

import peng3dnet
from peng3dnet.packet import Packet

inboxes = collections.defaultdict(list)  # client name -> messages it received
arrived = threading.Semaphore(0)


class Note(Packet):
    def receive(self, msg, cid=None):
        inboxes[self.peer.name].append(msg["text"])
        arrived.release()


class NoteServer(peng3dnet.Server):
    def _reg_packets_notes(self):
        self.register_packet("chat:note", Note(self.registry, self))


class NoteClient(peng3dnet.Client):
    _reg_packets_notes = NoteServer._reg_packets_notes


server = NoteServer(addr=("127.0.0.1", 0))
server.bind()
server.runAsync()
server.process_async()
port = server.sock.getsockname()[1]

clients = []
for name in ("ann", "bob", "cat"):
    client = NoteClient(addr=("127.0.0.1", port))
    client.name = name
    client.runAsync()
    client.process_async()
    client.wait_for_connection(5)
    clients.append(client)
while len(server.clients) < 3:  # the server's side of each handshake
    time.sleep(0.01)
ann, bob, cat = sorted(server.clients)  # cids, in the order the clients connected

sent = server.broadcast("chat:note", {"text": "welcome, everyone"})  # -> 3 clients
server.join_group(ann, "red")
server.join_group(bob, "red")
sent += server.send_group("red", "chat:note", {"text": "red team only"}, exclude=ann)  # -> bob
sent += server.broadcast("chat:note", {"text": "not for cat"}, exclude=cat)  # -> ann, bob
print("members of red:", sorted(server.members("red")), "groups of ann:", server.groups_of(ann))

for _ in range(sent):
    assert arrived.acquire(timeout=5), "a message did not arrive"
for name in ("ann", "bob", "cat"):
    print(name, "got", inboxes[name])

for client in clients:
    client.close_connection(reason="done")
server.shutdown(join=True, timeout=5)
