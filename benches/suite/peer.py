"""One side of one benchmark scenario, in its own process:

    python peer.py IMPL server PARAMS_JSON    # prints "PORT n", then answers stdin
    python peer.py IMPL client PARAMS_JSON    # prints "RESULT {...}", waits for stdin EOF

IMPL is ``peng`` (peng3dnet: ours or the original, whichever the interpreter has),
``zmq`` (pyzmq + msgpack), ``asyncio`` (asyncio streams on uvloop) or ``sockets``
(blocking sockets, a thread per connection). The server answers each stdin line
``stats`` with ``{"cpu": s, "rss": bytes}`` and exits at end of input; the client keeps
its connections open until end of input, so the driver can measure the server with
every client connected.
"""

import importlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("PYGLET_SHADOW_WINDOW", "0")

from common import cpu_seconds, raise_fd_limit, rss_bytes


def main():
    impl, role, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    raise_fd_limit()
    module = importlib.import_module(f"impl_{impl}")
    if role == "server":
        port = module.serve(params)
        print(f"PORT {port}", flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                print(json.dumps({"cpu": cpu_seconds(), "rss": rss_bytes()}), flush=True)
    else:
        result = module.run_client(params)
        print("RESULT " + json.dumps(result), flush=True)
        sys.stdin.read()
    sys.stdout.flush()
    os._exit(0)  # daemon threads and open connections need no orderly teardown


if __name__ == "__main__":
    main()
