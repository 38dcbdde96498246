"""peng3dnet-rs over its in-process transport: server and client(s) in one process,
joined by ``memory:`` addresses instead of sockets, with the threaded API (the
scenarios and handlers of impl_peng).

The driver still starts a server process; here it only reports a port nobody uses. The
real server runs in the client process, so the client's CPU figure covers both sides
(the server's is about zero).
"""

import time

import impl_peng

ADDRESS = "memory:bench"


def serve(params):
    return 0


def run_client(params):
    server = impl_peng.BenchServer(dict(params["server"]), addr=ADDRESS)
    server.runAsync()
    server.process_async()
    while server.sock is None:
        time.sleep(0.01)
    impl_peng.SERVER_ADDRESS = ADDRESS
    return impl_peng.run_client(params)
