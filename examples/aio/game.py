"""A small game on the asyncio API: a server that keeps every player's position and
tells all players about each move, and two players that move and watch.

Runs the server and its players in one process, as a single-player game hosting its
own server would: over the in-process transport by default, or over TCP on loopback.

python examples/aio/game.py                     # memory:game, no sockets
python examples/aio/game.py --tcp               # 127.0.0.1, a free port
"""

import argparse
import asyncio

from peng3dnet import aio
from peng3dnet.packet import Packet


class Move(Packet):
    """Player to server: ``{"dx", "dy"}``. The server moves the player and tells all."""

    def receive(self, msg, cid=None):
        game = self.peer.game
        x, y = game.get(cid, (0, 0))
        game[cid] = (x + int(msg["dx"]), y + int(msg["dy"]))
        self.peer.broadcast("game:state", {"positions": {str(c): p for c, p in game.items()}})


# The players register the same names; the state packet has no handler of its own, so
# the players read it with recv().
PACKETS = {"game:move": Move, "game:state": None}
PLAYER_PACKETS = ["game:move", "game:state"]


async def player(address, name, moves):
    async with aio.connect(address, packets=PLAYER_PACKETS) as client:
        last = None
        for dx, dy in moves:
            await client.send("game:move", {"dx": dx, "dy": dy})
            _, last = await client.recv("game:state", timeout=5)
        print(f"{name}: made {len(moves)} moves, saw {last['positions']}", flush=True)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tcp", action="store_true", help="listen on 127.0.0.1 instead of memory:game")
    args = parser.parse_args()
    address = ("127.0.0.1", 0) if args.tcp else "memory:game"
    joined = []
    async with aio.start_server(address, packets=PACKETS, on_connect=joined.append) as server:
        server.peer.game = {}
        print(f"server on {server.address[0]}:{server.address[1]}", flush=True)
        await asyncio.gather(
            player(server.address, "alice", [(1, 0)] * 5),
            player(server.address, "bob", [(0, 2)] * 3),
        )
        positions = dict(server.peer.game)
    print(f"final positions: {sorted(positions.values())}; players joined: {len(joined)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
