"""Peer script: connect a peng3dnet Client to a plain TCP socket and send packets.

Run with either implementation's interpreter:

    python send_packets.py PORT SPEC_PICKLE

SPEC_PICKLE holds ``{"cfg": {...}, "packets": [(pid, data), ...]}``. The client is never
started (no handshake): the listening side only records the bytes that
``send_message`` writes, which is how tests capture frames from a live implementation.
"""

import os
import pickle
import sys

os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")

import peng3dnet
from peng3dnet.packet import Packet


def main():
    port, spec_path = int(sys.argv[1]), sys.argv[2]
    with open(spec_path, "rb") as f:
        spec = pickle.load(f)
    client = peng3dnet.Client(addr=("127.0.0.1", port), cfg=dict(spec["cfg"]))
    client.initialize()
    for pid in sorted({pid for pid, _ in spec["packets"]}):
        if pid >= 64:
            client.register_packet(f"capture:p{pid}", Packet(client.registry, client), pid)
    client.connect()
    for pid, data in spec["packets"]:
        client.send_message(pid, data)
    # The reference writes from send_message itself; make sure nothing is left over.
    while getattr(client, "_write_buf", b""):
        client.pump_write_buffer()
    client.sock.close()


if __name__ == "__main__":
    main()
