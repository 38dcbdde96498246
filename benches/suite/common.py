"""What every implementation's benchmark peer shares: the scenarios' messages, the
framing of the hand-written peers, and process measurements.

The hand-written peers (asyncio, plain sockets) use peng3dnet's framing: a 4-byte
big-endian length, a 6-byte header (packet kind, flags) and a msgpack body. The pyzmq
peer sends ``[kind, payload]`` as one msgpack message per zmq message.
"""

import os
import random
import struct
import time

import msgpack

# Message kinds (packet ids of the hand-written peers).
ECHO, ITEM, DONE, READY, UPDATE, BLOB = range(64, 70)
NAMES = {
    ECHO: "bench:echo",
    ITEM: "bench:item",
    DONE: "bench:done",
    READY: "bench:ready",
    UPDATE: "bench:update",
    BLOB: "bench:blob",
}

PREFIX = struct.Struct("!I")

WAVE = 100
"""The conns scenario starts clients in waves of this many, each wave connected (a
handshake, or one echo round trip for the peers without one) before the next."""
HEADER = struct.Struct("!IIH")  # length, kind, flags


def small_message(seq):
    """The request of the rtt and stream scenarios: a small dict, as games send."""
    return {"seq": seq, "op": "move", "x": 1.5, "y": -2.25, "tags": ["run", "jump"]}


def update_message(tick):
    """The fan-out update: about 1 kB of game state."""
    players = [{"id": i, "x": i * 1.5, "y": -i * 0.5, "hp": 100} for i in range(25)]
    return {"tick": tick, "players": players}


def blob(size):
    """``size`` incompressible bytes (the same on every run)."""
    return random.Random(size).randbytes(size)


def frame(kind, payload):
    body = msgpack.packb(payload)
    return HEADER.pack(len(body) + 6, kind, 0) + body


def read_frame(stream):
    """One frame from a buffered binary stream; (kind, payload), or None at the end."""
    prefix = stream.read(4)
    if len(prefix) < 4:
        return None
    (length,) = PREFIX.unpack(prefix)
    rest = stream.read(length)
    if len(rest) < length:
        return None
    kind = struct.unpack_from("!I", rest)[0]
    return kind, msgpack.unpackb(rest[6:])


def cpu_seconds():
    """User + system CPU time of this process so far."""
    times = os.times()
    return times.user + times.system


def rss_bytes():
    """Resident memory of this process."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def raise_fd_limit():
    """Many connections need many file descriptors: lift the soft limit to the hard one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def percentile(sorted_values, fraction):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def rtt_result(samples_ns, seconds, cpu):
    samples = sorted(samples_ns)
    return {
        "count": len(samples),
        "seconds": seconds,
        "per_second": len(samples) / seconds,
        "p50_us": percentile(samples, 0.50) / 1000,
        "p99_us": percentile(samples, 0.99) / 1000,
        "cpu": cpu,
    }


def measure_rtt(params, round_trip):
    """The rtt scenario for a blocking client: ``round_trip(msg)`` sends ``msg`` and
    waits for its echo; warm-up rounds first, then each round trip timed."""
    msg = small_message(0)
    for _ in range(params["warmup"]):
        round_trip(msg)
    samples = []
    with Clock() as clock:
        for seq in range(params["count"]):
            msg["seq"] = seq
            started = time.perf_counter_ns()
            round_trip(msg)
            samples.append(time.perf_counter_ns() - started)
    return rtt_result(samples, clock.seconds, clock.cpu)


def measure_stream(params, send, await_done):
    """The stream scenario for a blocking client: ``send(msg)`` for every message, then
    ``await_done()`` until the server says it has handled the last one."""
    msg = small_message(0)
    with Clock() as clock:
        for seq in range(params["count"]):
            msg["seq"] = seq
            send(msg)
        await_done()
    return {"count": params["count"], "seconds": clock.seconds, "cpu": clock.cpu}


def measure_big(params, round_trip):
    """The big scenario for a blocking client: ``round_trip(payload)`` sends a payload
    and waits for its echo, for each size; sizes after one that took longer than
    ``give_up_after`` seconds are skipped (recorded as missing)."""
    seconds = {}
    for size in params["sizes"]:
        payload = blob(size)
        with Clock() as clock:
            round_trip(payload)
        seconds[str(size)] = clock.seconds
        if clock.seconds > params["give_up_after"]:
            break
    return {"seconds": seconds}


class Clock:
    """Wall and CPU time of a measured section."""

    def __enter__(self):
        self.started = time.perf_counter()
        self.cpu_started = cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started
        self.cpu = cpu_seconds() - self.cpu_started
