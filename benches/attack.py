"""Memory under attack: a peng3dnet server, an honest client doing round trips, and
three kinds of attackers at once.

    python benches/attack.py --server-python PY [--cfg JSON] [--bombs 20]
        [--non-readers 20] [--big-frames 20] [--json OUT]

Attackers (raw sockets from this process; each completes the handshake first, as any
client may):

* bomb: one compressed packet of 1 GiB of zeros (about 1 MiB on the wire);
* non-reader: subscribes to a stream of 256 KiB blobs ("attack:pull": 1 GiB in all)
  and never reads;
* big frame: announces a frame just under ``net.limits.max_frame`` and sends all of
  it, as fast as the server takes it.

The honest client is a raw-socket peng3dnet client too (the same for every server
implementation): it does echo round trips, first alone (idle latency), then during the
attack, then a fresh one after it (is the server still usable?). The server runs in its
own process (``attack_server.py``); its peak RSS is its VmHWM. The original
implementation runs under an address-space limit (``--as-limit``) so that an attack it
does not survive cannot take the machine with it.

Prints (and writes with ``--json``) a JSON report. ``./run attack`` runs it for ours
with the default settings and for the original. ``tests/test_budget.py`` runs it
scaled down, with assertions.
"""

import argparse
import json
import os
import pathlib
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import msgpack

HERE = pathlib.Path(__file__).resolve().parent
LENGTH = struct.Struct("!I")
HEADER = struct.Struct("!IH")
PID_CLOSE = 16
# The close reason of the honest client, which the report leaves out.
HONEST_DONE = "honest client done"
MIB = 1024 * 1024


def frame(pid, body, flags=0):
    return LENGTH.pack(len(body) + 6) + HEADER.pack(pid, flags) + body


class Wire:
    """A raw peng3dnet client connection."""

    def __init__(self, port, rcvbuf=None, timeout=10.0):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.reason = None
        self.registry = self.handshake()

    def next_frame(self):
        """The next (pid, flags, body); None once the stream ended."""
        while True:
            if len(self.buf) >= 4:
                (length,) = LENGTH.unpack_from(self.buf)
                if len(self.buf) >= 4 + length:
                    pid, flags = HEADER.unpack_from(self.buf, 4)
                    body = bytes(self.buf[10 : 4 + length])
                    del self.buf[: 4 + length]
                    if pid == PID_CLOSE:
                        self.reason = msgpack.unpackb(body, raw=False).get("reason")
                    return pid, flags, body
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                raise
            except OSError:
                return None
            if not data:
                return None
            self.buf.extend(data)

    def handshake(self):
        hello = self.next_frame()
        assert hello and hello[0] == 1, hello
        self.sock.sendall(frame(2, msgpack.packb({"conntype": "classic"})))
        pid, _, body = self.next_frame()
        assert pid == 3, pid
        self.sock.sendall(frame(4, msgpack.packb({"success": True})))
        return msgpack.unpackb(body, raw=False, strict_map_key=False)["registry"]

    def pid(self, name):
        return self.registry[name]

    def wait_closed(self, timeout):
        """Reads (and drops) until the server ends the stream; whether it did."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = self.next_frame()
            except socket.timeout:
                return False
            if got is None:
                return True
            self.buf.clear()
        return False

    def close(self):
        self.sock.close()


def bomb_body():
    """zlib of 1 GiB of zeros, built in pieces (about 1 MiB)."""
    packer = zlib.compressobj(9)
    zeros = bytes(MIB)
    parts = [packer.compress(zeros) for _ in range(1024)]
    parts.append(packer.flush())
    return b"".join(parts)


class Honest:
    """Echo round trips; latencies in microseconds per phase."""

    stop_event = None

    def __init__(self, port):
        self.wire = Wire(port)
        self.echo = self.wire.pid("attack:echo")
        self.latencies = {}
        self.sent = self.received = 0
        self.error = None

    def round_trips(self, phase, seconds=None, count=None, pause=0.002):
        lat = self.latencies.setdefault(phase, [])
        deadline = time.monotonic() + (seconds or 1e9)
        n = 0
        while time.monotonic() < deadline and (count is None or n < count):
            body = msgpack.packb({"i": self.sent, "text": "hello there"})
            started = time.perf_counter()
            self.wire.sock.sendall(frame(self.echo, body))
            self.sent += 1
            try:
                got = self.wire.next_frame()
            except socket.timeout:
                got = "timed out"
            if got is None or got[0] != self.echo or got[2] != body:
                self.error = f"round trip {self.sent} failed: {got!r:.80}"
                return False
            self.received += 1
            lat.append((time.perf_counter() - started) * 1e6)
            n += 1
            if self.stop_event is not None and self.stop_event.is_set():
                break
            time.sleep(pause)
        return True

    def report(self, survived):
        return {
            "sent": self.sent,
            "received": self.received,
            "lost": self.sent - self.received,
            "survived": survived,
            "error": self.error,
            "idle": percentiles(self.latencies.get("idle")),
            "attack": percentiles(self.latencies.get("attack")),
        }


def honest_main(port):
    """``--honest PORT``: warm up and measure idle latency, print READY; on GO (stdin)
    do round trips until STOP, then print the report as JSON."""
    honest = Honest(port)
    honest.round_trips("warm-up", count=200, pause=0)
    honest.round_trips("idle", seconds=2)
    print("READY", flush=True)
    assert sys.stdin.readline().strip() == "GO"
    honest.stop_event = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), honest.stop_event.set()), daemon=True).start()
    survived = honest.round_trips("attack", seconds=300)
    honest.stop_event.wait()
    honest.wire.sock.sendall(frame(PID_CLOSE, msgpack.packb({"reason": HONEST_DONE})))
    print(json.dumps(honest.report(survived)), flush=True)


class HonestProcess:
    """The honest client in its own process (see :func:`honest_main`)."""

    def __init__(self, port):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--honest", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self.proc.stdout.readline()
        if ready.strip() != "READY":
            self.proc.kill()
            raise RuntimeError(f"the honest client did not start: {ready!r}")

    def go(self):
        self.proc.stdin.write("GO\n")
        self.proc.stdin.flush()

    def finish(self):
        self.proc.stdin.write("STOP\n")
        self.proc.stdin.flush()
        out = self.proc.stdout.readline()
        self.proc.wait(timeout=30)
        self.proc.stdin.close()
        self.proc.stdout.close()
        return json.loads(out)


def percentiles(values):
    if not values:
        return {"n": 0}
    values = sorted(values)
    at = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"n": len(values), "p50_us": round(at(0.5), 1), "p99_us": round(at(0.99), 1)}


def rss_of(pid):
    """(VmRSS, VmHWM) of a process in bytes."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


def reset_peak(pid):
    """Resets VmHWM to the current RSS (Linux 4.0+): the attack's peak, not start-up's."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def attack(port, kind, body, results, max_frame, hold):
    """One attacker; records whether the server cut it off."""
    outcome = {"kind": kind, "cut_off": False, "reason": None, "error": None}
    results.append(outcome)
    try:
        wire = Wire(port, rcvbuf=4096 if kind == "non-reader" else None, timeout=30)
    except (OSError, AssertionError) as err:
        outcome["error"] = f"handshake: {err!r}"
        outcome["cut_off"] = True
        return
    try:
        if kind == "bomb":
            wire.sock.sendall(frame(wire.pid("attack:echo"), body, flags=1))
        elif kind == "non-reader":
            wire.sock.sendall(frame(wire.pid("attack:pull"), msgpack.packb({"n": 4096})))
            # Not reading for a while: the server must drop it meanwhile. (Reading
            # afterwards drains what the kernel buffered, then finds whether it did.)
            time.sleep(hold)
        elif kind == "big-frame":
            length = max_frame - 16
            wire.sock.sendall(LENGTH.pack(length) + HEADER.pack(wire.pid("attack:echo"), 0))
            left = length - 6
            while left > 0:
                n = min(left, len(body))
                wire.sock.sendall(body[:n])
                left -= n
    except OSError:
        pass
    outcome["cut_off"] = wire.wait_closed(60)
    outcome["reason"] = wire.reason
    wire.close()


def start_server(python, cfg, as_limit):
    def limit():
        if as_limit:
            resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))

    env = dict(os.environ, PYGLET_SHADOW_WINDOW="0", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [python, str(HERE / "attack_server.py"), json.dumps(cfg)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
        preexec_fn=limit,
    )
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return proc, int(line.split()[1])


def server_report(proc):
    try:
        proc.stdin.write("report\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())
    except (OSError, ValueError):
        return None


def run(
    server_python,
    cfg,
    bombs=20,
    non_readers=20,
    big_frames=20,
    as_limit=None,
    max_frame=None,
    hold=10.0,
    attacker_nice=0,
):
    """Runs the attack; returns the report (a dict)."""
    max_frame = max_frame or cfg.get("net.limits.max_frame", 256 * MIB)
    proc, port = start_server(server_python, cfg, as_limit)
    report = {"server_python": server_python, "cfg": cfg}
    try:
        # The honest client runs in a process of its own: among the attackers' threads
        # it would wait for the GIL, and measure that instead of the server.
        honest = HonestProcess(port)
        time.sleep(0.5)
        baseline, _ = rss_of(proc.pid)
        reset_peak(proc.pid)
        if attacker_nice:
            # Threads made from here on inherit it (Linux: niceness is per thread).
            os.nice(attacker_nice)
        bomb = bomb_body() if bombs else b""
        junk = os.urandom(MIB)
        results = []
        threads = []
        kinds = [("bomb", bomb)] * bombs + [("non-reader", None)] * non_readers
        kinds += [("big-frame", junk)] * big_frames
        started = time.monotonic()
        for kind, body in kinds:
            thread = threading.Thread(
                target=attack, args=(port, kind, body, results, max_frame, hold), daemon=True
            )
            thread.start()
            threads.append(thread)
        stop = threading.Event()
        sampler_peak = [0]

        def sample():
            while not stop.is_set():
                try:
                    sampler_peak[0] = max(sampler_peak[0], rss_of(proc.pid)[0])
                except OSError:
                    return
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        honest.go()
        deadline = time.monotonic() + 150
        for thread in threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
        stop.set()
        honest_report = honest.finish()
        report["attack_seconds"] = round(time.monotonic() - started, 2)
        alive = proc.poll() is None
        _, peak = rss_of(proc.pid) if alive else (0, 0)
        report["server_survived"] = alive
        report["baseline_rss_mib"] = round(baseline / MIB, 1)
        report["peak_rss_mib"] = round(max(peak, sampler_peak[0]) / MIB, 1)
        report["peak_growth_mib"] = round((max(peak, sampler_peak[0]) - baseline) / MIB, 1)
        report["honest"] = honest_report
        by_kind = {}
        for outcome in results:
            kind = by_kind.setdefault(outcome["kind"], {"total": 0, "cut_off": 0, "reasons": {}})
            kind["total"] += 1
            kind["cut_off"] += outcome["cut_off"]
            reason = outcome["reason"] or outcome["error"] or "(none seen by the attacker)"
            kind["reasons"][reason] = kind["reasons"].get(reason, 0) + 1
        report["attackers"] = by_kind
        if alive:
            time.sleep(1.5)
            server_side = server_report(proc)
            closed = server_side and [r for _, r in server_side["closed"] if r != HONEST_DONE]
            report["server_closed"] = server_side and {
                "count": len(closed),
                "without_reason": sum(1 for reason in closed if not reason),
                "reasons": sorted({str(reason).split(":")[0] for reason in closed}),
            }
            report["server_memory"] = server_side and server_side.get("memory")
            try:
                after = Honest(port)
                usable = after.round_trips("after", count=100, pause=0)
                after.wire.close()
            except (OSError, AssertionError):
                usable = False
            report["usable_after"] = usable
            report["after_rss_mib"] = round(rss_of(proc.pid)[0] / MIB, 1)
    finally:
        try:
            proc.stdin.write("quit\n")
            proc.stdin.flush()
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
    return report


def table(reports):
    """A Markdown table of reports: ``{label: report}``."""
    rows = [
        "| server | process alive | peak RSS growth | after | honest lost | honest p50 / p99 idle"
        " | honest p50 / p99 attack | attackers cut off | reasons (server side) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in reports.items():
        honest = r.get("honest", {})
        idle, during = honest.get("idle", {}), honest.get("attack", {})
        cut = sum(k["cut_off"] for k in r.get("attackers", {}).values())
        total = sum(k["total"] for k in r.get("attackers", {}).values())
        closed = r.get("server_closed") or {}
        rows.append(
            f"| {label} | {'yes' if r.get('server_survived') else 'no'}"
            f" | {r.get('peak_growth_mib', '-')} MiB | {r.get('after_rss_mib', '-')} MiB"
            f" (from {r.get('baseline_rss_mib', '-')})"
            f" | {honest.get('lost', '-')} of {honest.get('sent', '-')}"
            f" | {idle.get('p50_us', '-')} / {idle.get('p99_us', '-')} us"
            f" | {during.get('p50_us', '-')} / {during.get('p99_us', '-')} us"
            f" | {cut} of {total} | {', '.join(closed.get('reasons', [])) or '-'} |"
        )
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-python", default=sys.executable)
    parser.add_argument("--cfg", default="{}", help="server configuration (JSON)")
    parser.add_argument("--bombs", type=int, default=20)
    parser.add_argument("--non-readers", type=int, default=20)
    parser.add_argument("--big-frames", type=int, default=20)
    parser.add_argument("--max-frame", type=int, default=None, help="frame size big-frame attackers send")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds a non-reader does not read")
    parser.add_argument(
        "--attacker-nice",
        type=int,
        default=0,
        help="run the attackers at this niceness (stands in for attackers on other machines)",
    )
    parser.add_argument("--as-limit", type=int, default=None, help="server address-space limit, bytes")
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("--honest", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--table", nargs="+", metavar="LABEL=REPORT.json", help="print reports as a table")
    args = parser.parse_args()
    if args.honest:
        honest_main(args.honest)
        return
    if args.table:
        reports = {}
        for spec in args.table:
            label, _, path = spec.partition("=")
            file = pathlib.Path(path)
            reports[label] = json.loads(file.read_text()) if file.exists() else {}
        print(table(reports))
        return
    report = run(
        args.server_python,
        json.loads(args.cfg),
        bombs=args.bombs,
        non_readers=args.non_readers,
        big_frames=args.big_frames,
        as_limit=args.as_limit,
        max_frame=args.max_frame,
        hold=args.hold,
        attacker_nice=args.attacker_nice,
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        pathlib.Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
