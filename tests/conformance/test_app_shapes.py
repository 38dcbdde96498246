"""A game written the way peng3d games use the library (``peers/app_game.py``), with its
server and client in one process; see tests/test_apps.py for every pairing of
implementations across processes."""

import importlib.util

import pytest
from support import IMPL, PEERS, wait_until


def _game():
    spec = importlib.util.spec_from_file_location("app_game", PEERS / "app_game.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def game():
    game = _game()
    servers = []
    yield game, servers
    for server in servers:
        server.stop()
        server.join(2)


def play(game, servers, client_order=None):
    module = game
    server = module.start_server()
    servers.append(server)
    assert wait_until(lambda: server.sock is not None)
    if client_order is not None:
        module.SERVER_ORDER = client_order  # the client registers in this order
    report = module.run_client(("127.0.0.1", server.sock.getsockname()[1]))
    assert wait_until(lambda: "userquit" in server.report["closed"])
    return server, report


def test_game_plays(game):
    module, servers = game
    server, report = play(module, servers)
    # The original can leave a reply unsent until its next send (REFERENCE bug 21): under
    # load (the full test command) its game stalled before "started" in 2 of 3 runs. The
    # original gets two more games; ours gets one.
    for _ in range(2 if IMPL == "reference" else 0):
        if "started" in report:
            break
        module = _game()
        server, report = play(module, servers)
    assert report["registered"] == {"ok": True, "name": "alice"}
    assert report["started"] == {"lobby": "red", "players": 2}
    assert report["pong"]["players"] == 1
    assert server.report["accounts"] == ["alice"]


@pytest.mark.reference_bug(17)
def test_game_plays_with_packets_registered_in_another_order(game):
    # The server registered SERVER_ORDER before start_server returned; the client
    # registers the same names with the first one moved to the end.
    module, servers = game
    order = [*module.SERVER_ORDER[1:], module.SERVER_ORDER[0]]
    server, report = play(module, servers, client_order=order)
    assert report["started"] == {"lobby": "red", "players": 2}
    assert server.report["lobbies"][0][1] == "red"
