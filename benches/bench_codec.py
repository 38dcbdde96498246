"""Codec micro-benchmark: peng3dnet-rs against msgpack-python, side by side.

Both run in the same process on the same data, so the numbers are comparable; the
output reports each operation's time and our speed as a ratio of theirs (higher is
better for us). This is a measurement, never a test: nothing here asserts a speed.

    ./run bench            # or: .venv/bin/python benches/bench_codec.py [--json FILE]
"""

import argparse
import json
import platform
import random
import time
import zlib

import msgpack

from peng3dnet import _core


def game_packet():
    return {"type": "move", "id": 1234, "pos": [12.5, -3.25, 100.0], "rot": 1.57, "seq": 99}


def game_state(players=2000):
    rng = random.Random(1)
    return {
        "tick": 5_000_000,
        "players": [
            {"id": i, "name": f"player{i}", "pos": [rng.random() * 1e3, rng.random() * 1e3, 0.0], "hp": 100}
            for i in range(players)
        ],
    }


def best_time(fn, arg, min_seconds=0.25, rounds=5):
    """Best per-call time over several rounds (seconds)."""
    calls = 1
    while True:  # calibrate: enough calls per round to take ~min_seconds / rounds
        start = time.perf_counter()
        for _ in range(calls):
            fn(arg)
        elapsed = time.perf_counter() - start
        if elapsed > min_seconds / rounds:
            break
        calls *= 2
    best = elapsed / calls
    for _ in range(rounds - 1):
        start = time.perf_counter()
        for _ in range(calls):
            fn(arg)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    codec = _core.FrameCodec()
    small, big = game_packet(), game_state()
    small_b, big_b = msgpack.packb(small), msgpack.packb(big)
    big_frame = codec.encode(64, big)
    cases = [
        ("pack small packet", _core.packb, msgpack.packb, small),
        ("unpack small packet", _core.unpackb, msgpack.unpackb, small_b),
        (f"pack game state ({len(big_b) // 1024} KiB)", _core.packb, msgpack.packb, big),
        (f"unpack game state ({len(big_b) // 1024} KiB)", _core.unpackb, msgpack.unpackb, big_b),
        (
            "frame + zlib, game state",
            lambda o: codec.encode(64, o),
            lambda o: zlib.compress(msgpack.packb(o), 6),
            big,
        ),
        (
            "inflate + unpack frame, game state",
            lambda f: _core.FrameCodec().feed(f),
            lambda f: msgpack.unpackb(zlib.decompress(f[10:])),
            big_frame,
        ),
    ]
    results = []
    print(f"{'operation':40} {'peng3dnet-rs':>14} {'msgpack-python':>15} {'ratio':>7}")
    for name, ours, theirs, arg in cases:
        t_ours, t_theirs = best_time(ours, arg), best_time(theirs, arg)
        ratio = t_theirs / t_ours
        results.append({"operation": name, "ours_s": t_ours, "theirs_s": t_theirs, "speedup": ratio})
        print(f"{name:40} {t_ours * 1e6:11.2f} µs {t_theirs * 1e6:12.2f} µs {ratio:6.2f}x")
    if args.json:
        meta = {"python": platform.python_version(), "msgpack": ".".join(map(str, msgpack.version))}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
