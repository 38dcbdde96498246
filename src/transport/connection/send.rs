//! Sending on a connection: frames written directly from the sending thread when
//! nothing is queued, queued for the writer task otherwise; packets the core builds
//! (handshake, heartbeats) and their reports to Python.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Event, LogLevel};
use crate::peer::constants::{pid, reason};
use crate::protocol::msgpack::Value;
use crate::protocol::packet;
use crate::transport::budget::SMALL_SHARE;
use crate::transport::outbox::{OutFrame, Outbound, Pushed, StreamWriter};
use crate::transport::stats::Traffic;
use crate::transport::sync::Unpoisoned;

use super::{Conn, STREAMING_GAP_US};

thread_local! {
    /// When this thread last sent on any connection.
    static THREAD_LAST_SEND: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Whether the calling thread is in a burst of sends (its previous send, on any
/// connection, was less than [`STREAMING_GAP_US`] ago), noting this send.
///
/// A thread looping over its clients (a fan-out) sends to each connection only once
/// per round, so each send looks like a reply after a pause to that connection; but
/// writing each frame from the sending thread costs a system call per client in the
/// one thread that runs Python. Queued instead, the frames are written by the I/O
/// threads, in parallel with the loop.
fn thread_in_burst(now: Instant) -> bool {
    THREAD_LAST_SEND.with(|last| {
        let previous = last.replace(Some(now));
        previous.is_some_and(|at| now - at < Duration::from_micros(STREAMING_GAP_US))
    })
}

impl Conn {
    /// Queues a complete frame whose body was `payload_len` bytes before compression
    /// (for the statistics). Returns false if the connection is closing.
    ///
    /// With nothing queued (and nothing being written), a plain TCP frame is written
    /// directly from the calling thread, as far as the socket takes it without
    /// waiting; only what remains goes through the writer task, charged to the
    /// memory budget until written.
    pub fn queue_frame(self: &Arc<Self>, frame: Bytes, payload_len: usize) -> bool {
        self.queue_frame_charged(OutFrame::Whole(frame), payload_len, true)
    }

    /// [`Conn::queue_frame`] for a frame that may be in pieces (made by the bindings).
    #[cfg(feature = "python")]
    pub(crate) fn queue_out_frame(self: &Arc<Self>, frame: OutFrame, payload_len: usize) -> bool {
        self.queue_frame_charged(frame, payload_len, true)
    }

    /// [`Conn::queue_frame`] for a frame queued to many connections at once (a
    /// broadcast): its one buffer is not charged to each of them.
    pub fn queue_shared_frame(self: &Arc<Self>, frame: Bytes, payload_len: usize) -> bool {
        self.queue_frame_charged(OutFrame::Whole(frame), payload_len, false)
    }

    fn queue_frame_charged(
        self: &Arc<Self>,
        mut frame: OutFrame,
        payload_len: usize,
        charge: bool,
    ) -> bool {
        let direct = self.send_lock.lock_anyway();
        if self.is_closing() {
            return false;
        }
        let full_len = frame.len();
        let clock = Instant::now();
        let now = self.micros_at(clock);
        let previous = self.last_send_us.swap(now, Ordering::Relaxed);
        // Back-to-back sends (a stream) go through the writer task, which batches them
        // into few large writes; a send after a pause (a request, a reply) is written
        // at once. `out_bytes` counts bytes until they are written, so zero also means
        // that the writer task is idle.
        let burst = thread_in_burst(clock);
        let streaming = burst || now.saturating_sub(previous) < STREAMING_GAP_US;
        if let Some(direct) = direct
            .as_ref()
            .filter(|_| !streaming && self.queued_bytes() == 0)
        {
            // An error is left for the writer task to meet and report.
            let written = match &frame {
                OutFrame::Whole(bytes) => direct.try_write_now(bytes),
                OutFrame::Pieces(pieces) => direct.try_write_pieces_now(pieces),
            }
            .unwrap_or(0);
            Traffic::add(&self.traffic.bytes_out, written);
            if written == full_len {
                self.count_queued(full_len, payload_len);
                return true;
            }
            frame = frame.after(written);
        }
        let len = frame.len();
        let queued = self.out_bytes.fetch_add(len, Ordering::SeqCst);
        if queued > 0 && queued + len > self.settings.write_queue_limit {
            // The peer is not reading what we send: waiting for it would let memory
            // grow without bound, and a close packet could not get through either.
            self.out_bytes.fetch_sub(len, Ordering::SeqCst);
            self.log_end(
                LogLevel::Warning,
                "dropping",
                format_args!("it does not read ({queued} bytes waiting)"),
            );
            self.abort(Some(reason::WRITE_QUEUE_FULL.to_owned()));
            return false;
        }
        if charge && !self.try_queue_out(len) {
            if queued == 0 && len <= SMALL_SHARE {
                // A small message to a peer that keeps up: sent even when the budget
                // is exhausted (by others, who the budget's watchdog drops).
                self.force_queue_out(len);
            } else {
                self.out_bytes.fetch_sub(len, Ordering::SeqCst);
                self.log_end(
                    LogLevel::Warning,
                    "dropping",
                    format_args!(
                        "the memory budget is exhausted ({queued} bytes waiting for it, \
                         {len} more to queue)"
                    ),
                );
                self.abort(Some(reason::MEMORY_LIMIT.to_owned()));
                return false;
            }
        }
        if !self.push_outbound(Outbound::Frame {
            frame,
            charged: charge,
        }) {
            self.out_bytes.fetch_sub(len, Ordering::SeqCst);
            if charge {
                self.written_out(len);
            }
            return false;
        }
        self.count_queued(full_len, payload_len);
        true
    }

    /// Queues `item` for the writer, starting a writer task if the last one parked;
    /// false if the writer has ended.
    pub(super) fn push_outbound(self: &Arc<Self>, item: Outbound) -> bool {
        match self.outbox.push(item) {
            Pushed::Refused => false,
            Pushed::Queued => true,
            Pushed::StartWriter(writer) => {
                self.start_writer(writer);
                true
            }
        }
    }

    pub(super) fn start_writer(self: &Arc<Self>, writer: StreamWriter) {
        (self.start_writer)(self.clone(), writer);
    }

    /// The reader task has ended (and cancelled the connection): a parked writer is
    /// started so that it ends too, as a running one does.
    pub(in crate::transport) fn reader_ended(self: &Arc<Self>) {
        if let Some(writer) = self.outbox.unpark() {
            self.start_writer(writer);
        }
        self.task_ended();
    }

    pub(super) fn count_queued(&self, frame_len: usize, payload_len: usize) {
        Traffic::add(&self.traffic.frames_queued, 1);
        Traffic::add(
            &self.traffic.wire_body_out,
            frame_len.saturating_sub(packet::FRAME_OVERHEAD),
        );
        Traffic::add(&self.traffic.payload_out, payload_len);
    }

    /// Sends an internal packet built by the core and reports it to Python.
    pub(super) fn send_internal(self: &Arc<Self>, packet_id: u32, body: &Value) {
        if packet_id == pid::HELLO || packet_id == pid::SETTYPE {
            self.probes().handshake_sent(Instant::now());
        }
        if let Some((frame, body)) = self.queue_core_packet(packet_id, body) {
            self.inbox.push(Event::Sent {
                conn: self.clone(),
                pid: packet_id,
                body: Bytes::from(body),
                frame,
            });
        }
    }

    /// Encodes and queues a packet built by the core; its frame and msgpack body if it
    /// was queued.
    pub(super) fn queue_core_packet(
        self: &Arc<Self>,
        packet_id: u32,
        body: &Value,
    ) -> Option<(Bytes, Vec<u8>)> {
        let body = body.to_bytes();
        let mut out = Vec::with_capacity(body.len() + packet::FRAME_OVERHEAD);
        // Cannot fail: the core's bodies are far below 4 GiB.
        packet::encode_packet(packet_id, &body, &self.settings.compression, &mut out).ok()?;
        let frame = Bytes::from(out);
        self.queue_frame(frame.clone(), body.len())
            .then_some((frame, body))
    }
}
