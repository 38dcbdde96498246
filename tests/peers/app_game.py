"""Peer script: a small multiplayer game written the way peng3d games use peng3dnet.

Runs under either implementation's interpreter; tests/test_apps.py runs its server and
its client in every combination of implementations, and the conformance suite imports
it to run both in one process.

    python app_game.py server          prints "PORT <n>", then a JSON report at exit
    python app_game.py client PORT     prints a JSON report

What it leans on, as real apps do, beyond the documented API:

* packets subclass ``peng3dnet.net.packet.SmartPacket`` and override ``_send`` and
  ``_receive`` so that ``state`` may be a list of states;
* constants come from star imports of library modules (``peng3dnet.packet``);
* the client registers some packets from the ``peng3dnet:client.initialize`` event
  of its peng object, others in a ``_reg_packets_*`` method;
* the client is pumped by the app's own thread with ``process(wait=True, timeout=0.01)``;
* the server mixes in ``PingableServerMixin`` with ``getPingData``, and the client pings
  it with ``pingServer`` before joining;
* the client reads ``registry.reg_int_str.inv``; hooks are assigned on instances.

The game: the client registers an account (the server then marks the connection
logged in), is invited to a lobby, accepts, is told the game starts, and quits with a
reason of its own.
"""

import json
import os
import sys
import threading
import time

os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")

import peng3dnet
import peng3dnet.net
from peng3dnet.ext.ping import PingableServerMixin, pingServer
from peng3dnet.packet import *  # noqa: F403 (the constants, as the original exported them)
from peng3dnet.packet import STATE_ACTIVE, STATE_LOGGEDIN

LOGGED_IN = [STATE_ACTIVE, STATE_LOGGEDIN]


class GamePacket(peng3dnet.net.packet.SmartPacket):
    """The game's base packet: ``state`` may be a list of allowed states."""

    state = LOGGED_IN

    def _allowed(self, cid):
        conn = self.peer.clients[cid] if cid is not None else self.peer
        current = conn.state if cid is not None else conn.remote_state
        states = self.state if isinstance(self.state, list) else [self.state]
        return current in states

    def _send(self, msg, cid=None):
        if self._allowed(cid):
            self.send(msg, cid)

    def _receive(self, msg, cid=None):
        if self._allowed(cid):
            self.receive(msg, cid)


class Register(GamePacket):
    state = STATE_ACTIVE  # before logging in

    def receive(self, msg, cid=None):
        server = self.peer
        server.clients[cid].state = STATE_LOGGEDIN
        server.report["accounts"].append(msg["name"])
        server.send_message("game:registered", {"ok": True, "name": msg["name"]}, cid)
        server.send_message("game:invite", {"lobby": "red", "from": "bot"}, cid)


class Registered(GamePacket):
    def receive(self, msg, cid=None):
        self.peer.report["registered"] = msg


class Invite(GamePacket):
    def receive(self, msg, cid=None):
        client = self.peer
        client.report["invites"].append(msg["lobby"])
        client.send_message("game:accept", {"lobby": msg["lobby"]})


class Accept(GamePacket):
    def receive(self, msg, cid=None):
        self.peer.report["lobbies"].append((cid, msg["lobby"]))
        self.peer.send_message("game:start", {"lobby": msg["lobby"], "players": 2}, cid)


class Start(GamePacket):
    def receive(self, msg, cid=None):
        self.peer.report["started"] = msg


class Chat(GamePacket):
    def receive(self, msg, cid=None):
        pass


def register_game_packets(peer, names):
    classes = {
        "game:register": Register,
        "game:registered": Registered,
        "game:invite": Invite,
        "game:accept": Accept,
        "game:start": Start,
    }
    for name in names:
        peer.register_packet(name, classes.get(name, Chat)(peer.registry, peer))


# Many packet types, as a real game has: the same names on both sides.
FILLER = [f"game:filler{i:02d}" for i in range(34)]
SERVER_ORDER = ["game:register", "game:registered", "game:invite", "game:accept", "game:start", *FILLER]
EVENT_REGISTERED = ["game:invite", "game:accept", "game:start"]  # by the client's event handler


class GameServer(PingableServerMixin, peng3dnet.net.Server):
    pingdata = {"name": "Card table", "motd": "welcome"}

    def __init__(self, *args, **kwargs):
        self.report = {"accounts": [], "lobbies": [], "closed": []}
        super().__init__(*args, **kwargs)

    def getPingData(self, msg, cid):
        return {"players": len(self.clients)}

    def _reg_packets_game(self):
        register_game_packets(self, SERVER_ORDER)


class Seat(peng3dnet.net.ClientOnServer):
    def on_close(self, reason=None):
        self.server.report["closed"].append(reason)


class FakePeng:
    """What a peng3d app gives: ``cfg`` and ``sendEvent``, with listeners."""

    def __init__(self):
        self.cfg = {}
        self.listeners = {}

    def addEventListener(self, name, func):
        self.listeners.setdefault(name, []).append(func)

    def sendEvent(self, name, data):
        for func in self.listeners.get(name, ()):
            func(name, data)


class GameClient(peng3dnet.net.Client):
    def __init__(self, *args, **kwargs):
        self.report = {"invites": [], "closed": []}
        super().__init__(*args, **kwargs)

    def _reg_packets_game(self):
        register_game_packets(self, [n for n in SERVER_ORDER if n not in EVENT_REGISTERED])


def start_server(addr=("127.0.0.1", 0)):
    server = GameServer(addr=addr, clientcls=Seat)
    server.runAsync()
    server.process_async()
    return server


def run_client(addr, timeout=10):
    """Play one game against the server at ``addr``; returns the client's report."""
    pong = pingServer(addr=addr, timeout=timeout)
    peng = FakePeng()
    client = None

    def on_initialize(name, data):
        # Registered when the library says it is initialising, as peng3d apps do.
        register_game_packets(data["client"], EVENT_REGISTERED)

    peng.addEventListener("peng3dnet:client.initialize", on_initialize)
    client = GameClient(peng=peng, addr=addr)
    client.on_close = lambda reason=None: client.report["closed"].append(reason)
    client.runAsync()
    running = True

    def pump():
        # The app's own loop (a game's main loop would draw between calls).
        while running:
            client.process(wait=True, timeout=0.01)

    pumper = threading.Thread(target=pump, daemon=True)
    pumper.start()
    try:
        client.wait_for_connection(timeout)
        register_id = client.registry.reg_int_str.inv["game:register"]
        client.send_message("game:register", {"name": "alice"})
        deadline = time.monotonic() + timeout
        while "started" not in client.report and time.monotonic() < deadline:
            time.sleep(0.01)
        client.close_connection(reason="userquit")
        while not client.report["closed"] and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        running = False
        client.stop()
        pumper.join(2)
    report = dict(client.report)
    report["pong"] = {k: pong.get(k) for k in ("name", "motd", "players")}
    report["register_id"] = register_id
    return report


def main(argv):
    if argv[1] == "server":
        server = start_server()
        deadline = time.monotonic() + 5
        while server.sock is None and time.monotonic() < deadline:
            time.sleep(0.01)
        print(f"PORT {server.sock.getsockname()[1]}", flush=True)
        sys.stdin.readline()  # the test says when the client is done
        deadline = time.monotonic() + 5
        while not server.report["closed"] and time.monotonic() < deadline:
            time.sleep(0.01)
        server.stop()
        print(json.dumps(server.report), flush=True)
    else:
        print(json.dumps(run_client(("127.0.0.1", int(argv[2])))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
