//! What happens on a connection, as its peer's Python side sees it: the events a
//! connection queues in its peer's inbox, and the accounting of its queued events
//! (for back-pressure).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::Conn;
use crate::transport::inbox::{self, Queued};

/// The inbox of a peer: the events of all its connections.
pub type Inbox = inbox::Inbox<Event>;

/// Severity of a [`Event::Log`] record (mapped to Python `logging` levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Routine information (a connection closed because of a protocol error).
    Info,
    /// Something a peer did wrong.
    Warning,
}

/// One thing that happened on a connection.
#[derive(Debug)]
pub enum Event {
    /// A connection was established (server: accepted; client: connected).
    Connected(Arc<Conn>),
    /// A packet arrived. `body` is its msgpack bytes (already inflated).
    Packet {
        /// The connection.
        conn: Arc<Conn>,
        /// Packet id.
        pid: u32,
        /// Header flags as received.
        flags: u16,
        /// msgpack body.
        body: Bytes,
    },
    /// The core sent an internal packet (hello, handshake, ...) on its own.
    Sent {
        /// The connection.
        conn: Arc<Conn>,
        /// Packet id.
        pid: u32,
        /// msgpack body.
        body: Bytes,
        /// The complete frame as written.
        frame: Bytes,
    },
    /// The handshake completed.
    HandshakeComplete(Arc<Conn>),
    /// A connection type whose `init` lives in Python was chosen.
    InitInPython {
        /// The connection.
        conn: Arc<Conn>,
        /// The connection type's name.
        conntype: String,
    },
    /// The connection is over; nothing more will arrive from it.
    Closed {
        /// The connection.
        conn: Arc<Conn>,
        /// Why (the peer's reason, ours, or "socketclose").
        reason: Option<String>,
    },
    /// A diagnostic about the peer rather than one connection (a refused client).
    PeerLog {
        /// Severity.
        level: LogLevel,
        /// Text.
        message: String,
    },
    /// A diagnostic for the Python `logging` module.
    Log {
        /// The connection concerned.
        conn: Arc<Conn>,
        /// Severity.
        level: LogLevel,
        /// Text.
        message: String,
    },
}

impl Event {
    /// The connection this event belongs to, if any.
    pub fn conn(&self) -> Option<&Arc<Conn>> {
        match self {
            Event::Connected(conn) | Event::HandshakeComplete(conn) => Some(conn),
            Event::Packet { conn, .. }
            | Event::Sent { conn, .. }
            | Event::InitInPython { conn, .. }
            | Event::Closed { conn, .. }
            | Event::Log { conn, .. } => Some(conn),
            Event::PeerLog { .. } => None,
        }
    }
}

/// A connection counts its events until Python takes them: how many (a closed
/// connection reads as closed only after the last), and the bytes of its packets (its
/// reader stops while they exceed the inbox limit; they are charged to the memory
/// budget until taken).
impl Queued for Event {
    fn queued(&self) {
        let Some(conn) = self.conn() else {
            return;
        };
        conn.undelivered.fetch_add(1, Ordering::SeqCst);
        if let Event::Packet { body, .. } = self {
            conn.queued_in_add(body.len());
        }
    }

    fn weight(&self) -> usize {
        match self {
            Event::Packet { body, .. } => body.len(),
            _ => 0,
        }
    }

    fn taken(&self) {
        let Some(conn) = self.conn() else {
            return;
        };
        conn.undelivered.fetch_sub(1, Ordering::SeqCst);
        if let Event::Packet { body, .. } = self {
            let before = conn.queued_in_sub(body.len());
            let limit = conn.settings.inbox_limit;
            if before > limit && before - body.len() <= limit {
                conn.changed.notify_waiters();
            }
        }
    }
}
