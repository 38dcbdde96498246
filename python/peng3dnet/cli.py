"""The ``peng3dnet`` command (also ``python -m peng3dnet``).

    peng3dnet serve [--host 127.0.0.1] [--port 8080] [--name NAME] [--stats SECONDS]
    peng3dnet ping HOST[:PORT] [-c COUNT] [-i INTERVAL] [--timeout S] [--json]
    peng3dnet version

``serve`` runs a pingable demo server speaking the examples' echo and chat protocol and
prints traffic statistics every ``--stats`` seconds;
``ping`` asks a server for its ping data and measures round trips, like the UNIX ping.
"""

import argparse
import json
import math
import signal
import socket
import sys
import threading
import time

from . import errors, net, util, version
from .constants import MODE_CHAT
from .ext import ping
from .packet import Packet

DEFAULT_PORT = 8080


class _UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


def _stamp():
    return time.strftime("%H:%M:%S")


# --- serve -----------------------------------------------------------------------------


class _Echo(Packet):
    def receive(self, msg, cid=None):
        if cid is not None:
            self.peer.send_message(self, msg, cid)


class _Nick(Packet):
    def receive(self, msg, cid=None):
        if cid is None or not isinstance(msg, dict):
            return
        client = self.peer.clients[cid]
        client.nick = str(msg.get("nick", f"client{cid}"))
        client.mode = MODE_CHAT
        present = sorted(c.nick for c in self.peer.clients.values() if c.mode == MODE_CHAT)
        self.peer.send_message("chat:welcome", {"nick": client.nick, "present": present}, cid)
        self.peer.tell_chatters({"nick": "*", "text": f"{client.nick} joined"}, exclude=cid)
        self.peer.log(f"client {cid} is now {client.nick!r}")


class _Chat(Packet):
    def receive(self, msg, cid=None):
        if cid is None or not isinstance(msg, dict):
            return
        client = self.peer.clients[cid]
        if client.mode == MODE_CHAT:
            self.peer.tell_chatters({"nick": client.nick, "text": str(msg.get("text", ""))})


class _DemoClient(net.ClientOnServer):
    def __init__(self, server, conn, addr, cid):
        super().__init__(server, conn, addr, cid)
        self.nick = f"client{cid}"

    def on_connect(self):
        self.server.log(f"client {self.cid} connected from {util.normalize_addr_formatted(self.addr[:2])}")

    def on_close(self, reason=None):
        self.server.log(f"client {self.cid} closed ({reason})")
        if self.mode == MODE_CHAT:
            self.server.tell_chatters({"nick": "*", "text": f"{self.nick} left"}, exclude=self.cid)


class DemoServer(ping.PingableServerMixin, net.Server):
    """A pingable server with the echo and chat packets of the examples."""

    def __init__(self, *args, name="peng3dnet demo server", out=sys.stdout, **kwargs):
        self.pingdata = {"name": name}
        self._out = out
        super().__init__(*args, clientcls=_DemoClient, **kwargs)

    def _reg_packets_demo(self):
        self.register_packet("echo:echo", _Echo(self.registry, self))
        self.register_packet("echo:latency", _Echo(self.registry, self))
        self.register_packet("chat:nick", _Nick(self.registry, self))
        self.register_packet("chat:welcome", Packet(self.registry, self))
        self.register_packet("chat:message", _Chat(self.registry, self))

    def getPingData(self, msg, cid):
        return {"clients": len(self.clients)}

    def tell_chatters(self, msg, exclude=None):
        chatters = [cid for cid, client in list(self.clients.items()) if client.mode == MODE_CHAT]
        self.broadcast("chat:message", msg, cids=chatters, exclude=() if exclude is None else exclude)

    def log(self, text):
        print(f"[{_stamp()}] {text}", file=self._out, flush=True)


def _serve(args):
    if (args.tls_cert is None) != (args.tls_key is None):
        raise _UsageError("--tls-cert and --tls-key go together")
    cfg = {}
    if args.tls_cert:
        cfg = {
            "net.ssl.enabled": True,
            "net.ssl.server.certfile": args.tls_cert,
            "net.ssl.server.keyfile": args.tls_key,
        }
    try:
        server = DemoServer(addr=(args.host, args.port), name=args.name, cfg=cfg)
        server.bind()
    except errors.TLSConfigError as exc:
        raise _UsageError(str(exc)) from None
    except (errors.InvalidAddressError, socket.gaierror) as exc:
        raise _UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    except OSError as exc:
        raise _UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.runAsync()
    server.process_async()
    host, port = server.sock.getsockname()[:2]
    over = "TLS" if args.tls_cert else "plain TCP"
    server.log(
        f"listening on {util.normalize_addr_formatted((host, port))} ({over}; echo, chat, ping); Ctrl-C stops"
    )
    next_stats = time.monotonic() + args.stats if args.stats > 0 else math.inf
    while not stop.wait(0.2):
        now = time.monotonic()
        if args.seconds is not None and now - args.started > args.seconds:
            break
        if now >= next_stats:
            next_stats = now + args.stats
            server.log(format_stats(server.stats()))
    # The core's count: a client whose connection the process thread has not yet
    # dispatched is not in server.clients, but it is told why too.
    clients = server.stats()["connections"]
    server.shutdown(join=True, timeout=5, reason="servershutdown")
    server.log(f"stopped; {clients} client(s) were told why")
    return 0


def _size(n):
    units = ["B", "KiB", "MiB", "GiB"]
    while n >= 1024 and len(units) > 1:
        n /= 1024
        units.pop(0)
    return f"{n} B" if units[0] == "B" else f"{n:.1f} {units[0]}"


def _millis(seconds):
    return "-" if seconds is None else f"{seconds * 1000:.2f} ms"


def format_stats(stats):
    """One line summing up :meth:`peng3dnet.net.Server.stats`."""
    return (
        f"stats: {stats['connections']} connected ({stats['accepted']} accepted, "
        f"{stats['refused']} refused); in {stats['packets_in']} packets / {_size(stats['bytes_in'])}, "
        f"out {stats['packets_out']} packets / {_size(stats['bytes_out'])}, "
        f"{_size(stats['queued_bytes'])} queued; rtt mean {_millis(stats['rtt_mean'])}, "
        f"max {_millis(stats['rtt_max'])}"
    )


# --- ping ------------------------------------------------------------------------------


def _ping_target(text):
    try:
        host, port = util.parse_address(text, DEFAULT_PORT)
    except errors.InvalidAddressError as exc:
        raise _UsageError(f"bad address {text!r}: {exc}") from None
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _UsageError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    return host, port


def _ping(args):
    host, port = _ping_target(args.target)
    where = util.normalize_addr_formatted((host, port))
    times, failures, data = [], [], None
    cfg = {}
    if args.tls or args.cafile:
        cfg = {"net.ssl.enabled": True}
        if args.cafile:
            cfg.update({"net.ssl.cafile": args.cafile, "net.ssl.client.force_verify": True})
    if not args.json:
        print(f"PING {where} (peng3dnet protocol {version.PROTOVERSION})", flush=True)
    for seq in range(args.count):
        if seq:
            time.sleep(args.interval)
        try:
            answer = ping.pingServer(addr=(host, port), cfg=cfg, timeout=args.timeout)
        except errors.TLSConfigError as exc:
            raise _UsageError(str(exc)) from None
        except errors.FailedPingError as exc:
            failures.append(str(exc))
            if not args.json:
                print(f"no answer from {where}: seq={seq} ({exc})", flush=True)
            continue
        except OSError as exc:
            failures.append(exc.strerror or str(exc))
            if not args.json:
                print(f"cannot reach {where}: seq={seq} ({exc.strerror or exc})", flush=True)
            continue
        times.append(answer["delay"] * 1000)
        data = {k: v for k, v in answer.items() if k not in ("oldmsg", "recvtime", "delay")}
        if not args.json:
            print(f"answer from {where}: seq={seq} time={times[-1]:.2f} ms", flush=True)
    stats = _statistics(times)
    loss = 100.0 * (args.count - len(times)) / args.count
    if args.json:
        report = {
            "target": where,
            "sent": args.count,
            "received": len(times),
            "loss_percent": loss,
            "times_ms": times,
            "rtt_ms": stats,
            "server": data,
            "errors": failures,
        }
        print(json.dumps(report, sort_keys=True, default=repr))
    else:
        print(f"--- {where} ping statistics ---")
        print(f"{args.count} pings sent, {len(times)} answered, {loss:.0f}% loss")
        if stats:
            print(
                "round-trip min/avg/max/stddev = {min:.3f}/{avg:.3f}/{max:.3f}/{stddev:.3f} ms".format(
                    **stats
                )
            )
        if data is not None:
            info = data.get("peng3dnet", {})
            print(f"server: peng3dnet {info.get('version', '?')} (protocol {info.get('protoversion', '?')})")
            extra = {k: v for k, v in data.items() if k != "peng3dnet"}
            if extra:
                print(f"ping data: {json.dumps(extra, sort_keys=True, default=repr)}")
    return 0 if times else 1


def _statistics(times):
    if not times:
        return None
    avg = sum(times) / len(times)
    stddev = math.sqrt(sum((t - avg) ** 2 for t in times) / len(times))
    return {"min": min(times), "avg": avg, "max": max(times), "stddev": stddev}


# --- version ---------------------------------------------------------------------------


def _version(args):
    from . import _core

    info = _core.build_info()
    print(
        f"peng3dnet-rs {info['version']} (peng3dnet API {version.VERSION}, protocol {version.PROTOVERSION})"
    )
    print(f"native core: {info['profile']} build for {info['target']}, zlib: {info['zlib']}")
    print(f"python: {sys.version.split()[0]}")
    for line in _installation():
        print(line)
    return 0


def _installation():
    """Where the package was imported from, and whether the original peng3dnet is
    installed too: both install a ``peng3dnet`` package, and installed into the same
    place their files mix (whichever was installed last wins file by file)."""
    import importlib.metadata
    import pathlib

    from . import _core

    here = pathlib.Path(__file__).resolve().parent
    lines = [f"imported from: {here}", f"native module: {pathlib.Path(_core.__file__).name}"]
    try:
        original = importlib.metadata.distribution("peng3dnet")
    except importlib.metadata.PackageNotFoundError:
        lines.append("original peng3dnet: not installed")
        return lines
    location = pathlib.Path(original.locate_file("")).resolve()
    mixed = (location / "peng3dnet").resolve() == here
    lines.append(
        f"original peng3dnet: {original.version} is installed too, in {location}"
        + (
            ": its files and ours share one peng3dnet/ directory and mix; keep one of them"
            " (pip uninstall peng3dnet, then pip install --force-reinstall peng3dnet-rs)"
            if mixed
            else " (not where this package was imported from: this one is used)"
        )
    )
    return lines


# --- entry point -----------------------------------------------------------------------


def _parser():
    parser = argparse.ArgumentParser(prog="peng3dnet", description="peng3dnet-rs command-line tools")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="run a pingable demo server (echo and chat)",
        description="Run a pingable demo server speaking the examples' echo and chat protocol. "
        "Clients must register the same packets (echo:echo, echo:latency, chat:nick, chat:welcome, "
        "chat:message) or set net.registry.missingpacketaction to 'ignore'.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0: any free)"
    )
    serve.add_argument("--name", default="peng3dnet demo server", help="server name sent in ping answers")
    serve.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this PEM certificate (chain)")
    serve.add_argument("--tls-key", metavar="FILE", help="the PEM private key of --tls-cert")
    serve.add_argument(
        "--stats",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="print traffic statistics this often (default: 30; 0: never)",
    )
    serve.add_argument("--seconds", type=float, default=None, help=argparse.SUPPRESS)
    serve.set_defaults(run=_serve)

    ping_cmd = commands.add_parser(
        "ping",
        help="ping a server: round-trip times and its ping data",
        description="Ping a peng3dnet server (either implementation) and report round-trip times, "
        "loss, and the server's ping data. Exit status 0 if any ping was answered, 1 if none.",
    )
    ping_cmd.add_argument(
        "target", metavar="HOST[:PORT]", help=f"server address (default port {DEFAULT_PORT})"
    )
    ping_cmd.add_argument("-c", "--count", type=_positive_int, default=4, help="number of pings (default: 4)")
    ping_cmd.add_argument(
        "-i", "--interval", type=_non_negative, default=1.0, help="seconds between pings (default: 1)"
    )
    ping_cmd.add_argument(
        "--timeout", type=_positive, default=5.0, help="seconds to wait for each answer (default: 5)"
    )
    ping_cmd.add_argument("--tls", action="store_true", help="connect with TLS")
    ping_cmd.add_argument(
        "--cafile",
        metavar="FILE",
        help="with TLS, require the server's certificate to be this one or signed by it (implies --tls)",
    )
    ping_cmd.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    ping_cmd.set_defaults(run=_ping)

    version_cmd = commands.add_parser("version", help="print the versions of the package, protocol and core")
    version_cmd.set_defaults(run=_version)
    return parser


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def _non_negative(text):
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {text}")
    return value


def main(argv=None):
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.started = time.monotonic()
    try:
        return args.run(args)
    except _UsageError as exc:
        print(f"peng3dnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
