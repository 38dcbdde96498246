"""Heartbeats and statistics: dead peers are found, and traffic is counted."""

import time

import peng3dnet
from peng3dnet.packet import Packet


class Blob(Packet):
    pass


class StatsServer(peng3dnet.Server):
    def _reg_packets_blob(self):
        self.register_packet("demo:blob", Blob(self.registry, self))


class StatsClient(peng3dnet.Client):
    _reg_packets_blob = StatsServer._reg_packets_blob


# A probe every second; a peer silent for 3 s is closed with the reason "timeout".
cfg = {"net.keepalive.interval": 1, "net.keepalive.timeout": 3}
server = StatsServer(addr=("127.0.0.1", 0), cfg=cfg)
server.bind()
server.runAsync()
server.process_async()
port = server.sock.getsockname()[1]

client = StatsClient(addr=("127.0.0.1", port), cfg=cfg)
client.runAsync()
client.process_async()
client.wait_for_connection(5)
for _ in range(100):
    client.send_message("demo:blob", {"data": "x" * 20_000})  # compressed on the wire

time.sleep(1.5)  # long enough for a heartbeat round trip
stats = client.stats()
print(f"heartbeats: {stats['heartbeat']}, rtt: {stats['rtt'] * 1e6:.0f} us")
print(f"sent {stats['packets_out']} packets, {stats['payload_out']} payload bytes")
print(f"on the wire: {stats['bytes_out']} bytes ({stats['compression_out']:.3f} per payload byte)")
totals = server.stats(clients=True)
print(f"server: {totals['connections']} connection(s), {totals['packets_in']} packets in")
print("memory budget:", totals["memory_budget"], "bytes, in use:", totals["memory_used"])

client.close_connection(reason="done")
server.shutdown(join=True, timeout=5)
