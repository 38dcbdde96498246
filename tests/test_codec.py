"""The frame codec from Python: framing, compression rule, zlib interop, limits."""

import os
import random
import struct
import zlib

import msgpack
import pytest

from peng3dnet import _core
from peng3dnet.errors import ProtocolError

HEADER = struct.Struct("!IH")
LENGTH = struct.Struct("!I")


def frame(pid, body, flags=0):
    """A frame assembled by hand with the reference's struct formats."""
    rest = HEADER.pack(pid, flags) + body
    return LENGTH.pack(len(rest)) + rest


def split(data):
    """(length prefix, pid, flags, body) of one frame."""
    (length,) = LENGTH.unpack_from(data)
    pid, flags = HEADER.unpack_from(data, 4)
    assert length == len(data) - 4
    return length, pid, flags, data[10:]


def test_encode_matches_hand_built_frame():
    codec = _core.FrameCodec()
    msg = {"x": 1, "list": [1, 2, 3], "name": "peng"}
    assert codec.encode(64, msg) == frame(64, msgpack.packb(msg))


@pytest.mark.parametrize(("body_len", "compressed"), [(8191, False), (8192, False), (8193, True)])
def test_compression_threshold_is_strict(body_len, compressed):
    msg = b"a" * (body_len - 3)  # bin16 header: 3 bytes
    assert len(msgpack.packb(msg)) == body_len
    _, pid, flags, body = split(_core.FrameCodec().encode(70, msg))
    assert pid == 70
    assert flags == (1 if compressed else 0)
    plain = zlib.decompress(body) if compressed else body
    assert plain == msgpack.packb(msg)


@pytest.mark.parametrize("level", [-1, 1, 6, 9])
def test_our_compressed_bodies_inflate_with_cpython_zlib(level):
    codec = _core.FrameCodec(compress_threshold=10, compress_level=level)
    msg = {"text": "lorem ipsum " * 500, "data": bytes(range(256)) * 4}
    _, _, flags, body = split(codec.encode(64, msg))
    assert flags == 1
    assert msgpack.unpackb(zlib.decompress(body)) == msg


@pytest.mark.parametrize(
    ("level", "msg"),
    [
        (0, {"text": "lorem ipsum " * 500}),  # level 0 stores: the body would grow
        (6, os.urandom(20_000)),  # random: tried, did not shrink
        (6, os.urandom(1 << 20)),  # random and large: sampled, not tried
    ],
)
def test_bodies_that_would_not_shrink_are_sent_uncompressed(level, msg):
    codec = _core.FrameCodec(compress_level=level)
    _, _, flags, body = split(codec.encode(64, msg))
    assert flags == 0
    assert body == msgpack.packb(msg)


def test_cpython_zlib_bodies_are_accepted():
    msg = {"k": "v" * 10_000}
    raw = frame(64, zlib.compress(msgpack.packb(msg), 6), flags=1)
    assert _core.FrameCodec().feed(raw) == [(64, 1, msg)]


def test_compression_can_be_disabled():
    msg = "x" * 100_000
    _, _, flags, body = split(_core.FrameCodec(compress=False).encode(64, msg))
    assert flags == 0
    assert body == msgpack.packb(msg)


def test_invalid_level_is_refused_with_a_hint():
    with pytest.raises(ValueError, match="between 0 and 9"):
        _core.FrameCodec(compress_level=10)


def test_stream_split_at_every_point():
    sender = _core.FrameCodec(compress_threshold=50)
    msgs = [None, {"a": [1, 2]}, "x" * 200, b"", list(range(30))]
    stream = b"".join(sender.encode(64 + i, m) for i, m in enumerate(msgs))
    for cut in range(len(stream) + 1):
        receiver = _core.FrameCodec()
        got = receiver.feed(stream[:cut]) + receiver.feed(stream[cut:])
        assert [m for _, _, m in got] == msgs, cut
        assert receiver.buffered == 0


def test_random_chunking():
    rng = random.Random(7)
    sender = _core.FrameCodec()
    msgs = [{"i": i, "pad": "z" * rng.randrange(0, 20_000)} for i in range(60)]
    stream = b"".join(sender.encode(64, m) for m in msgs)
    receiver = _core.FrameCodec()
    got, pos = [], 0
    while pos < len(stream):
        step = rng.choice([1, 2, 3, 5, 100, 4096, 65536])
        got += receiver.feed(stream[pos : pos + step])
        pos += step
    assert [m for _, _, m in got] == msgs


def test_partial_prefix_is_kept():
    codec = _core.FrameCodec()
    data = codec.encode(64, "hi")
    for n in (1, 2, 3):
        receiver = _core.FrameCodec()
        assert receiver.feed(data[:n]) == []
        assert receiver.buffered == n
        assert receiver.feed(data[n:]) == [(64, 0, "hi")]


def test_oversized_prefix_fails_before_the_body_arrives():
    codec = _core.FrameCodec(max_frame_len=1000)
    with pytest.raises(ProtocolError, match="exceeds the limit of 1000"):
        codec.feed(LENGTH.pack(1001))
    # The codec refuses anything after a failure: the stream position is lost.
    with pytest.raises(ProtocolError, match="already failed"):
        codec.feed(frame(64, b"\xc0"))


def test_4gib_prefix_is_refused_immediately():
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        _core.FrameCodec().feed(b"\xff\xff\xff\xff")


@pytest.mark.parametrize("length", [0, 1, 5])
def test_prefix_shorter_than_header(length):
    with pytest.raises(ProtocolError, match="shorter than the 6-byte header"):
        _core.FrameCodec().feed(LENGTH.pack(length) + b"\x00" * length)


def test_zlib_bomb_is_stopped():
    bomb = zlib.compress(b"\x00" * (64 << 20), 9)
    codec = _core.FrameCodec(max_inflated_len=1 << 20)
    with pytest.raises(ProtocolError, match="inflates beyond the limit"):
        codec.feed(frame(64, bomb, flags=1))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (frame(64, b"\xc0", flags=2), "not supported"),
        (frame(64, b"garbage", flags=1), "corrupt zlib"),
        (frame(64, zlib.compress(b"\xc0")[:-2], flags=1), "truncated zlib"),
        (frame(64, zlib.compress(b"\xc0") + b"xx", flags=1), "after the zlib body"),
        (frame(64, b"\xc1"), "invalid msgpack marker"),
        (frame(64, b"\x92\x01"), "incomplete msgpack"),
        (frame(64, b"\x01\x02"), "unexpected data after"),
        (frame(64, b"\x91" * 2000 + b"\x90"), "nesting deeper"),
        (frame(64, b"\xa1\xff"), "invalid packet body"),
        (frame(64, b"\x81\x01\x02"), "not allowed as a msgpack map key"),
    ],
)
def test_bad_bodies_raise_protocol_error(raw, message):
    with pytest.raises(ProtocolError, match=message):
        _core.FrameCodec().feed(raw)


def test_configurable_depth_limit():
    raw = frame(64, b"\x91\x91\x91\x90")
    assert _core.FrameCodec(max_depth=4).feed(raw) == [(64, 0, [[[[]]]])]
    with pytest.raises(ProtocolError, match="nesting deeper than 3"):
        _core.FrameCodec(max_depth=3).feed(raw)


def test_unknown_flag_bits_are_passed_through():
    # Bits other than compression and AES mean nothing to the protocol; they reach the
    # application (connection types receive the flags) untouched.
    assert _core.FrameCodec().feed(frame(64, b"\xc0", flags=0x80)) == [(64, 0x80, None)]


def test_build_info():
    info = _core.build_info()
    assert info["version"] == _core.__version__
    assert info["profile"] in ("debug", "release")
