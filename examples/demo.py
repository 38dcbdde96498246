"""peng3dnet-rs demo: the native codec at work.

Encodes a few packets the way peng3dnet puts them on the wire, cuts the byte stream into
awkward pieces (one byte at a time, through the middle of length prefixes and headers),
decodes it again, and shows what the decoder does with hostile input.
"""

import struct
import time
import zlib

import msgpack

from peng3dnet import _core
from peng3dnet.errors import ProtocolError


def main():
    codec = _core.FrameCodec()
    packets = [
        (64, {"type": "chat", "nick": "alice", "text": "hello, world"}),
        (65, {"type": "state", "players": [{"id": i, "pos": [i * 1.5, 2.0 * i]} for i in range(400)]}),
        (66, ["a list", 1, 2.5, None, True, b"\x00\x01"]),
    ]
    stream = b"".join(codec.encode(pid, msg) for pid, msg in packets)
    print(f"encoded {len(packets)} packets into {len(stream)} bytes")
    for pid, msg in packets:
        encoded = codec.encode(pid, msg)
        (length,) = struct.unpack_from("!I", encoded)
        _, flags = struct.unpack_from("!IH", encoded, 4)
        plain = len(msgpack.packb(msg))
        note = f"zlib {plain} -> {length - 6} bytes" if flags & 1 else f"{plain} bytes, uncompressed"
        print(f"  packet {pid}: frame of {4 + length} bytes ({note})")

    receiver = _core.FrameCodec()
    started = time.perf_counter()
    decoded = []
    for i in range(len(stream)):
        decoded += receiver.feed(stream[i : i + 1])
    elapsed = time.perf_counter() - started
    assert [(pid, msg) for pid, _, msg in decoded] == [
        (pid, msgpack.unpackb(msgpack.packb(m))) for pid, m in packets
    ]
    print(f"decoded all {len(decoded)} packets back, fed one byte at a time ({elapsed * 1000:.1f} ms)")

    hostile = {
        "4 GiB length prefix": b"\xff\xff\xff\xff",
        "zlib bomb (64 MiB of zeros)": frame(64, zlib.compress(b"\0" * (64 << 20), 9), 1),
        "AES flag": frame(64, b"\xc0", 2),
        "nested 100000 deep": frame(64, b"\x91" * 100_000 + b"\xc0"),
        "invalid msgpack": frame(64, b"\xc1"),
    }
    print("hostile input is refused with a reason:")
    for name, data in hostile.items():
        try:
            _core.FrameCodec(max_inflated_len=16 << 20).feed(data)
        except ProtocolError as exc:
            print(f"  {name}: {exc}")
    print("summary: codec OK")


def frame(pid, body, flags=0):
    rest = struct.pack("!IH", pid, flags) + body
    return struct.pack("!I", len(rest)) + rest


if __name__ == "__main__":
    main()
