"""The side-by-side benchmark suite: peng3dnet-rs against the original peng3dnet, pyzmq
+ msgpack, asyncio streams on uvloop and plain blocking sockets, in one run, each
scenario with its server and its client(s) in two separate processes.

    ./run bench [--quick]              (sets up the environments, then runs this)
    python benches/suite/run.py --ours PY --reference PY --others PY [--quick] [--only NAMES]

Writes ``docs/benchmarks.md`` (tables, ratios), ``docs/benchmarks.json`` and
``docs/benchmarks.png`` (the chart the README shows). Numbers are never asserted:
benchmarks are not tests.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DOCS = os.path.join(ROOT, "docs")
MIB = 1 << 20

FULL = {
    "rtt": {"count": 20_000, "warmup": 500},
    "stream": {"count": 200_000, "timeout": 60},
    "fanout": {"clients": 100, "updates": 1_000, "timeout": 120},
    "big": {"sizes": [1 * MIB, 16 * MIB, 64 * MIB], "timeout": 120, "give_up_after": 20},
    "conns": {"ours": [1_000, 10_000], "reference": [1_000], "others": [1_000, 10_000]},
    "repeats": 3,
}
QUICK = {
    "rtt": {"count": 3_000, "warmup": 200},
    "stream": {"count": 30_000, "timeout": 20},
    "fanout": {"clients": 20, "updates": 100, "timeout": 60},
    "big": {"sizes": [1 * MIB, 16 * MIB], "timeout": 60, "give_up_after": 10},
    "conns": {"ours": [300], "reference": [300], "others": [300]},
    "repeats": 1,
}


class Impl:
    def __init__(self, name, python, module, broadcast=True, conns=False, skip=()):
        self.name, self.python, self.module = name, python, module
        self.broadcast, self.conns = broadcast, conns
        self.skip = set(skip)  # scenarios not run (the original hangs in some app shapes)

    def runs(self, scenario):
        return scenario not in self.skip


def run_pair(impl, server_params, client_params, timeout):
    """One scenario: returns (client result or {"error": ...}, server stats before, after)."""
    cmd = [impl.python, os.path.join(HERE, "peer.py"), impl.module]
    env = dict(os.environ, PYGLET_SHADOW_WINDOW="0")
    server = subprocess.Popen(
        [*cmd, "server", json.dumps(server_params)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    client = None
    try:
        line = server.stdout.readline()
        if not line.startswith("PORT "):
            return {"error": "the server did not start"}, None, None
        port = int(line.split()[1])

        def server_stats():
            server.stdin.write("stats\n")
            server.stdin.flush()
            return json.loads(server.stdout.readline())

        before = server_stats()
        client = subprocess.Popen(
            # The server's parameters too: an in-process peer runs its server itself.
            [*cmd, "client", json.dumps(dict(client_params, port=port, server=server_params))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        result = _client_result(client, timeout)
        after = server_stats() if "error" not in result else None
        return result, before, after
    finally:
        for proc in (client, server):
            if proc is not None:
                proc.kill()
                proc.wait()


def _client_result(client, timeout):
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(client.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return {"error": f"no result within {timeout} s (hang)"}
    line = client.stdout.readline()
    if not line.startswith("RESULT "):
        client.kill()
        err = client.stderr.read().strip().splitlines()
        return {"error": (err[-1] if err else "the client failed")[:200]}
    return json.loads(line[len("RESULT ") :])


def measure(impls, sizes, log):
    """Runs every scenario for every implementation, scenario by scenario (so that a
    slow phase of a shared machine does not fall on one implementation alone). The rtt
    and stream scenarios run ``repeats`` times; the fastest run counts."""
    results = {}

    def record(impl, key, value):
        results.setdefault(impl.name, {})[key] = value
        log(f"  {impl.name:16} {key:22} {_short(value)}")

    base = {"count": 0, "clients": 0, "updates": 0, "mode": "loop"}

    def best_of(impl, server_params, client_params, timeout, speed):
        best = None
        for _ in range(sizes["repeats"]):
            result, before, after = run_pair(impl, server_params, client_params, timeout)
            if "error" in result:
                return result, before, after  # a hang does not get retried
            if best is None or speed(result) > speed(best[0]):
                best = (result, before, after)
        return best

    log("rtt")
    for impl in impls:
        if not impl.runs("rtt"):
            continue
        rtt, _, _ = best_of(impl, base, dict(sizes["rtt"], scenario="rtt"), 300, lambda r: r["per_second"])
        record(impl, "rtt", rtt)
    log("stream")
    params = sizes["stream"]
    for impl in impls:
        if not impl.runs("stream"):
            continue
        stream, before, after = best_of(
            impl,
            dict(base, count=params["count"]),
            dict(params, scenario="stream"),
            params["timeout"] + 10,
            lambda r: -r["seconds"],
        )
        if "error" not in stream:
            stream["server_cpu"] = after["cpu"] - before["cpu"]
        record(impl, "stream", stream)
    log("fanout")
    params = sizes["fanout"]
    for impl in impls:
        if not impl.runs("fanout"):
            continue
        for mode in ["loop", "broadcast"] if impl.broadcast else ["loop"]:
            server_params = dict(base, clients=params["clients"], updates=params["updates"], mode=mode)
            fanout, _, _ = run_pair(
                impl, server_params, dict(params, scenario="fanout"), params["timeout"] + 30
            )
            record(impl, f"fanout_{mode}", fanout)
    log("big")
    params = sizes["big"]
    for impl in impls:
        if not impl.runs("big"):
            continue
        big, _, _ = run_pair(impl, base, dict(params, scenario="big"), params["timeout"])
        record(impl, "big", big)
    log("conns")
    for impl in impls:
        for count in _conn_counts(sizes, impl) if impl.conns else []:
            conns, before, after = run_pair(impl, base, {"scenario": "conns", "clients": count}, 600)
            if "error" not in conns:
                conns["server_bytes_per_conn"] = (after["rss"] - before["rss"]) / count
            record(impl, f"conns_{count}", conns)
    return results


def _conn_counts(sizes, impl):
    """How many clients the conns scenario starts for ``impl``: by its name, or the
    entry of its family (ours, reference, others)."""
    counts = sizes["conns"]
    if impl.name in counts:
        return counts[impl.name]
    family = impl.name.split(" ")[0]
    return counts.get(family, counts["others"] if family not in ("ours", "reference") else [])


def _short(value):
    if "error" in value:
        return "ERROR " + value["error"]
    return json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in value.items()})[:150]


# --- derived metrics and report ----------------------------------------------------------


def metrics(result, sizes):
    """The numbers the report compares: name -> (value, higher_is_better, unit)."""
    out = {}

    def ok(key):
        return key in result and "error" not in result[key]

    if ok("rtt"):
        r = result["rtt"]
        out["rtt: round trips/s"] = (r["per_second"], True, "/s")
        out["rtt: p50"] = (r["p50_us"], False, "µs")
        out["rtt: p99"] = (r["p99_us"], False, "µs")
    if ok("stream"):
        s = result["stream"]
        out["stream: messages/s"] = (s["count"] / s["seconds"], True, "/s")
        out["cpu: CPU s per 100k messages"] = ((s["cpu"] + s["server_cpu"]) / s["count"] * 1e5, False, "s")
    for mode in ("loop", "broadcast"):
        if ok(f"fanout_{mode}"):
            f = result[f"fanout_{mode}"]
            out[f"fanout ({mode}): deliveries/s"] = (f["clients"] * f["updates"] / f["seconds"], True, "/s")
    if ok("big"):
        for size, seconds in result["big"]["seconds"].items():
            out[f"big: {int(size) // MIB} MiB round trip"] = (2 * int(size) / MIB / seconds, True, "MiB/s")
    for key in sorted(k for k in result if k.startswith("conns_")):
        if ok(key):
            c = result[key]
            count = c["clients"]
            out[f"conns: {count} handshakes/s"] = (count / c["seconds"], True, "/s")
            out[f"conns: server KiB per connection ({count})"] = (
                c["server_bytes_per_conn"] / 1024,
                False,
                "KiB",
            )
    return out


def _fmt(value, unit):
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit in ("µs",):
        return f"{value:,.0f} µs"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:,.1f} {unit}"


def report(results, impls, sizes, quick, elapsed):
    names = [impl.name for impl in impls]
    table = {name: metrics(results.get(name, {}), sizes) for name in names}
    rows = []
    for impl_name in names:
        for metric in table[impl_name]:
            if metric not in rows:
                rows.append(metric)
    # The first table: the suite's own shapes. Ratios against the peers; our own
    # variants (aio, memory) are columns of values. The app-shaped runs have a table
    # of their own.
    app_names = [n for n in names if n.endswith(" app")]
    main_names = [n for n in names if n not in app_names]
    peers = [n for n in main_names if not n.startswith("ours") and n != "reference"]
    others = [n for n in main_names if not n.startswith("ours")]
    lines = [
        "# Benchmarks",
        "",
        f"Run of {datetime.date.today().isoformat()} ({'quick' if quick else 'full'} mode, "
        f"{elapsed:.0f} s) on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; server and client(s) in separate processes on 127.0.0.1, "
        "Python handlers on both sides. Produced by `./run bench`; the numbers are this run's, "
        "every implementation measured in the same run.",
        "",
        "Ratios are how many times better ours is (above 1: ours is better; throughput "
        "divided, or latency/CPU/memory inverted). A dash: not measured for that "
        "implementation; `error`: it failed or hung (see below).",
        "",
        *_table(table, results, rows, "ours", main_names, others),
    ]
    if "ours app" in app_names:
        lines += [
            "",
            "## Driven as apps drive it",
            "",
            "`ours app` and `reference app` (benches/suite/impl_app.py): SmartPacket handlers; "
            "server and single client each with `runAsync()` + `process_async()`, the client "
            "sending from its main thread and waiting for its handler's signal; many clients "
            "started in waves of 100 (`Client`, `runAsync()`, `wait_for_connection`) with one "
            "pump thread calling `process()` on each; fan-out as a Python loop of "
            "`send_message`. The peers as in the table above (their conns: a connect and one "
            "echo round trip per client, in waves of 100). `best peer`: the best of "
            + ", ".join(peers)
            + ".",
            "",
            *_table(table, results, rows, "ours app", app_names + peers, [*app_names[1:], *peers], peers),
        ]
    errors = [
        f"- {name}, {key}: {value['error']}"
        for name in names
        for key, value in results.get(name, {}).items()
        if "error" in value
    ]
    if errors:
        lines += ["", "Failures and hangs:", "", *errors]
    lines += ["", "Parameters:", "", "```json", json.dumps(sizes, indent=1), "```", ""]
    return "\n".join(lines), table


def _ratio(ours, entry):
    if ours and entry and entry[0] > 0 and ours[0] > 0:
        return ours[0] / entry[0] if ours[1] else entry[0] / ours[0]
    return None


def _table(table, results, rows, ours_name, names, against, best_of=()):
    """Markdown rows: the values of ``names``, then ``ours_name`` against each of
    ``against`` (and against the best of ``best_of``, if given)."""
    heads = [f"{ours_name} vs {n}" for n in against] + (["vs best peer"] if best_of else [])
    lines = [
        "| metric | " + " | ".join(names) + " | " + " | ".join(heads) + " |",
        "|---|" + "---|" * (len(names) + len(heads)),
    ]
    for metric in rows:
        ours = table.get(ours_name, {}).get(metric)
        if ours is None:
            continue
        cells = []
        for name in names:
            entry = table.get(name, {}).get(metric)
            cells.append(_fmt(entry[0], entry[2]) if entry else _cell_error(results, name, metric))
        ratios = [_ratio(ours, table.get(name, {}).get(metric)) for name in against]
        if best_of:
            known = [r for r in (_ratio(ours, table.get(n, {}).get(metric)) for n in best_of) if r]
            ratios.append(min(known) if known else None)
        text = [f"{r:.2f}x" if r else "-" for r in ratios]
        lines.append(f"| {metric} | " + " | ".join(cells) + " | " + " | ".join(text) + " |")
    return lines


README_METRICS = [
    "rtt: round trips/s",
    "rtt: p50",
    "stream: messages/s",
    "cpu: CPU s per 100k messages",
    "fanout (loop): deliveries/s",
    "fanout (broadcast): deliveries/s",
    "big: 64 MiB round trip",
    "conns: 1000 handshakes/s",
    "conns: server KiB per connection (1000)",
]


def update_readme(table, impls, results):
    """Replaces the summary table between the README's bench markers (full runs only)."""
    path = os.path.join(ROOT, "README.md")
    with open(path) as readme:
        text = readme.read()
    start, end = "<!-- bench:start -->\n", "<!-- bench:end -->"
    if start not in text or end not in text:
        return
    names = [impl.name for impl in impls]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for metric in README_METRICS:
        cells = []
        for name in names:
            entry = table[name].get(metric)
            cells.append(_fmt(entry[0], entry[2]) if entry else _cell_error(results, name, metric))
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    with open(path, "w") as readme:
        readme.write(before + start + "\n".join(lines) + "\n" + end + after)


def _cell_error(results, name, metric):
    scenario = metric.split(":")[0].split(" ")[0]
    for key, value in results.get(name, {}).items():
        if key.startswith(scenario) and "error" in value:
            return "error"
    return "-"


def chart(table, impls, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [impl.name for impl in impls]
    wanted = [m for m in table["ours"] if table["ours"][m][1]]  # throughput metrics
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(wanted) * len(names) / 2 + 1.5))
    height = 0.8 / len(names)
    for i, name in enumerate(names):
        values = []
        for metric in wanted:
            entry, ours = table[name].get(metric), table["ours"][metric]
            values.append(entry[0] / ours[0] if entry else 0)
        ypos = [row + i * height for row in range(len(wanted))]
        ax.barh(ypos, values, height=height, label=name)
    ax.set_yticks([row + 0.4 - height / 2 for row in range(len(wanted))])
    ax.set_yticklabels(wanted)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("throughput relative to peng3dnet-rs (ours = 1.0; longer bar = faster)")
    ax.legend(loc="lower right")
    ax.set_title("peng3dnet-rs against its peers, same run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", required=True, help="interpreter with peng3dnet-rs")
    parser.add_argument("--reference", required=True, help="interpreter with the original peng3dnet")
    parser.add_argument("--others", required=True, help="interpreter with pyzmq, uvloop and msgpack")
    parser.add_argument("--quick", action="store_true", help="small sizes: about a minute")
    parser.add_argument("--only", help="comma-separated implementation names")
    parser.add_argument("--out", default=DOCS, help="where the report goes (default: docs/)")
    parser.add_argument(
        "--from-json", help="re-render the report (and the README table) from this benchmarks.json"
    )
    args = parser.parse_args()
    impls = [
        Impl("ours", args.ours, "peng", conns=True),
        Impl("ours aio", args.ours, "aio"),
        Impl("ours memory", args.ours, "memory"),
        Impl("reference", args.reference, "peng", broadcast=False, conns=True),
        Impl("pyzmq", args.others, "zmq", conns=True),
        Impl("asyncio+uvloop", args.others, "asyncio", conns=True),
        Impl("sockets", args.others, "sockets", conns=True),
        # Driven as peng3d apps drive the library (impl_app.py); the original hangs in
        # the stream, fan-out and big app shapes, which are therefore not run for it.
        Impl("ours app", args.ours, "app", conns=True),
        Impl(
            "reference app",
            args.reference,
            "app",
            broadcast=False,
            conns=True,
            skip={"stream", "fanout", "big"},
        ),
    ]
    if args.only:
        keep = set(args.only.split(","))
        impls = [impl for impl in impls if impl.name in keep or impl.name == "ours"]
    sizes = QUICK if args.quick else FULL
    started = time.monotonic()
    if args.from_json:
        with open(args.from_json) as saved:
            data = json.load(saved)
        results, args.quick = data["results"], data["quick"]
        sizes = QUICK if args.quick else FULL
        elapsed = data.get("seconds", 0.0)
    else:
        results = measure(impls, sizes, lambda text: print(text, flush=True))
        elapsed = time.monotonic() - started
    impls = [impl for impl in impls if impl.name in results]
    text, table = report(results, impls, sizes, args.quick, elapsed)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "benchmarks.md"), "w") as out:
        out.write(text)
    with open(os.path.join(args.out, "benchmarks.json"), "w") as out:
        json.dump(
            {
                "date": datetime.date.today().isoformat(),
                "quick": args.quick,
                "seconds": elapsed,
                "results": results,
            },
            out,
            indent=1,
        )
    chart(table, impls, os.path.join(args.out, "benchmarks.png"))
    if not args.quick and os.path.abspath(args.out) == os.path.abspath(DOCS):
        update_readme(table, impls, results)
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
