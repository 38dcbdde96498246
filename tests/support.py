"""Helpers shared by the tests (imported as a plain module; see conftest.py)."""

import contextlib
import pickle
import socket
import struct
import subprocess
import sys
import threading

from conftest import PEERS, subprocess_env

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
