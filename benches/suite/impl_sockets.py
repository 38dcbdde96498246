"""The plain-socket peer of the benchmark suite, the Python floor: blocking sockets with
peng3dnet's framing, a thread per connection on the server, no library in between."""

import socket
import threading

from common import (
    BLOB,
    DONE,
    ECHO,
    ITEM,
    READY,
    UPDATE,
    WAVE,
    Clock,
    frame,
    measure_big,
    measure_rtt,
    read_frame,
    small_message,
    update_message,
)


def serve(params):
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    state = {"items": 0, "ready": [], "lock": threading.Lock()}

    def accept_forever():
        while True:
            conn, _ = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=_handle, args=(conn, params, state), daemon=True).start()

    threading.Thread(target=accept_forever, daemon=True).start()
    return listener.getsockname()[1]


def _handle(conn, params, state):
    stream = conn.makefile("rb", buffering=1 << 16)
    while (got := read_frame(stream)) is not None:
        kind, payload = got
        if kind in (ECHO, BLOB):
            conn.sendall(frame(kind, payload))
        elif kind == ITEM:
            state["items"] += 1
            if state["items"] == params["count"]:
                state["items"] = 0
                conn.sendall(frame(DONE, params["count"]))
        elif kind == READY:
            with state["lock"]:
                state["ready"].append(conn)
                targets = None
                if len(state["ready"]) == params["clients"]:
                    targets, state["ready"] = state["ready"], []
            if targets:
                update = update_message(0)
                for tick in range(params["updates"]):
                    update["tick"] = tick
                    once = frame(UPDATE, update)
                    for target in targets:
                        target.sendall(once if params["mode"] == "broadcast" else frame(UPDATE, update))


def _connect(port):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, sock.makefile("rb", buffering=1 << 16)


def run_client(params):
    return globals()["_scenario_" + params["scenario"]](params)


def _scenario_rtt(params):
    sock, stream = _connect(params["port"])

    def round_trip(msg):
        sock.sendall(frame(ECHO, msg))
        read_frame(stream)

    return measure_rtt(params, round_trip)


def _scenario_stream(params):
    sock, stream = _connect(params["port"])
    msg = small_message(0)
    with Clock() as clock:
        pending = []
        for seq in range(params["count"]):
            msg["seq"] = seq
            pending.append(frame(ITEM, msg))
            if len(pending) == 64:  # what a careful hand-written sender does: batch writes
                sock.sendall(b"".join(pending))
                pending.clear()
        sock.sendall(b"".join(pending))
        read_frame(stream)
    return {"count": params["count"], "seconds": clock.seconds, "cpu": clock.cpu}


def _scenario_big(params):
    sock, stream = _connect(params["port"])

    def round_trip(payload):
        sender = threading.Thread(target=sock.sendall, args=(frame(BLOB, payload),))
        sender.start()  # the echo starts coming back before the request is all sent
        read_frame(stream)
        sender.join()

    return measure_big(params, round_trip)


def _scenario_fanout(params):
    conns = [_connect(params["port"]) for _ in range(params["clients"])]
    for sock, stream in conns:  # every connection is up before the clock starts
        sock.sendall(frame(ECHO, None))
        read_frame(stream)

    def receive(stream):
        for _ in range(params["updates"]):
            read_frame(stream)

    readers = [threading.Thread(target=receive, args=(stream,)) for _, stream in conns]
    with Clock() as clock:
        for reader in readers:
            reader.start()
        for sock, _ in conns:
            sock.sendall(frame(READY, None))
        for reader in readers:
            reader.join(params["timeout"])
    return {"clients": len(conns), "updates": params["updates"], "seconds": clock.seconds}


def _scenario_conns(params):
    """Blocking connections in waves of WAVE (the server starts a thread for each),
    each answered once (an echo round trip, the peers' stand-in for a handshake)
    before the next wave starts."""
    conns = []
    with Clock() as clock:
        while len(conns) < params["clients"]:
            wave = [_connect(params["port"]) for _ in range(min(WAVE, params["clients"] - len(conns)))]
            for sock, _ in wave:
                sock.sendall(frame(ECHO, None))
            for _, stream in wave:
                read_frame(stream)
            conns.extend(wave)
    _scenario_conns.keep = conns
    return {"clients": len(conns), "seconds": clock.seconds, "cpu": clock.cpu}
