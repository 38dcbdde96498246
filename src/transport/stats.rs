//! What went through a connection: byte, frame and payload counters kept while it runs
//! ([`Traffic`]), their snapshots (summed into a server's totals) and a connection's
//! statistics at one moment ([`ConnStats`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What went through one connection so far. Relaxed counters: each is exact, but a
/// snapshot of several is not taken atomically.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes read from the socket.
    pub bytes_in: AtomicU64,
    /// Frames decoded from those bytes.
    pub frames_in: AtomicU64,
    /// Body bytes of those frames as they arrived (compressed or not).
    pub wire_body_in: AtomicU64,
    /// Body bytes of those frames once inflated: the msgpack payload.
    pub payload_in: AtomicU64,
    /// Frames queued for sending.
    pub frames_queued: AtomicU64,
    /// Body bytes of those frames as sent (compressed or not).
    pub wire_body_out: AtomicU64,
    /// Body bytes of those frames before compression: the msgpack payload.
    pub payload_out: AtomicU64,
    /// Bytes handed to the socket.
    pub bytes_out: AtomicU64,
    /// Socket reads done by a thread waiting for events instead of the reader task
    /// (`reader::TcpReader`, a `direct_read::DirectSocket`).
    pub reads_inline: AtomicU64,
}

/// A snapshot of [`Traffic`] (and the sum of several, for a server's totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficSnapshot {
    /// Bytes read from the socket.
    pub bytes_in: u64,
    /// Frames decoded.
    pub frames_in: u64,
    /// Body bytes received, as they arrived.
    pub wire_body_in: u64,
    /// Body bytes received, inflated.
    pub payload_in: u64,
    /// Frames queued for sending.
    pub frames_queued: u64,
    /// Body bytes queued, as sent.
    pub wire_body_out: u64,
    /// Body bytes queued, before compression.
    pub payload_out: u64,
    /// Bytes handed to the socket.
    pub bytes_out: u64,
    /// Socket reads done by a waiting thread.
    pub reads_inline: u64,
}

impl std::ops::AddAssign for TrafficSnapshot {
    fn add_assign(&mut self, other: TrafficSnapshot) {
        self.bytes_in += other.bytes_in;
        self.frames_in += other.frames_in;
        self.wire_body_in += other.wire_body_in;
        self.payload_in += other.payload_in;
        self.frames_queued += other.frames_queued;
        self.wire_body_out += other.wire_body_out;
        self.payload_out += other.payload_out;
        self.bytes_out += other.bytes_out;
        self.reads_inline += other.reads_inline;
    }
}

impl Traffic {
    pub(super) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> TrafficSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TrafficSnapshot {
            bytes_in: load(&self.bytes_in),
            frames_in: load(&self.frames_in),
            wire_body_in: load(&self.wire_body_in),
            payload_in: load(&self.payload_in),
            frames_queued: load(&self.frames_queued),
            wire_body_out: load(&self.wire_body_out),
            payload_out: load(&self.payload_out),
            bytes_out: load(&self.bytes_out),
            reads_inline: load(&self.reads_inline),
        }
    }

    /// Adds a finished connection's counters (for a server's totals).
    pub fn absorb(&self, other: &TrafficSnapshot) {
        let add = |counter: &AtomicU64, n: u64| counter.fetch_add(n, Ordering::Relaxed);
        add(&self.bytes_in, other.bytes_in);
        add(&self.frames_in, other.frames_in);
        add(&self.wire_body_in, other.wire_body_in);
        add(&self.payload_in, other.payload_in);
        add(&self.frames_queued, other.frames_queued);
        add(&self.wire_body_out, other.wire_body_out);
        add(&self.payload_out, other.payload_out);
        add(&self.bytes_out, other.bytes_out);
        add(&self.reads_inline, other.reads_inline);
    }
}

/// A connection's statistics at one moment.
#[derive(Debug, Clone, Copy)]
pub struct ConnStats {
    /// What went through it.
    pub traffic: TrafficSnapshot,
    /// Bytes queued and not yet written.
    pub queued_bytes: usize,
    /// How long it has existed.
    pub uptime: Duration,
    /// How long the handshake took (`None`: not complete).
    pub handshake_time: Option<Duration>,
    /// The last round-trip estimate: from the handshake, then from each heartbeat
    /// (`None`: none yet).
    pub rtt: Option<Duration>,
    /// Whether heartbeats run on it.
    pub heartbeat: bool,
    /// Bytes it holds under its peer's memory budget.
    pub memory_held: usize,
}
