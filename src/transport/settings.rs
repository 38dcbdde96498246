//! The settings a peer gives every connection it runs: decoding limits, compression,
//! queue limits, timeouts and dead-peer detection. Read from `net.*` configuration by
//! the bindings; read-only once a connection has them.

use std::time::Duration;

use crate::protocol::packet::Compression;
use crate::protocol::Limits;

/// Per-peer settings that every connection of the peer shares.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Decoding limits.
    pub limits: Limits,
    /// Compression of outgoing bodies.
    pub compression: Compression,
    /// Bytes of one connection's packets that may wait in the inbox before its reader
    /// stops reading (a single larger packet is still accepted).
    pub inbox_limit: usize,
    /// How long a closed connection keeps draining so the peer can read our close packet.
    pub linger: Duration,
    /// Longest a graceful close may take (flushing included) before it becomes an abort.
    pub close_timeout: Duration,
    /// A connection that has not reached `STATE_ACTIVE` (or beyond) this long after it
    /// started is closed with "handshaketimeout"; `None`: never.
    pub handshake_timeout: Option<Duration>,
    /// A connection from which nothing arrives for this long is closed with
    /// "idletimeout"; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Bytes that may wait to be written to one connection. A peer that lets more pile
    /// up is not reading: the connection is dropped with "writequeuefull". (One frame
    /// larger than this is still accepted into an empty queue.)
    pub write_queue_limit: usize,
    /// Dead-peer detection (`net.keepalive.*`); `None`: off.
    pub keepalive: Option<Keepalive>,
}

/// Dead-peer detection: TCP keepalive on every socket, and heartbeats on connections
/// whose peer is a peng3dnet-rs peer that offered them too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keepalive {
    /// How often a connection is probed.
    pub interval: Duration,
    /// A connection on which nothing arrives for this long is closed with "timeout"
    /// (heartbeats), or given up by the operating system (TCP keepalive).
    pub timeout: Duration,
}

impl Keepalive {
    /// The heartbeat interval as announced in the handshake, in seconds.
    pub fn interval_secs(&self) -> f64 {
        self.interval.as_secs_f64()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            compression: Compression::default(),
            inbox_limit: 16 * 1024 * 1024,
            linger: Duration::from_secs(2),
            close_timeout: Duration::from_secs(10),
            handshake_timeout: Some(Duration::from_secs(10)),
            idle_timeout: None,
            write_queue_limit: 64 * 1024 * 1024,
            keepalive: Some(Keepalive {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(30),
            }),
        }
    }
}
