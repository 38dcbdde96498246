//! A connection's outbox: what waits to be written, in order, for its writer task.
//!
//! A plain queue under a lock plus a [`Notify`], rather than a channel: an idle
//! connection's outbox allocates nothing (an unbounded channel keeps a block of 32
//! slots, about 1.3 KiB, for every connection from its first message on, which is most
//! of a connection's memory on a server with thousands of them).
//!
//! A writer with nothing to write for a while parks its stream here and ends its task;
//! the next push hands the stream back to be written by a new task. An idle
//! connection (most of a server's, most of the time: replies are written directly by
//! the sender) then costs no writer task.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use tokio::io::AsyncWrite;
use tokio::sync::Notify;

use super::sync::Unpoisoned;

/// A frame to write: one buffer, or pieces that follow each other on the wire (the
/// head of the frame, the data of a large `bytes` object of the message, written from
/// the Python object's own buffer instead of being copied, and the rest).
#[derive(Debug)]
pub(crate) enum OutFrame {
    Whole(Bytes),
    /// Made only by the bindings (from a Python `bytes` object).
    #[cfg_attr(not(feature = "python"), allow(dead_code))]
    Pieces(Vec<Bytes>),
}

impl OutFrame {
    pub(crate) fn len(&self) -> usize {
        match self {
            OutFrame::Whole(bytes) => bytes.len(),
            OutFrame::Pieces(pieces) => pieces.iter().map(Bytes::len).sum(),
        }
    }

    /// What is left to write once its first `written` bytes are.
    pub(crate) fn after(self, mut written: usize) -> OutFrame {
        match self {
            OutFrame::Whole(bytes) => OutFrame::Whole(bytes.slice(written..)),
            OutFrame::Pieces(pieces) => OutFrame::Pieces(
                pieces
                    .into_iter()
                    .filter_map(|piece| {
                        let skip = written.min(piece.len());
                        written -= skip;
                        (skip < piece.len()).then(|| piece.slice(skip..))
                    })
                    .collect(),
            ),
        }
    }

    /// Its buffers, in order (no allocation for a whole frame).
    pub(crate) fn into_pieces(self) -> impl Iterator<Item = Bytes> {
        let (first, rest) = match self {
            OutFrame::Whole(bytes) => (Some(bytes), Vec::new()),
            OutFrame::Pieces(pieces) => (None, pieces),
        };
        first.into_iter().chain(rest)
    }
}

/// What the writer task receives.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A complete frame to write.
    Frame {
        /// The frame.
        frame: OutFrame,
        /// Whether it is charged to the connection's memory budget until written (a
        /// broadcast frame shared by many connections is not).
        charged: bool,
    },
    /// Write a close packet with this reason, then shut the connection down.
    Close(Option<String>),
}

impl Outbound {
    /// Bytes of this item charged to the memory budget.
    pub(crate) fn charged_len(&self) -> usize {
        match self {
            Outbound::Frame {
                frame,
                charged: true,
            } => frame.len(),
            _ => 0,
        }
    }
}

/// The write half of a connection's stream, as its writer holds it.
pub(crate) type StreamWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// Queued items and whether the writer still takes them.
#[derive(Default)]
struct Items {
    queue: VecDeque<Outbound>,
    /// The writer has ended: nothing more is accepted.
    closed: bool,
    /// The stream of a writer that parked (see the module documentation).
    parked: Option<StreamWriter>,
}

/// What [`Outbox::push`] did.
pub(crate) enum Pushed {
    /// The writer has ended: the item was dropped.
    Refused,
    /// Queued for the running writer.
    Queued,
    /// Queued; the writer had parked: start one with this stream.
    StartWriter(StreamWriter),
}

/// The queue between a connection's senders and its writer task.
#[derive(Default)]
pub(crate) struct Outbox {
    items: Mutex<Items>,
    /// Wakes the writer task (one permit is kept if it is not waiting).
    ready: Notify,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, Items> {
        // Each critical section is a single push or pop: a panic cannot leave it
        // half-done, so a poisoned lock is still consistent.
        self.items.lock_anyway()
    }

    /// Queues `item` (see [`Pushed`]).
    pub(crate) fn push(&self, item: Outbound) -> Pushed {
        let mut items = self.lock();
        if items.closed {
            return Pushed::Refused;
        }
        items.queue.push_back(item);
        if let Some(writer) = items.parked.take() {
            return Pushed::StartWriter(writer);
        }
        drop(items);
        self.ready.notify_one();
        Pushed::Queued
    }

    /// An idle writer leaves its stream here and may end; if something was queued
    /// meanwhile, the stream is handed back to be written.
    pub(crate) fn park(&self, writer: StreamWriter) -> Option<StreamWriter> {
        let mut items = self.lock();
        if !items.queue.is_empty() || items.closed {
            return Some(writer);
        }
        items.parked = Some(writer);
        // A writer parks after a while without writes: the connection is idle, so its
        // queue's room goes back to the allocator (most connections idle most of the
        // time; the next burst grows a new one).
        items.queue = VecDeque::new();
        None
    }

    /// Takes the parked stream, if the writer parked (to end the connection's writer).
    pub(crate) fn unpark(&self) -> Option<StreamWriter> {
        self.lock().parked.take()
    }

    /// Moves everything queued to the end of `into` (which the writer keeps between
    /// calls, so that the two queues trade their allocations instead of making new
    /// ones); false if nothing was queued. One lock per drained batch, not per item.
    pub(crate) fn try_take_all(&self, into: &mut VecDeque<Outbound>) -> bool {
        let mut items = self.lock();
        if items.queue.is_empty() {
            return false;
        }
        if into.is_empty() {
            std::mem::swap(&mut items.queue, into);
        } else {
            into.append(&mut items.queue);
        }
        true
    }

    /// Waits until something is queued, then moves it all to `into`. An idle writer
    /// first gives back the slots of its last burst.
    pub(crate) async fn take_all(&self, into: &mut VecDeque<Outbound>) {
        loop {
            let ready = self.ready.notified();
            if self.try_take_all(into) {
                return;
            }
            if into.capacity() > IDLE_CAPACITY {
                *into = VecDeque::new();
            }
            ready.await;
        }
    }

    /// Whether nothing is queued.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }

    /// The writer has ended: refuses further items and drops the queued ones.
    /// Returns the bytes of the dropped items that were charged to the memory budget.
    pub(crate) fn close(&self) -> usize {
        let mut items = self.lock();
        items.closed = true;
        let dropped = std::mem::take(&mut items.queue);
        items.parked = None;
        drop(items);
        dropped.iter().map(Outbound::charged_len).sum()
    }
}

/// Slots an empty outbox may keep between bursts.
const IDLE_CAPACITY: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(byte: u8) -> Outbound {
        Outbound::Frame {
            frame: OutFrame::Whole(Bytes::from(vec![byte])),
            charged: true,
        }
    }

    fn byte_of(item: Outbound) -> u8 {
        match item {
            Outbound::Frame {
                frame: OutFrame::Whole(bytes),
                ..
            } => bytes[0],
            _ => panic!("something else where a whole frame was expected"),
        }
    }

    #[test]
    fn items_come_out_in_order_and_none_after_close() {
        let outbox = Outbox::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut taken = VecDeque::new();
        for byte in 0..100 {
            assert!(matches!(outbox.push(frame(byte)), Pushed::Queued));
        }
        runtime.block_on(outbox.take_all(&mut taken));
        for byte in 100..150 {
            assert!(matches!(outbox.push(frame(byte)), Pushed::Queued));
        }
        assert!(
            outbox.try_take_all(&mut taken),
            "the second burst was not taken"
        );
        let bytes: Vec<u8> = taken.drain(..).map(byte_of).collect();
        assert_eq!(bytes, (0..150).collect::<Vec<u8>>());
        assert!(!outbox.try_take_all(&mut taken));
        assert_eq!(outbox.close(), 0, "nothing was left queued");
        assert!(
            matches!(outbox.push(frame(1)), Pushed::Refused),
            "a closed outbox took an item"
        );
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_waiting_writer_is_woken_by_a_push_and_idle_slots_are_given_back() {
        let outbox = std::sync::Arc::new(Outbox::default());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let waiter = {
            let outbox = outbox.clone();
            runtime.spawn(async move {
                let mut taken = VecDeque::with_capacity(1024);
                outbox.take_all(&mut taken).await;
                (taken.capacity(), byte_of(taken.pop_front().unwrap()))
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(matches!(outbox.push(frame(7)), Pushed::Queued));
        let (capacity, byte) = runtime.block_on(waiter).unwrap();
        assert_eq!(byte, 7);
        assert!(capacity < 1024, "the idle writer kept its large queue");
    }

    #[test]
    fn a_parked_writer_is_handed_back_by_the_next_push_only() {
        let outbox = Outbox::default();
        let stream = || -> StreamWriter { Box::new(tokio::io::sink()) };
        assert!(
            outbox.park(stream()).is_none(),
            "an idle writer could not park"
        );
        assert!(matches!(outbox.push(frame(1)), Pushed::StartWriter(_)));
        assert!(matches!(outbox.push(frame(2)), Pushed::Queued));
        // Something is queued: parking hands the stream back.
        assert!(outbox.park(stream()).is_some());
        let mut taken = VecDeque::new();
        assert!(outbox.try_take_all(&mut taken));
        assert!(outbox.park(stream()).is_none());
        assert!(outbox.unpark().is_some());
        assert!(outbox.unpark().is_none());
    }
}
