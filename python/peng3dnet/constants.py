"""Constants of the peng3dnet protocol and API.

Safe to use as ``from peng3dnet.constants import *``: the module has no side effects and
exports exactly the names in ``__all__``. The values are part of the wire protocol or of
the public API and equal those of the original library.
"""

__all__ = [
    "CONNTYPE_CLASSIC",
    "CONNTYPE_NOTSET",
    "CONNTYPE_PING",
    "DEFAULT_CONFIG",
    "FLAG_COMPRESSED",
    "FLAG_ENCRYPTED_AES",
    "MAX_PACKETLENGTH",
    "MODE_CHAT",
    "MODE_CLOSED",
    "MODE_NOTSET",
    "MODE_PING",
    "MODE_PLAY",
    "SIDE_CLIENT",
    "SIDE_SERVER",
    "SSLSEC_BOTHAUTH",
    "SSLSEC_ENCRYPTED",
    "SSLSEC_NONE",
    "SSLSEC_SERVERAUTH",
    "SSLSEC_WRAPPED",
    "STATE_ACTIVE",
    "STATE_CLOSED",
    "STATE_HANDSHAKE_WAIT1",
    "STATE_HANDSHAKE_WAIT2",
    "STATE_HELLOWAIT",
    "STATE_INIT",
    "STATE_LOGGEDIN",
    "STATE_WAITTYPE",
    "STRUCT_FORMAT_HEADER",
    "STRUCT_FORMAT_LENGTH32",
]

# --- Framing -------------------------------------------------------------------------

MAX_PACKETLENGTH = 2**32 - 1
"""Largest length the 32-bit length prefix can express (the real limit is configurable)."""

STRUCT_FORMAT_LENGTH32 = "!I"
"""``struct`` format of the length prefix that precedes every packet."""

STRUCT_FORMAT_HEADER = "!IH"
"""``struct`` format of the packet header: packet id, then flag bits."""

FLAG_COMPRESSED = 1 << 0
"""Header flag: the body is zlib-compressed."""

FLAG_ENCRYPTED_AES = 1 << 1
"""Header flag reserved for AES encryption, which was never implemented; refused."""

# --- Connection states ---------------------------------------------------------------

STATE_INIT = 0
"""State of a connection that has just been created."""

STATE_HANDSHAKE_WAIT1 = 1
"""Handshake: waiting for the handshake packet (client) or its acceptance (server)."""

STATE_HANDSHAKE_WAIT2 = 2
"""Reserved; not used by the handshake."""

STATE_WAITTYPE = 3
"""Handshake: the server waits for the client to name its connection type."""

STATE_HELLOWAIT = 4
"""Handshake: the client waits for the server's hello packet."""

STATE_ACTIVE = 64
"""The handshake is complete and packets flow."""

STATE_LOGGEDIN = 65
"""For applications: an active connection whose user has authenticated."""

STATE_CLOSED = 128
"""The connection is closed."""

# --- Modes (application-defined meaning) ---------------------------------------------

MODE_NOTSET = 0
"""No mode chosen yet."""

MODE_CLOSED = 1
"""The connection is closed."""

MODE_PING = 2
"""The connection serves a ping request."""

MODE_PLAY = 3
"""For applications: the connection is in play mode."""

MODE_CHAT = 4
"""For applications: the connection is in chat mode."""

# --- Connection types ----------------------------------------------------------------

CONNTYPE_NOTSET = "_notset"
"""Placeholder before a connection type is chosen; never valid on the wire."""

CONNTYPE_CLASSIC = "classic"
"""The normal connection type: full handshake with registry synchronisation."""

CONNTYPE_PING = "ping"
"""Connection type of one-off ping requests (see :mod:`peng3dnet.ext.ping`)."""

# --- Sides ---------------------------------------------------------------------------

SIDE_CLIENT = 0
"""The client end of a connection."""

SIDE_SERVER = 1
"""The server end of a connection."""

# --- TLS security levels (ordered: higher is stronger) --------------------------------

SSLSEC_NONE = 0
"""No TLS."""

SSLSEC_WRAPPED = 1
"""TLS is in place, without a claim about its strength."""

SSLSEC_ENCRYPTED = 2
"""TLS with an encrypting cipher suite, peer identity not verified."""

SSLSEC_SERVERAUTH = 3
"""Encrypted, and the server's certificate (and host name) verified."""

SSLSEC_BOTHAUTH = 4
"""Encrypted, and both the server's and the client's certificates verified."""

# --- Configuration -------------------------------------------------------------------

DEFAULT_CONFIG = {
    # Addresses
    "net.server.addr": None,
    "net.server.addr.host": "0.0.0.0",
    "net.server.addr.port": 8080,
    "net.client.addr": None,
    "net.client.addr.host": "localhost",
    "net.client.addr.port": 8080,
    # Compression of outgoing bodies
    "net.compress.enabled": True,
    "net.compress.threshold": 8 * 1024,
    "net.compress.level": 6,
    # Never implemented by any version; kept for compatibility
    "net.encrypt.enabled": False,
    # TLS
    "net.ssl.enabled": False,
    "net.ssl.force": True,
    "net.ssl.cafile": None,
    "net.ssl.server.force_verify": True,
    "net.ssl.server.certfile": None,
    "net.ssl.server.keyfile": None,
    "net.ssl.client.check_hostname": False,
    "net.ssl.client.force_verify": False,
    # The client's own certificate and key (PEM), for servers that verify clients
    "net.ssl.client.certfile": None,
    "net.ssl.client.keyfile": None,
    # Events: "auto" sends them only when a peng object was given
    "net.events.enable": "auto",
    # Debug output
    "net.debug.print.recv": False,
    "net.debug.print.send": False,
    "net.debug.print.connect": False,
    "net.debug.print.close": False,
    # Registry synchronisation during the handshake
    "net.registry.autosync": True,
    "net.registry.missingpacketaction": "closeconnection",
    # --- additions of peng3dnet-rs ---
    # Limits on what a peer may send (checked before anything is buffered or inflated)
    "net.limits.max_frame": 256 * 1024 * 1024,
    "net.limits.max_inflated": 256 * 1024 * 1024,
    "net.limits.max_depth": 1024,
    "net.limits.max_container": None,
    # Bytes of one connection's packets that may wait for process() before reading pauses
    "net.limits.inbox": 16 * 1024 * 1024,
    # Bytes that may wait to be sent to one peer; a peer that lets more pile up is dropped
    "net.limits.write_queue": 64 * 1024 * 1024,
    # Connections a server keeps at once; more are refused with the reason "serverfull"
    "net.limits.max_connections": 10000,
    # Largest frame (and inflated body) a peer may send before the handshake is done
    "net.limits.handshake_frame": 64 * 1024,
    # Bytes all connections of a server (or a client) may hold because of what peers
    # send or do not read: partial frames, inflating bodies, packets waiting for
    # process(), queued replies. None: a quarter of the machine's memory, at most 512 MiB
    "net.limits.memory": None,
    # Keep messages for recv() from bind/connect on (otherwise from the first recv() call)
    "net.recv.enabled": False,
    # Messages kept for recv() (the oldest are dropped beyond this many)
    "net.recv.buffer": 1000,
    # asyncio API: messages waiting for recv()/messages() before reading pauses
    "net.aio.recv_buffer": 10000,
    # asyncio API: bytes queued for one peer beyond which send() waits for the peer
    "net.aio.write_buffer": 1024 * 1024,
    # Timeouts in seconds
    "net.timeout.connect": 30.0,
    "net.timeout.close": 10.0,
    "net.timeout.linger": 2.0,
    "net.timeout.shutdown": 10.0,
    # A connection must complete its handshake this soon; None or 0: no limit
    "net.timeout.handshake": 10.0,
    # Close a connection from which nothing arrives this long; None or 0: never
    "net.timeout.idle": None,
    # Seconds the memory budget may stay exhausted before the connection holding the
    # most is dropped with the reason "memorylimit"
    "net.timeout.memory_pressure": 1.0,
    # Dead-peer detection: TCP keepalive on every connection, plus heartbeats when the
    # peer is peng3dnet-rs too (negotiated in the handshake; the original never sees them)
    "net.keepalive.enabled": True,
    # Seconds between probes
    "net.keepalive.interval": 10.0,
    # A peer silent this long is closed with the reason "timeout" (must exceed the interval)
    "net.keepalive.timeout": 30.0,
}
"""Default value of every configuration option."""
