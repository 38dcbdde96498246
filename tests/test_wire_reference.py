"""Our frames against the bytes the reference implementation writes to a live socket.

For every msgpack type and for body sizes around the compression threshold, the frame
our codec builds must equal, byte for byte, what the reference's ``send_message`` puts
on the wire. Compressed frames may differ in their zlib bytes (the zlib implementations
differ legitimately), so for them the prefix semantics, the header and the inflated body
must be identical. Finally our decoder must read the reference's stream back to the
values the reference's own msgpack would produce.
"""

import math
import os
import random
import zlib

import msgpack
import pytest
from support import capture_sent_bytes, split_frames

from peng3dnet import _core


def body_of_size(n):
    """A bytes value whose msgpack encoding is exactly ``n`` bytes long."""
    data = b"x" * (n - 2) if n - 2 <= 255 else b"x" * (n - 3)
    assert len(msgpack.packb(data)) == n
    return data


def game_state(players):
    rng = random.Random(players)
    return {
        "tick": 123456,
        "players": [
            {"id": i, "name": f"player{i}", "pos": [rng.random() * 100, rng.random() * 100, 0.0], "hp": 100}
            for i in range(players)
        ],
    }


VALUES = [
    None,
    True,
    False,
    0,
    1,
    127,
    128,
    255,
    256,
    65535,
    65536,
    2**32 - 1,
    2**32,
    2**63,
    2**64 - 1,
    -1,
    -32,
    -33,
    -128,
    -129,
    -32768,
    -32769,
    -(2**31) - 1,
    -(2**63),
    0.0,
    -0.0,
    1.5,
    -2.25,
    math.inf,
    -math.inf,
    1e300,
    "",
    "a",
    "é",
    "x" * 31,
    "x" * 32,
    "x" * 255,
    "x" * 256,
    "x" * 65535,
    "x" * 65536,
    b"",
    b"\x00",
    b"\xff" * 255,
    b"\xff" * 256,
    bytearray(b"abc"),
    [],
    [1],
    list(range(15)),
    list(range(16)),
    list(range(70000)),
    (1, "two", 3.0),
    {},
    {"a": 1},
    {str(i): i for i in range(15)},
    {str(i): i for i in range(16)},
    {b"bytes-key": [None, {"nested": {"deeper": [1, 2, 3]}}]},
    msgpack.ExtType(1, b"abc"),
    msgpack.ExtType(127, b"x" * 16),
    msgpack.Timestamp(1, 0),
    msgpack.Timestamp(1, 5),
    msgpack.Timestamp(2**34, 1),
    game_state(5),
    game_state(2000),
    os.urandom(20000),  # incompressible
    "z" * 200_000,  # very compressible
]
BOUNDARY_SIZES = [99, 100, 101, 8191, 8192, 8193]

PACKETS = (
    [(64 + i, v) for i, v in enumerate(VALUES)]
    + [(200, body_of_size(n)) for n in BOUNDARY_SIZES]
    + [(16, {"reason": "internal ids are framed the same way"}), (2**32 - 1, "largest pid")]
)

CONFIGS = {
    "defaults": {},
    "threshold-100-level-1": {"net.compress.threshold": 100, "net.compress.level": 1},
    "level-9": {"net.compress.level": 9},
    "compression-off": {"net.compress.enabled": False},
}


def codec_for(cfg):
    return _core.FrameCodec(
        compress=cfg.get("net.compress.enabled", True),
        compress_threshold=cfg.get("net.compress.threshold", 8192),
        compress_level=cfg.get("net.compress.level", 6),
    )


@pytest.mark.parametrize("config", CONFIGS)
def test_frames_equal_the_reference_on_the_wire(config, ref_python, tmp_path):
    cfg = CONFIGS[config]
    theirs = split_frames(capture_sent_bytes(ref_python, cfg, PACKETS, tmp_path))
    assert len(theirs) == len(PACKETS)
    codec = codec_for(cfg)
    compressed_seen = 0
    for (pid, value), (their_pid, their_flags, their_body, their_raw) in zip(PACKETS, theirs):
        ours_raw = codec.encode(pid, value)
        if their_flags == 0:
            assert ours_raw == their_raw, f"packet {pid}: frames differ"
            continue
        our_pid, our_flags, our_body, _ = split_frames(ours_raw)[0]
        plain = zlib.decompress(their_body)
        assert plain == msgpack.packb(value)
        # The original compresses even what does not shrink (random bytes); we send such
        # a body uncompressed, which the original reads as any other.
        if len(their_body) >= len(plain):
            assert (our_pid, our_flags, our_body) == (pid, 0, plain), f"packet {pid}"
            continue
        compressed_seen += 1
        assert (our_pid, our_flags) == (their_pid, their_flags) == (pid, 1)
        assert zlib.decompress(our_body) == plain
    if cfg.get("net.compress.enabled", True):
        assert compressed_seen > 0
    else:
        assert compressed_seen == 0


def test_our_decoder_reads_the_reference_stream(ref_python, tmp_path):
    stream = capture_sent_bytes(ref_python, {"net.compress.threshold": 100}, PACKETS, tmp_path)
    decoder = _core.FrameCodec()
    # Feed in uneven pieces to cross frame boundaries at many places.
    got, pos, step = [], 0, 1
    while pos < len(stream):
        got += decoder.feed(stream[pos : pos + step])
        pos += step
        step = step * 3 % 65521 + 1
    assert [pid for pid, _, _ in got] == [pid for pid, _ in PACKETS]
    for (pid, value), (_, _, msg) in zip(PACKETS, got):
        expected = msgpack.unpackb(msgpack.packb(value))
        assert msgpack.packb(msg) == msgpack.packb(expected), f"packet {pid}"
