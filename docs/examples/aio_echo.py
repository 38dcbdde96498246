"""The asyncio API: a server and a client on one event loop, no threads of their own."""

import asyncio

from peng3dnet import aio
from peng3dnet.packet import Packet


class Echo(Packet):
    # A handler may be a coroutine; it runs as a task on the loop.
    async def receive(self, msg, cid=None):
        await self.peer.aio.send(self, msg, cid)


async def main():
    # "game:note" has no handler (None): the server reads it with recv().
    packets = {"game:echo": Echo, "game:note": None}
    async with aio.start_server(("127.0.0.1", 0), packets=packets) as server:
        host, port = server.address
        async with aio.connect((host, port), packets=["game:echo", "game:note"]) as client:
            await client.send("game:echo", {"hello": "world"})
            print("client got", await client.recv(timeout=5))
            await client.send("game:note", 42)
            cid, name, msg = await server.recv(timeout=5)
            print(f"server got {name} {msg} from client {cid}")
            print("client statistics:", {k: client.stats()[k] for k in ("packets_in", "packets_out")})


asyncio.run(main())
