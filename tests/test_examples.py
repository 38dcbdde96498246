"""The examples run unchanged under both implementations, in every combination."""

import re
import subprocess
import sys
import time

import pytest
from support import ROOT, subprocess_env

EXAMPLES = ROOT / "examples"
IMPLS = ["ours", "reference"]


def start_server(python, example, seconds):
    proc = subprocess.Popen(
        [python, str(EXAMPLES / example / "server.py"), "--port", "0", "--seconds", str(seconds)],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = proc.stdout.readline()
    match = re.search(r"listening on [\d.]+:(\d+)", first)
    if not match:
        proc.kill()
        raise AssertionError(f"{example} server did not start: {first!r} {proc.stderr.read()[-2000:]}")
    return proc, int(match.group(1))


def run_client(python, example, port, *args, timeout=60):
    result = subprocess.run(
        [python, str(EXAMPLES / example / "client.py"), "--port", str(port), *args],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def finish(proc):
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    return out


@pytest.mark.parametrize("server_impl", IMPLS)
@pytest.mark.parametrize("client_impl", IMPLS)
def test_echo(python_of, server_impl, client_impl):
    server, port = start_server(python_of(server_impl), "echo", seconds=3)
    out = run_client(python_of(client_impl), "echo", port, "--count", "300")
    assert re.search(r"300 messages echoed in order in [\d.]+ s; median round trip [\d.]+ ms", out), out
    log = finish(server)
    assert "client 1 joined from 127.0.0.1:" in log
    assert "client 1 left (done) after 300 messages" in log
    assert log.rstrip().endswith("echo server stopped")


@pytest.mark.parametrize("server_impl", IMPLS)
def test_chat_with_both_implementations_in_one_room(python_of, server_impl):
    server, port = start_server(python_of(server_impl), "chat", seconds=5)
    # alice (ours) listens long enough to hear bob (reference) join, talk and leave.
    alice = subprocess.Popen(
        [
            python_of("ours"),
            str(EXAMPLES / "chat" / "client.py"),
            "--port",
            str(port),
            "--nick",
            "alice",
            "--say",
            "hello from ours",
            "--listen",
            "2.5",
        ],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)  # alice joins first
    bob_out = run_client(
        python_of("reference"), "chat", port, "--nick", "bob", "--say", "hi from the reference"
    )
    alice_out, alice_err = alice.communicate(timeout=30)
    assert alice.returncode == 0, alice_err[-2000:]
    assert "[alice] welcome! present: alice" in alice_out
    assert "[alice] <alice> hello from ours" in alice_out
    assert "[alice] <*> bob joined" in alice_out
    assert "[alice] <bob> hi from the reference" in alice_out
    assert "[alice] <*> bob left (quit)" in alice_out
    assert "[bob] welcome! present: alice, bob" in bob_out
    assert "[bob] <bob> hi from the reference" in bob_out
    log = finish(server)
    assert "alice joined" in log and "bob joined" in log


def run_script(python, script, *args, timeout=60):
    """Run an example that starts its own server and clients; it must exit with 0."""
    result = subprocess.run(
        [python, str(script), *args], env=subprocess_env(), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.parametrize("transport", [[], ["--tcp"]], ids=["memory", "tcp"])
def test_aio_game(ours_python, transport):
    """examples/aio/game.py: the asyncio API with its server and two players in one
    process, over the in-process transport and over TCP."""
    result = run_script(ours_python, EXAMPLES / "aio" / "game.py", *transport)
    assert "final positions: [(0, 6), (5, 0)]; players joined: 2" in result.stdout
    assert ("memory:game" in result.stdout) == (not transport)


def test_demo(ours_python):
    """examples/demo.py, what `./run demo` runs: every section completes."""
    result = run_script(ours_python, EXAMPLES / "demo.py", timeout=120)
    assert "clean shutdown:        3/3 clients got the reason" in result.stdout
    assert "bob still hears alice" in result.stdout
    assert "closed with: demo over" in result.stdout
