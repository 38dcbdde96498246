"""The in-process transport: a game that hosts its own server, with no socket at all."""

import threading

import peng3dnet
from peng3dnet.packet import Packet

moved = threading.Event()


class Move(Packet):
    def receive(self, msg, cid=None):
        if cid is not None:  # the server confirms the move
            self.peer.send_message("game:move", {"ok": True, **msg}, cid)
        else:
            print("move confirmed:", msg)
            moved.set()


class GameServer(peng3dnet.Server):
    def _reg_packets_game(self):
        self.register_packet("game:move", Move(self.registry, self))


class Player(peng3dnet.Client):
    _reg_packets_game = GameServer._reg_packets_game


# "memory:NAME" instead of a host and port; everything else is unchanged.
server = GameServer(addr="memory:single-player")
server.runAsync()
server.process_async()

player = Player(addr="memory:single-player")
player.runAsync()
player.process_async()
player.wait_for_connection(5)
player.send_message("game:move", {"x": 3, "y": 4})
assert moved.wait(5)
print("the server sees its client at", server.clients[1].addr)

player.close_connection(reason="quit")
server.shutdown(join=True, timeout=5)
