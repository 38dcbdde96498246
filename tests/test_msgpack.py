"""Our msgpack codec against msgpack-python, the library the reference uses.

Encoding must be byte-identical to ``msgpack.packb(obj)`` and decoding must give what
``msgpack.unpackb(data)`` gives, including the exception class for bad input.
"""

import collections
import enum
import math
import struct

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peng3dnet import _core

# --- comparison ----------------------------------------------------------------------


def same(a, b):
    """Deep equality that also requires equal types and treats NaN as equal to NaN.

    Iterative, so that values nested 1024 levels deep can be compared.
    """
    pending = [(a, b)]
    while pending:
        a, b = pending.pop()
        if type(a) is not type(b):
            return False
        if isinstance(a, float):
            if math.isnan(a) and math.isnan(b):
                continue
            if a != b or math.copysign(1, a) != math.copysign(1, b):
                return False
        elif isinstance(a, list):
            if len(a) != len(b):
                return False
            pending.extend(zip(a, b))
        elif isinstance(a, dict):
            if list(a) != list(b):
                return False
            pending.extend((a[k], b[k]) for k in a)
        elif a != b:
            return False
    return True


def outcome(fn, data):
    """('ok', value) or ('error', exception class) of ``fn(data)``."""
    try:
        return "ok", fn(data)
    except Exception as exc:
        return "error", type(exc)


def assert_same_outcome(data):
    ours = outcome(_core.unpackb, data)
    theirs = outcome(msgpack.unpackb, data)
    assert ours[0] == theirs[0], (data, ours, theirs)
    if ours[0] == "ok":
        assert same(ours[1], theirs[1]), (data, ours, theirs)
    else:
        assert ours[1] is theirs[1], (data, ours, theirs)


# --- strategies ----------------------------------------------------------------------

ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
scalars = (
    st.none()
    | st.booleans()
    | ints
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.binary()
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=40))
    | st.builds(msgpack.Timestamp, st.integers(-(2**63), 2**63 - 1), st.integers(0, 999_999_999))
)
keys = st.text() | st.binary()
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=20)
        | st.lists(children, max_size=5).map(tuple)
        | st.dictionaries(keys, children, max_size=20)
    ),
    max_leaves=60,
)

# --- encoding ------------------------------------------------------------------------


@given(values)
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
def test_packb_is_byte_identical(value):
    assert _core.packb(value) == msgpack.packb(value)


@given(values)
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
def test_unpackb_equals_msgpack_python(value):
    data = msgpack.packb(value)
    assert same(_core.unpackb(data), msgpack.unpackb(data))


@given(st.binary(max_size=64))
@settings(max_examples=3000)
def test_arbitrary_bytes_same_outcome(data):
    assert_same_outcome(data)


@given(values, st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_encodings_same_outcome(value, data):
    encoded = bytearray(msgpack.packb(value))
    # Flip, cut or extend: the malformed neighbours of valid input.
    choice = data.draw(st.sampled_from(["flip", "cut", "extend"]))
    if choice == "flip" and encoded:
        i = data.draw(st.integers(0, len(encoded) - 1))
        encoded[i] = data.draw(st.integers(0, 255))
    elif choice == "cut":
        encoded = encoded[: data.draw(st.integers(0, len(encoded)))]
    else:
        encoded += data.draw(st.binary(min_size=1, max_size=4))
    assert_same_outcome(bytes(encoded))


# --- size-class boundaries -----------------------------------------------------------

INT_BOUNDARIES = [
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
    2**63 - 1,
    2**63,
    2**64 - 1,
    -1,
    -31,
    -32,
    -33,
    -127,
    -128,
    -129,
    -32767,
    -32768,
    -32769,
    -(2**31),
    -(2**31) - 1,
    -(2**63),
]
LEN_BOUNDARIES = [0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536]


@pytest.mark.parametrize("value", INT_BOUNDARIES)
def test_int_boundaries(value):
    data = msgpack.packb(value)
    assert _core.packb(value) == data
    assert same(_core.unpackb(data), value)


@pytest.mark.parametrize("n", LEN_BOUNDARIES)
def test_length_boundaries(n):
    cases = [
        "a" * n,
        "é" * (n // 2),  # multi-byte UTF-8: the header counts bytes
        b"\x00" * n,
        bytearray(b"\x01" * n),
        list(range(n % 200)) * (n // 200 + 1) if n else [],
        [None] * n,
        {str(i): i for i in range(n)},
        {bytes([i % 256, i // 256]): None for i in range(n)},
    ]
    for value in cases:
        data = msgpack.packb(value)
        assert _core.packb(value) == data, (type(value), n)
        assert same(_core.unpackb(data), msgpack.unpackb(data)), (type(value), n)


def test_float_specials():
    for value in [0.0, -0.0, math.inf, -math.inf, math.nan, 1e308, 5e-324, 1.5]:
        assert _core.packb(value) == msgpack.packb(value)
    # float32 on the wire decodes to the same Python float.
    data = struct.pack(">Bf", 0xCA, 1.1)
    assert same(_core.unpackb(data), msgpack.unpackb(data))


def test_ext_and_timestamp_forms():
    for value in [
        msgpack.ExtType(0, b""),
        msgpack.ExtType(127, b"x" * 300),
        msgpack.ExtType(5, b"x" * 70000),
        msgpack.Timestamp(0, 0),
        msgpack.Timestamp(2**32 - 1, 0),
        msgpack.Timestamp(2**32, 0),
        msgpack.Timestamp(1, 999_999_999),
        msgpack.Timestamp(2**34, 1),
        msgpack.Timestamp(-1, 0),
    ]:
        data = msgpack.packb(value)
        assert _core.packb(value) == data
        assert same(_core.unpackb(data), msgpack.unpackb(data))


# --- subclasses and non-default types --------------------------------------------------


class Color(enum.IntEnum):
    RED = 300


class MyStr(str):
    pass


class MyDict(dict):
    pass


Point = collections.namedtuple("Point", "x y")


def test_subclasses_pack_like_their_base():
    for value in [
        Color.RED,
        MyStr("hello"),
        MyDict(a=1, b=[1, 2]),
        collections.OrderedDict([("z", 1), ("a", 2)]),
        Point(1, 2),
        bytearray(b"abc"),
        memoryview(b"abcd"),
        memoryview(b"abcd").cast("i"),
        {"nested": [Point(1, MyStr("x")), Color.RED]},
    ]:
        assert _core.packb(value) == msgpack.packb(value), value


def test_dict_subclass_uses_items():
    class Filtered(dict):
        def items(self):
            return [(k, v) for k, v in super().items() if not k.startswith("_")]

    value = Filtered(a=1, _secret=2)
    # Like msgpack-python we pack what items() yields. msgpack-python takes the map
    # header from len() instead, which makes a corrupt map when the two disagree; we
    # count the pairs actually written, so the output always decodes.
    assert _core.packb(value) == msgpack.packb({"a": 1})
    assert msgpack.packb(value)[0] == 0x82  # their header claims 2 pairs
    assert same(_core.unpackb(_core.packb(value)), {"a": 1})


# --- packing errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "exc"),
    [
        ({1, 2}, TypeError),
        (object(), TypeError),
        (1j, TypeError),
        (2**64, OverflowError),
        (-(2**63) - 1, OverflowError),
        ("\ud800", UnicodeEncodeError),
        (memoryview(b"abcdef")[::2], BufferError),
    ],
)
def test_pack_errors_match(value, exc):
    with pytest.raises(exc) as ours:
        _core.packb(value)
    with pytest.raises(exc) as theirs:
        msgpack.packb(value)
    if exc is TypeError:
        assert str(ours.value) == str(theirs.value)


def test_pack_nesting_limit_matches():
    def nest(n):
        value = 1
        for _ in range(n):
            value = [value]
        return value

    assert _core.packb(nest(1024)) == msgpack.packb(nest(1024))
    for packer in (_core.packb, msgpack.packb):
        with pytest.raises(ValueError, match="recursion limit exceeded"):
            packer(nest(1025))
    recursive = []
    recursive.append(recursive)
    with pytest.raises(ValueError):
        _core.packb(recursive)


# --- unpacking errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x92\x01",  # truncated array
        b"\x01\x02",  # extra data
        b"\xc1",  # reserved marker
        b"\xa2\xff\xfe",  # invalid UTF-8
        b"\x81\x01\x02",  # int key
        b"\x81\xc0\x02",  # None key
        b"\x81\x91\x01\x02",  # list key
        b"\xdd\xff\xff\xff\xff",  # length beyond the input
        b"\xd4\xfe\x00",  # negative ext code other than -1
        b"\xd4\xff\x00",  # timestamp of length 1
        b"\xd7\xff" + b"\xff" * 8,  # timestamp with nanoseconds out of range
        b"\x91" * 1024 + b"\x90",  # 1025 nested containers
        b"\x91" * 1023 + b"\x90",  # 1024: accepted
    ],
)
def test_unpack_errors_match(data):
    assert_same_outcome(data)


def test_extra_data_carries_the_value():
    with pytest.raises(msgpack.ExtraData) as info:
        _core.unpackb(b"\x01\x02\x03")
    assert info.value.unpacked == 1
    assert info.value.extra == b"\x02\x03"


def test_depth_and_container_limits_are_configurable():
    assert _core.unpackb(b"\x91\x91\x90", max_depth=3) == [[[]]]
    with pytest.raises(msgpack.StackError):
        _core.unpackb(b"\x91\x91\x91\x90", max_depth=3)
    with pytest.raises(ValueError, match="exceeds the limit"):
        _core.unpackb(b"\x93\x01\x02\x03", max_container_len=2)


def test_every_truncation_of_a_big_value_is_refused():
    value = {"players": [{"id": i, "name": f"p{i}", "pos": [i * 1.5, -i]} for i in range(20)]}
    data = msgpack.packb(value)
    for cut in range(len(data)):
        with pytest.raises(ValueError):
            _core.unpackb(data[:cut])


# --- received packets ------------------------------------------------------------------


def test_received_packets_decode_like_unpackb_with_repeated_short_strings():
    """Received packets go through a per-batch cache of short strings (keys repeat from
    packet to packet); what arrives must still equal ``msgpack.unpackb`` exactly: the
    cache must never hand back a string of other bytes (hash collisions, strings that
    differ only at the end or only in length, the 16/17-byte boundary, non-ASCII)."""
    import random

    from support import Harness, wait_until

    import peng3dnet
    from peng3dnet.packet import Packet

    rng = random.Random(2026)
    alphabet = ["a", "b", "é", "€", "\U0001f600", "0", " "]
    words = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 19))) for _ in range(400)]
    words += ["x" * 16, "x" * 17, "x" * 15 + "y", "x" * 16 + "y", "", "seq", "seq "]
    messages = []
    for n in range(3000):
        keys = rng.sample(words, 4)
        messages.append({k: [rng.choice(words), n, {rng.choice(words): rng.choice(words)}] for k in keys})

    received = []

    class Collect(Packet):
        def receive(self, msg, cid=None):
            received.append(msg)

    class Srv(peng3dnet.Server):
        def _reg_packets_test(self):
            self.register_packet("test:m", Collect(self.registry, self))

    class Cl(peng3dnet.Client):
        def _reg_packets_test(self):
            self.register_packet("test:m", Packet(self.registry, self))

    harness = Harness("memory")
    try:
        server = harness.server(Srv, process=False)
        client = harness.client(server, Cl, wait=False)
        client.wait_for_connection(5)
        for msg in messages:
            client.send_message("test:m", msg)
        # One process loop takes many packets per batch, so the cache is exercised.
        assert wait_until(lambda: server.process() is not None and len(received) >= len(messages), 20)
    finally:
        harness.close()
    expected = [msgpack.unpackb(msgpack.packb(m)) for m in messages]
    assert len(received) == len(expected)
    for got, want in zip(received, expected):
        assert same(got, want)
