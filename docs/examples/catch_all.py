"""A catch-all handler: packets whose id this side has not registered."""

import threading

import peng3dnet
from peng3dnet.packet import Packet

unknown = threading.Event()


class LenientServer(peng3dnet.Server):
    def on_unknown_packet(self, pid, msg, cid=None):
        # Called instead of logging and dropping the packet (the default).
        print(f"client {cid} sent packet id {pid}, which this server does not know: {msg!r}")
        unknown.set()


class NewerClient(peng3dnet.Client):
    # A newer client knows a packet the server has never heard of. With the registry
    # sync switched off the client keeps its own ids, so the server sees an unknown id.
    def _reg_packets_new(self):
        self.register_packet("game:emote", Packet(self.registry, self), 900)


server = LenientServer(addr=("127.0.0.1", 0))
server.bind()
server.runAsync()
server.process_async()
port = server.sock.getsockname()[1]

client = NewerClient(addr=("127.0.0.1", port), cfg={"net.registry.autosync": False})
client.runAsync()
client.process_async()
client.wait_for_connection(5)
client.send_message("game:emote", {"emote": "wave"})
assert unknown.wait(5), "the server did not report the packet"

client.close_connection(reason="done")
server.shutdown(join=True, timeout=5)
