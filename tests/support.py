"""Helpers shared by the tests (imported as a plain module; see conftest.py)."""

import contextlib
import importlib.util
import itertools
import json
import os
import pathlib
import pickle
import socket
import struct
import subprocess
import sys
import threading

import pytest

# The reference imports pyglet (through peng3d), which wants a display unless told not to.
os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")

ROOT = pathlib.Path(__file__).resolve().parent.parent
PEERS = ROOT / "tests" / "peers"

IMPL = "ours" if importlib.util.find_spec("peng3dnet._core") is not None else "reference"
"""Which implementation this interpreter runs: "ours" or "reference"."""

PYTHONS = {
    "ours": pathlib.Path(os.environ.get("PENG3DNET_PYTHON_OURS", ROOT / ".venv" / "bin" / "python")),
    "reference": pathlib.Path(os.environ.get("PENG3DNET_PYTHON_REF", ROOT / ".venv-ref" / "bin" / "python")),
}


def subprocess_env():
    """Environment for peer subprocesses: no display needed, unbuffered output."""
    env = dict(os.environ)
    env["PYGLET_SHADOW_WINDOW"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONPATH", None)
    return env


def run_peer_json(python, script, *args, timeout=120):
    """Run ``peers/<script>`` under ``python`` and return the JSON it printed last."""
    result = subprocess.run(
        [python, str(PEERS / script), *args], env=subprocess_env(), capture_output=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(f"{script} failed under {python}: {result.stderr.decode()[-3000:]}")
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


LENGTH = struct.Struct("!I")
HEADER = struct.Struct("!IH")


def split_frames(stream):
    """Cut a byte stream into frames; returns ``[(pid, flags, body, raw_frame)]``."""
    frames, pos = [], 0
    while pos < len(stream):
        (length,) = LENGTH.unpack_from(stream, pos)
        raw = stream[pos : pos + 4 + length]
        assert len(raw) == 4 + length, f"stream ends inside a frame at offset {pos}"
        pid, flags = HEADER.unpack_from(raw, 4)
        frames.append((pid, flags, raw[10:], raw))
        pos += 4 + length
    return frames


@contextlib.contextmanager
def raw_listener():
    """A plain TCP listener on 127.0.0.1 with a free port: yields the socket."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(30)
        yield server


def capture_sent_bytes(python, cfg, packets, tmp_path, timeout=60):
    """Run ``peers/send_packets.py`` under ``python`` and return every byte it sent."""
    spec = tmp_path / "spec.pickle"
    spec.write_bytes(pickle.dumps({"cfg": cfg, "packets": packets}))
    received = bytearray()
    with raw_listener() as server:
        port = server.getsockname()[1]
        proc = subprocess.Popen(
            [python, str(PEERS / "send_packets.py"), str(port), str(spec)],
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        errors = []

        def read_all():
            try:
                conn, _ = server.accept()
                with conn:
                    conn.settimeout(timeout)
                    while chunk := conn.recv(1 << 16):
                        received.extend(chunk)
            except OSError as exc:  # reported below with the peer's output
                errors.append(exc)

        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        _, err = proc.communicate(timeout=timeout)
        reader.join(timeout)
    if proc.returncode != 0 or errors:
        sys.stderr.write(err.decode(errors="replace"))
        raise AssertionError(f"peer failed (exit {proc.returncode}, {errors}): {err[-2000:]!r}")
    return bytes(received)


# --- in-process peers (conformance tests: work with either implementation) -------------

import time  # noqa: E402

import peng3dnet  # noqa: E402


def rss(pid):
    """Resident memory of process ``pid`` in bytes (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_until(predicate, timeout=5.0, interval=0.005):
    """Poll ``predicate`` until it is true or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class FakePeng:
    """The part of a peng3d app peng3dnet uses: ``cfg`` and ``sendEvent``."""

    def __init__(self, cfg=None):
        self.cfg = dict(cfg or {})
        self.events = []

    def sendEvent(self, event, data):
        self.events.append((event, data))

    def names(self):
        return [name for name, _ in self.events]

    def of(self, name):
        return [data for event, data in self.events if event == name]


class Harness:
    """Starts servers and clients and stops them all at the end.

    ``transport`` is ``"tcp"`` (127.0.0.1, a free port per server) or ``"memory"`` (a
    fresh in-process address per server; ours only). Written against the public API
    only, so it drives either implementation. The original completes its handshake in
    the process thread, so by default both sides run ``process_async()``.
    """

    _names = itertools.count(1)

    def __init__(self, transport="tcp"):
        self.transport = transport
        self.servers = []
        self.clients = []

    def new_address(self):
        """An address for a new server on this transport."""
        if self.transport == "memory":
            return f"memory:harness-{os.getpid()}-{next(self._names)}"
        return ("127.0.0.1", 0)

    def server(self, cls=None, process=True, **kwargs):
        cls = cls or peng3dnet.Server
        kwargs.setdefault("addr", self.new_address())
        server = cls(**kwargs)
        self.servers.append(server)
        server.bind()  # before runAsync: the original's initialize() may not be called twice
        server.runAsync()
        if process:
            server.process_async()
        assert wait_until(lambda: server.sock is not None)
        return server

    def port(self, server):
        """The TCP port of ``server``. A test that needs one (to reach the server with a
        raw socket or another process) is about TCP: over the in-process transport it
        is skipped here."""
        if self.transport == "memory":
            pytest.skip("talks to the server through a TCP port: TCP only")
        return server.sock.getsockname()[1]

    def address(self, server):
        """Where a client reaches ``server`` (a server object or a TCP port)."""
        if isinstance(server, int):
            return ("127.0.0.1", server)
        if self.transport == "memory":
            return server.addr
        return ("127.0.0.1", self.port(server))

    def client(self, server, cls=None, process=True, wait=True, timeout=5.0, **kwargs):
        cls = cls or peng3dnet.Client
        known = set() if isinstance(server, int) else set(server.clients)
        kwargs.setdefault("addr", self.address(server))
        client = cls(**kwargs)
        self.clients.append(client)
        client.runAsync()
        if process:
            client.process_async()
        if wait:
            client.wait_for_connection(timeout)
            if not isinstance(server, int):
                # Also wait until the server has dispatched the new connection.
                assert wait_until(lambda: set(server.clients) - known, timeout)
        return client

    def close(self):
        for peer in self.clients + self.servers:
            try:
                peer.stop()
            except Exception:
                pass
        for peer in self.clients + self.servers:
            try:
                peer.join(2)
            except Exception:
                pass


class Recorder(peng3dnet.packet.Packet):
    """A packet type that records what it receives: ``(msg, cid)`` pairs."""

    def __init__(self, reg, peer, obj=None):
        super().__init__(reg, peer, obj)
        self.received = []
        self.sent = []

    def receive(self, msg, cid=None):
        self.received.append((msg, cid))

    def send(self, msg, cid=None):
        self.sent.append((msg, cid))


class EchoPacket(Recorder):
    """Records, and on the server sends every message back to its sender."""

    def receive(self, msg, cid=None):
        super().receive(msg, cid)
        if cid is not None:
            self.peer.send_message(self, msg, cid)


def packets_mixin(*names, cls=EchoPacket):
    """A ``_reg_packets_*`` method registering ``names`` (in this order) as ``cls``."""

    def _reg_packets_test(self):
        self.test_packets = {}
        for name in names:
            obj = cls(self.registry, self)
            self.register_packet(name, obj)
            self.test_packets[name] = obj

    return _reg_packets_test


# --- peers in another interpreter (cross-implementation tests) -------------------------

import base64  # noqa: E402


class RemoteServer:
    """``peers/serve.py`` running under another interpreter; see its docstring."""

    def __init__(self, python, tmp_path, packets, cfg=None):
        spec = tmp_path / "serve-spec.pickle"
        spec.write_bytes(pickle.dumps({"packets": list(packets), "cfg": dict(cfg or {})}))
        self.proc = subprocess.Popen(
            [python, str(PEERS / "serve.py"), str(spec)],
            env=subprocess_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise AssertionError(f"server peer did not start: {line!r} {self.proc.stderr.read()[-3000:]!r}")
        self.port = int(line.split()[1])

    def command(self, *command):
        self.proc.stdin.write(base64.b64encode(pickle.dumps(command)) + b"\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"server peer died: {self.proc.stderr.read()[-3000:]!r}")
        return pickle.loads(base64.b64decode(line))

    def report(self):
        return self.command("report")

    def wait_report(self, predicate, timeout=10.0):
        """Poll the report until ``predicate(report)`` holds; returns the last report."""
        deadline = time.monotonic() + timeout
        while True:
            report = self.report()
            if predicate(report) or time.monotonic() > deadline:
                return report
            time.sleep(0.02)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(base64.b64encode(pickle.dumps(("quit",))) + b"\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            # stdin may still hold the unsent "quit" of a process that is already gone:
            # closing flushes it and fails, but the pipe is closed all the same.
            with contextlib.suppress(BrokenPipeError):
                pipe.close()


def run_remote_clients(python, tmp_path, port, packets, actions, clients=1, cfg=None, timeout=60):
    """Run ``peers/connect.py`` under ``python``; returns its list of reports."""
    spec = tmp_path / "connect-spec.pickle"
    spec.write_bytes(
        pickle.dumps(
            {
                "port": port,
                "packets": list(packets),
                "actions": list(actions),
                "clients": clients,
                "cfg": cfg or {},
            }
        )
    )
    result = subprocess.run(
        [python, str(PEERS / "connect.py"), str(spec)],
        env=subprocess_env(),
        capture_output=True,
        timeout=timeout,
    )
    lines = result.stdout.decode().strip().splitlines()
    if result.returncode != 0 or not lines:
        raise AssertionError(f"client peer failed ({result.returncode}): {result.stderr.decode()[-3000:]}")
    return pickle.loads(base64.b64decode(lines[-1]))
