"""The ``peng3dnet`` command line, end to end as subprocesses; and ping across
implementations."""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from support import PEERS, Harness, subprocess_env, wait_until

import peng3dnet
from peng3dnet.packet import Packet

CLI = [sys.executable, "-m", "peng3dnet"]


def run(*args, timeout=60):
    return subprocess.run(
        [*CLI, *args], env=subprocess_env(), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def serve():
    """Starts ``peng3dnet serve --port 0``; yields (process, port)."""
    procs = []

    def start(*extra):
        proc = subprocess.Popen(
            [*CLI, "serve", "--port", "0", *extra],
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        line = proc.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        return proc, int(match.group(1))

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def closed_port():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def test_version():
    result = run("version")
    assert result.returncode == 0
    assert f"peng3dnet API {peng3dnet.version.VERSION}, protocol 2" in result.stdout
    assert "native core:" in result.stdout


def test_version_says_where_the_package_is_and_whether_the_original_is_too(tmp_path):
    result = run("version")
    package = pathlib.Path(peng3dnet.__file__).resolve().parent
    assert f"imported from: {package}" in result.stdout
    assert "original peng3dnet: not installed" in result.stdout
    # The original's metadata elsewhere on the path: reported, ours still imported.
    info = tmp_path / "peng3dnet-0.1.3a0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: peng3dnet\nVersion: 0.1.3a0\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "peng3dnet", "version"], capture_output=True, text=True, timeout=30, env=env
    )
    assert f"original peng3dnet: 0.1.3a0 is installed too, in {tmp_path.resolve()}" in result.stdout
    assert "not where this package was imported from" in result.stdout
    # Installed into the same directory as ours: the files mix.
    (tmp_path / "peng3dnet").symlink_to(package)
    result = subprocess.run(
        [sys.executable, "-m", "peng3dnet", "version"], capture_output=True, text=True, timeout=30, env=env
    )
    assert "share one peng3dnet/ directory and mix" in result.stdout, result.stdout


@pytest.mark.parametrize("command", [[], ["serve"], ["ping"], ["version"]])
def test_help(command):
    result = run(*command, "--help")
    assert result.returncode == 0
    assert "usage: peng3dnet" in result.stdout


def test_console_script_is_installed():
    script = __import__("pathlib").Path(sys.executable).with_name("peng3dnet")
    result = subprocess.run([str(script), "version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "peng3dnet-rs" in result.stdout


def test_ping_text_output(serve):
    _, port = serve()
    result = run("ping", f"127.0.0.1:{port}", "-c", "3", "-i", "0.05")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"PING 127.0.0.1:{port}")
    assert len(re.findall(rf"answer from 127\.0\.0\.1:{port}: seq=\d time=[\d.]+ ms", out)) == 3
    assert "3 pings sent, 3 answered, 0% loss" in out
    assert re.search(r"round-trip min/avg/max/stddev = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms", out)
    assert f"server: peng3dnet {peng3dnet.version.VERSION} (protocol 2)" in out
    assert '"name": "peng3dnet demo server"' in out


def test_ping_json(serve):
    _, port = serve("--name", "json test")
    result = run("ping", f"127.0.0.1:{port}", "-c", "2", "-i", "0", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["sent"] == 2 and report["received"] == 2 and report["loss_percent"] == 0
    assert len(report["times_ms"]) == 2
    assert report["rtt_ms"]["min"] <= report["rtt_ms"]["avg"] <= report["rtt_ms"]["max"]
    assert report["server"]["name"] == "json test"
    assert report["server"]["peng3dnet"]["protoversion"] == 2


def test_ping_the_original_server(ref_python):
    proc = subprocess.Popen(
        [ref_python, str(PEERS / "ping_peer.py"), "server", "10"],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline().split()[1])
        result = run("ping", f"127.0.0.1:{port}", "-c", "2", "-i", "0", "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["received"] == 2
        assert report["server"]["name"] == "peer"
        assert report["server"]["peng3dnet"]["protoversion"] == 2
    finally:
        proc.kill()
        proc.communicate()


def ping_with(python, port):
    """Ping 127.0.0.1:port with ``peers/ping_peer.py`` under ``python``; its answer."""
    result = subprocess.run(
        [python, str(PEERS / "ping_peer.py"), "client", str(port)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["answer"]


def test_the_original_pings_our_server(serve, ref_python):
    _, port = serve()
    answer = ping_with(ref_python, port)
    assert answer["name"] == "peng3dnet demo server"
    assert answer["oldmsg"]["question"] == "who are you?"
    assert answer["delay"] >= 0


def test_our_ping_server_answers_the_original_and_ours(ours_python, ref_python):
    proc = subprocess.Popen(
        [ours_python, str(PEERS / "ping_peer.py"), "server", "10"],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline().split()[1])
        for python in (ref_python, ours_python):
            answer = ping_with(python, port)
            assert answer["asked"] == "who are you?"
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("127.0.0.1:notaport", "bad address '127.0.0.1:notaport'"),
        ("127.0.0.1:70000", "out of range"),
        ("no-such-host.invalid:8080", "cannot resolve host 'no-such-host.invalid'"),
    ],
)
def test_ping_bad_addresses(target, message):
    result = run("ping", target, "-c", "1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("peng3dnet ping: error:") and message in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["-c", "0"], ["-i", "-1"], ["--timeout", "0"]])
def test_ping_bad_options(args):
    result = run("ping", "127.0.0.1", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_ping_a_closed_port():
    port = closed_port()
    result = run("ping", f"127.0.0.1:{port}", "-c", "2", "-i", "0")
    assert result.returncode == 1
    assert result.stdout.count("cannot reach") == 2
    assert "2 pings sent, 0 answered, 100% loss" in result.stdout
    assert "Traceback" not in result.stderr


def test_serve_on_a_busy_port():
    with socket.create_server(("127.0.0.1", 0)) as busy:
        result = run("serve", "--port", str(busy.getsockname()[1]))
    assert result.returncode == 2
    assert result.stderr.startswith("peng3dnet serve: error: cannot listen on 127.0.0.1:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_serve_stops_on_ctrl_c_and_tells_clients_why(serve):
    proc, port = serve()
    reasons = []

    class Client(peng3dnet.Client):
        def _reg_packets_demo(self):
            for name in ("echo:echo", "echo:latency", "chat:nick", "chat:welcome", "chat:message"):
                self.register_packet(name, Packet(self.registry, self))

        def on_close(self, reason=None):
            reasons.append(reason)

    harness = Harness()
    try:
        harness.client(port, Client)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert wait_until(lambda: reasons == ["servershutdown"])
        assert "client 1 connected from 127.0.0.1:" in out
        assert "client 1 closed (servershutdown)" in out
        assert "stopped; 1 client(s) were told why" in out
    finally:
        harness.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from tls_certs import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))


def test_tls_serve_and_ping(serve, pki):
    _, port = serve("--tls-cert", pki["self_signed"], "--tls-key", pki["self_signed_key"])
    target = f"127.0.0.1:{port}"
    pinned = run("ping", target, "-c", "1", "--cafile", pki["self_signed"], "--json")
    assert pinned.returncode == 0, pinned.stderr
    assert json.loads(pinned.stdout)["received"] == 1
    assert run("ping", target, "-c", "1", "--tls").returncode == 0  # encrypted, unverified
    wrong_ca = run("ping", target, "-c", "1", "--cafile", pki["ca"])
    assert wrong_ca.returncode == 1
    assert "not trusted" in wrong_ca.stdout
    plain = run("ping", target, "-c", "1")
    assert plain.returncode == 1
    assert "tlsrequired" in plain.stdout


def test_tls_options_are_checked(pki, tmp_path):
    result = run("serve", "--port", "0", "--tls-cert", pki["server"])
    assert result.returncode == 2
    assert "--tls-cert and --tls-key go together" in result.stderr
    missing = str(tmp_path / "missing.pem")
    result = run("serve", "--port", "0", "--tls-cert", missing, "--tls-key", pki["server_key"])
    assert result.returncode == 2
    assert "missing.pem" in result.stderr and "Traceback" not in result.stderr
    result = run("ping", "127.0.0.1:1", "--cafile", missing)
    assert result.returncode == 2
    assert "missing.pem" in result.stderr and "Traceback" not in result.stderr


def test_serve_prints_traffic_statistics(serve):
    proc, port = serve("--stats", "0.2")

    class Client(peng3dnet.Client):
        def _reg_packets_demo(self):
            for name in ("echo:echo", "echo:latency", "chat:nick", "chat:welcome", "chat:message"):
                self.register_packet(name, Packet(self.registry, self))

    harness = Harness()
    try:
        client = harness.client(port, Client)
        client.send_message("echo:echo", "counted")
        time.sleep(0.6)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        lines = [line for line in out.splitlines() if "stats: 1 connected (1 accepted, 0 refused)" in line]
        assert lines, out
        assert re.search(
            r"in \d+ packets / \d+ B, out \d+ packets / \d+ B, 0 B queued; rtt mean \d", lines[-1]
        )
    finally:
        harness.close()
