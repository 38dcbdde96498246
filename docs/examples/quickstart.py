"""A server and a client on loopback: one packet type, sent both ways, then a clean close."""

import threading

import peng3dnet
from peng3dnet.packet import SmartPacket

replies = threading.Event()


class Greeting(SmartPacket):
    """Client -> server: a name; server -> client: a greeting for it."""

    # Checked on every send and receive: only after the handshake (the default state),
    # and a violation closes the connection instead of dropping the packet.
    state = peng3dnet.constants.STATE_ACTIVE
    invalid_action = "close"

    def receive(self, msg, cid=None):
        if cid is not None:  # we are the server: answer the client that sent it
            self.peer.send_message("hello:greeting", {"text": f"hello, {msg['name']}"}, cid)
        else:  # we are the client
            print("server says:", msg["text"])
            replies.set()


class GreetingServer(peng3dnet.Server):
    # Every method named _reg_packets_* runs when the registry is set up.
    def _reg_packets_hello(self):
        self.register_packet("hello:greeting", Greeting(self.registry, self))


class GreetingClient(peng3dnet.Client):
    _reg_packets_hello = GreetingServer._reg_packets_hello


server = GreetingServer(addr=("127.0.0.1", 0))  # port 0: any free port
server.bind()
server.runAsync()  # accept and read in the background
server.process_async()  # run packet handlers in a thread of their own
port = server.sock.getsockname()[1]

client = GreetingClient(addr=("127.0.0.1", port))
client.runAsync()
client.process_async()
client.wait_for_connection(5)  # the handshake is complete
client.send_message("hello:greeting", {"name": "player one"})
assert replies.wait(5), "no reply"

client.close_connection(reason="bye")
client.wait_for_close(5)
server.shutdown(join=True, timeout=5)
