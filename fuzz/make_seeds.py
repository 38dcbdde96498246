"""Writes the seed corpus of the fuzz targets (run once; the files are committed).

    .venv/bin/python fuzz/make_seeds.py
"""

import pathlib
import struct
import zlib

import msgpack

HERE = pathlib.Path(__file__).parent / "corpus"


def frame(pid, body, flags=0):
    rest = struct.pack("!IH", pid, flags) + body
    return struct.pack("!I", len(rest)) + rest


def write(target, name, data):
    path = HERE / target
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_bytes(data)


VALUES = {
    "hello": {"version": "0.2.0", "protoversion": 2},
    "settype": {"conntype": "classic"},
    "handshake": {"version": "0.2.0", "protoversion": 2, "registry": {"peng3dnet:internal.hello": 1, "fuzz:a": 64}},
    "accept": {"success": True},
    "close": {"reason": "bye"},
    "mixed": [None, True, 1, -1, 2**40, 1.5, "s", b"b", [1, [2]], {"k": {"n": None}}],
    "ext": [msgpack.ExtType(5, b"xy"), msgpack.Timestamp(1, 2)],
    "big": {"players": [{"id": i, "pos": [i, -i]} for i in range(50)]},
}

for name, value in VALUES.items():
    body = msgpack.packb(value)
    write("msgpack", name, body)
    write("handshake", name, bytes([3, {"hello": 1, "settype": 2, "handshake": 3, "accept": 4}.get(name, 16), 3]) + body)
    write("frame_decoder", name, b"\x05" + frame(64, body) + frame(65, zlib.compress(body), 1))
    write("inflate", name, zlib.compress(body, 6))
write("frame_decoder", "prefix-only", b"\x01\x00\x00\x00")
write("frame_decoder", "aes", b"\x03" + frame(64, b"\xc0", 2))
write("inflate", "empty", zlib.compress(b""))
