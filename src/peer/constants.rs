//! Numbers and names of the protocol that the core needs (the Python package
//! re-states them for users in `peng3dnet.constants`).

/// Connection states (`STATE_*`).
pub mod state {
    /// A new connection.
    pub const INIT: u32 = 0;
    /// Handshake packet (client) or its acceptance (server) awaited.
    pub const HANDSHAKE_WAIT1: u32 = 1;
    /// The server waits for the client's connection type.
    pub const WAITTYPE: u32 = 3;
    /// The client waits for the server's hello.
    pub const HELLOWAIT: u32 = 4;
    /// Handshake complete.
    pub const ACTIVE: u32 = 64;
    /// Closed.
    pub const CLOSED: u32 = 128;
}

/// TLS security levels of a connection (`SSLSEC_*`).
pub mod sslsec {
    /// Plain TCP.
    pub const NONE: u32 = 0;
    /// Encrypted, but the peer's identity is not established.
    pub const ENCRYPTED: u32 = 2;
    /// Encrypted, and the server's certificate is authenticated.
    pub const SERVERAUTH: u32 = 3;
    /// Encrypted, and both sides' certificates are authenticated.
    pub const BOTHAUTH: u32 = 4;
}

/// Internal packet ids, fixed by the protocol.
pub mod pid {
    /// Server -> client: version information.
    pub const HELLO: u32 = 1;
    /// Client -> server: the connection type.
    pub const SETTYPE: u32 = 2;
    /// Server -> client: version and registry.
    pub const HANDSHAKE: u32 = 3;
    /// Client -> server: handshake accepted.
    pub const HANDSHAKE_ACCEPT: u32 = 4;
    /// Either way: the sender closes the connection, with a reason.
    pub const CLOSE: u32 = 16;
    /// Either way, peng3dnet-rs only: a heartbeat probe (`{"ping": n}`) or its answer
    /// (`{"pong": n}`). Sent only to a peer that offered heartbeats in the handshake
    /// ([`super::HEARTBEAT_KEY`]), so the original never receives one. Not part of the
    /// packet registry (a registry with it would not match the original's).
    pub const HEARTBEAT: u32 = 32;
}

/// The key a peng3dnet-rs peer adds to its hello (server) or settype (client) message
/// to offer application-level heartbeats; the value is its probe interval in seconds.
/// The original reads only the keys it knows, so the extra key is invisible to it.
pub const HEARTBEAT_KEY: &str = "rs.heartbeat";

/// The internal packets as both sides register them, in the original's order.
pub const INTERNAL_PACKETS: [(&str, u32); 5] = [
    ("peng3dnet:internal.hello", pid::HELLO),
    ("peng3dnet:internal.settype", pid::SETTYPE),
    ("peng3dnet:internal.handshake", pid::HANDSHAKE),
    ("peng3dnet:internal.handshake.accept", pid::HANDSHAKE_ACCEPT),
    ("peng3dnet:internal.closeconn", pid::CLOSE),
];

/// Connection type names.
pub const CONNTYPE_CLASSIC: &str = "classic";
/// The connection type of a connection that has not chosen one yet.
pub const CONNTYPE_NOTSET: &str = "_notset";

/// Version strings announced in hello and handshake packets.
pub const VERSION: &str = "0.2.0";
/// The wire protocol version; a peer with another one is refused.
pub const PROTOVERSION: i64 = 2;

/// Close reasons sent to the peer and reported to `on_close`.
pub mod reason {
    /// The peer speaks another protocol version.
    pub const PROTOVERSION_MISMATCH: &str = "protoversionmismatch";
    /// The client asked for a connection type the server does not know.
    pub const UNKNOWN_CONNTYPE: &str = "unknownconntype";
    /// Client and server registered different packets.
    pub const PACKETREG_MISMATCH: &str = "packetregmismatch";
    /// A packet arrived in a state where it is not allowed.
    pub const SMARTPACKET_INVALID: &str = "smartpacketinvalid";
    /// The handshake packet's registry is not a map of names to ids.
    pub const INVALID_HANDSHAKE: &str = "invalidhandshake";
    /// Input that breaks the wire format or the handshake's message shapes; the close
    /// reason is this, a colon and what was wrong.
    pub const PROTOCOL_ERROR: &str = "protocolerror";
    /// The socket was closed without a close packet.
    pub const SOCKET_CLOSE: &str = "socketclose";
    /// The handshake did not complete in time.
    pub const HANDSHAKE_TIMEOUT: &str = "handshaketimeout";
    /// Nothing arrived for longer than the idle timeout.
    pub const IDLE_TIMEOUT: &str = "idletimeout";
    /// The peer did not read what we sent; the write queue hit its limit.
    pub const WRITE_QUEUE_FULL: &str = "writequeuefull";
    /// The server has as many connections as it allows.
    pub const SERVER_FULL: &str = "serverfull";
    /// The server speaks only TLS and the client does not.
    pub const TLS_REQUIRED: &str = "tlsrequired";
    /// The peer went silent: no heartbeat (or anything else) within the keepalive
    /// timeout, or the operating system's TCP keepalive gave up on it.
    pub const TIMEOUT: &str = "timeout";
    /// The receiver's memory budget was exhausted and this connection held the most,
    /// or asked for more than was left.
    pub const MEMORY_LIMIT: &str = "memorylimit";
}
