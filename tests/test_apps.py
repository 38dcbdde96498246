"""A game written the way peng3d games use the library runs unchanged on every pairing.

``peers/app_game.py`` is such a game (SmartPacket subclasses reached through
``peng3dnet.net.packet`` with list-valued states in overridden ``_send``/``_receive``,
packets registered from an event callback, a pingable server with ``getPingData``, a
client pumped by the app's own thread, constants from star imports). Its server and
client run in separate processes, each under either implementation.
"""

import json
import subprocess

import pytest
from support import PEERS, subprocess_env

GAME = str(PEERS / "app_game.py")


def _play(python_of, server_impl, client_impl):
    """One game: the client's and the server's reports."""
    server = subprocess.Popen(
        [python_of(server_impl), GAME, "server"],
        env=subprocess_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = server.stdout.readline().decode()
        assert line.startswith("PORT "), (line, server.stderr.read()[-3000:])
        client = subprocess.run(
            [python_of(client_impl), GAME, "client", line.split()[1]],
            env=subprocess_env(),
            capture_output=True,
            timeout=60,
        )
        assert client.returncode == 0, client.stderr.decode()[-3000:]
        played = json.loads(client.stdout.decode().strip().splitlines()[-1])
        out, _ = server.communicate(b"done\n", timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    hosted = json.loads(out.decode().strip().splitlines()[-1])
    return played, hosted


@pytest.mark.parametrize("server_impl", ["ours", "reference"])
@pytest.mark.parametrize("client_impl", ["ours", "reference"])
def test_game_runs_on_every_pairing(python_of, server_impl, client_impl):
    played, hosted = _play(python_of, server_impl, client_impl)
    # The original can leave a reply unsent until its next send (REFERENCE bug 21): under
    # load, a game with its server stalled before the invitation (1 run in ~20). A game
    # the original serves gets two more tries; ours serves one.
    for _ in range(2 if server_impl == "reference" else 0):
        if "started" in played:
            break
        played, hosted = _play(python_of, server_impl, client_impl)
    assert played["pong"] == {"name": "Card table", "motd": "welcome", "players": 1}
    assert played["registered"] == {"ok": True, "name": "alice"}
    assert played["invites"] == ["red"]
    assert played["started"] == {"lobby": "red", "players": 2}
    assert hosted["accounts"] == ["alice"]
    assert [lobby for _, lobby in hosted["lobbies"]] == ["red"]
    # The quit's reason reaches the server whichever side is ours. The original's client
    # never reports a close it asked for with its own reason (at best, the hang-up).
    assert hosted["closed"][-1] == "userquit", hosted
    if client_impl == "ours":
        assert played["closed"] == ["userquit"]
    else:
        assert played["closed"] in ([], ["socketclose"])
