"""Importing peng3dnet does nothing an app could notice: no logger, thread or socket.

Apps install their own logger class with ``logging.setLoggerClass`` before importing
the library; such a class may refuse to be created before the app has set itself up.
"""

import subprocess
import sys

from support import subprocess_env

SCRIPT = r"""
import logging, os, threading

class Refusing(logging.Logger):
    def __init__(self, name, level=0):
        raise RuntimeError(f"logger {name!r} created before the app initialised")

logging.setLoggerClass(Refusing)
threads = threading.active_count()

def sockets():
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                found.add(fd)
        except OSError:
            pass
    return found

before = sockets()
import peng3dnet, peng3dnet.net, peng3dnet.ext.ping, peng3dnet.ext.mpgame, peng3dnet.packet.internal
from peng3dnet.net import *
from peng3dnet.constants import *
names = [n for n in logging.Logger.manager.loggerDict if n.startswith("peng3dnet")]
print(names, threading.active_count() - threads, sorted(sockets() - before))
"""


def test_import_creates_no_logger_thread_or_socket():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=subprocess_env(), capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert result.stdout.decode().split("\n")[-2] == "[] 0 []"
