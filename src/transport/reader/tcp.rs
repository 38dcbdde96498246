//! The reading side of a plain TCP connection ([`TcpReader`]): read by its reader task,
//! or by a Python thread (or event loop) that waits for the connection's events and
//! reads the socket itself (see `direct_read`).
//!
//! An idle connection's reader task waits for input in [`WaitForInput`], a small
//! hand-written future: a task's memory is its largest wait, held by every
//! connection all the time, and every other wait of this task is boxed (allocated only
//! while it lasts). With thousands of idle clients that is the difference between a
//! task of 640 and one of 256 bytes per connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::ReadBuf;

use super::{discard_some, resume_stalled, with_idle_timeout, ReadState};
use crate::peer::constants::reason;
use crate::transport::connection::{Conn, Event};
use crate::transport::direct_read::{DirectReaders, DirectSocket};
use crate::transport::shared_tcp::SharedTcp;
use crate::transport::stats::Traffic;
use crate::transport::sync::{Unpoisoned, WakerSlot};

/// The reading side of a plain TCP connection. Its reader task reads it, and so does a
/// Python thread that waits for input on few enough connections
/// ([`TcpReader::read_now`]): whoever holds `state` reads, so frames stay in order.
pub struct TcpReader {
    conn: Arc<Conn>,
    state: Mutex<ReadState>,
    /// A Python thread left a stalled frame behind for the reader task (one held back
    /// while the task handles it sets this once more: the task then finds nothing).
    handed_over: AtomicBool,
    /// The reader task's waker while it waits for input, for a hand-over.
    handover: WakerSlot,
    /// Threads waiting in `poll(2)` on this socket right now: the reader task leaves
    /// arrived data to them (see [`WaitForInput`]).
    watchers: AtomicUsize,
    /// The reader task let a readiness of the socket pass because a thread watched
    /// it; that thread checks the socket once more when it stops watching.
    skipped: AtomicBool,
}

impl TcpReader {
    fn new(conn: Arc<Conn>, tcp: SharedTcp) -> TcpReader {
        TcpReader {
            state: Mutex::new(ReadState::new(conn.settings(), Some(tcp))),
            conn,
            handed_over: AtomicBool::new(false),
            handover: WakerSlot::default(),
            watchers: AtomicUsize::new(0),
            skipped: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ReadState> {
        // Every critical section leaves the state consistent (a read, then frames
        // handled one by one), so a poisoned lock is still usable.
        self.state.lock_anyway()
    }

    /// Leaves the stalled frame to the reader task and wakes it.
    fn hand_over(&self) {
        self.handed_over.store(true, Ordering::SeqCst);
        self.handover.wake();
    }

    /// What the reader task does next, decided under the read state's lock.
    fn next_step(&self) -> Next {
        let conn = &self.conn;
        let mut state = self.lock();
        if state.must_discard(conn) {
            return Next::Discard;
        }
        if state.stalled.is_some() {
            return Next::Resume;
        }
        if !conn.inbox_has_room() {
            return Next::WaitForInboxRoom;
        }
        state.release_if_idle(conn);
        let wanted = state.decoder.growth_wanted();
        // (A read into room the buffer already has costs nothing: never held back.)
        if wanted > 0 && !conn.memory_has_room(wanted) {
            return Next::WaitForMemory(wanted);
        }
        Next::WaitForInput
    }
}

impl DirectSocket for TcpReader {
    type Event = Event;

    fn fd(&self) -> i64 {
        self.conn.fd
    }

    /// Reads what the socket holds now into the decoder and handles it, from the
    /// calling thread (the GIL released), until the socket is empty: one thread
    /// hand-off less per received packet than going through the reader task.
    fn read_now(&self) -> bool {
        let conn = &self.conn;
        if conn.is_finished() || conn.input_rejected() || !conn.inbox_has_room() {
            return false;
        }
        let Ok(mut state) = self.state.try_lock() else {
            return false; // the reader task is reading
        };
        // Until the socket is empty: the reader task may have let its readiness pass
        // to us (see [`WaitForInput`]), so nobody else would read what is left. A read
        // that did not fill its buffer emptied the socket; no extra read to find that
        // out.
        let mut read_any = false;
        while !state.must_discard(conn) && state.stalled.is_none() && conn.inbox_has_room() {
            let (read, more) = match state.read_socket_now_small(conn) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => (Err(err), false),
                Ok((n, filled)) => (Ok(n), filled),
            };
            read_any = true;
            Traffic::add(&conn.traffic.reads_inline, 1);
            if !state.note_read(conn, read) {
                state.discarding = true;
                break;
            }
            state.handle_buffered(conn);
            if !more {
                break;
            }
        }
        state.release_if_idle(conn);
        let stalled = state.stalled.is_some();
        drop(state);
        if stalled {
            self.hand_over();
        }
        read_any
    }

    fn set_watched(&self, watching: bool) {
        if watching {
            self.watchers.fetch_add(1, Ordering::SeqCst);
        } else {
            self.watchers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn take_skipped(&self) -> bool {
        self.skipped.swap(false, Ordering::SeqCst)
    }

    fn input_over(&self) -> bool {
        self.conn.is_finished() || self.conn.input_rejected()
    }
}

/// Starts reading a plain TCP connection: its reader task, and `direct`'s waiting
/// threads if it has room for one more socket.
pub(in crate::transport) fn start_tcp(
    conn: &Arc<Conn>,
    tcp: SharedTcp,
    direct: Arc<DirectReaders<TcpReader>>,
) {
    let reader = Arc::new(TcpReader::new(conn.clone(), tcp));
    direct.add(&reader);
    tokio::spawn(read_loop_tcp(reader, direct));
}

/// What the reader task does next (see [`TcpReader::next_step`]).
enum Next {
    /// Input is dropped: the connection is over or broke the protocol.
    Discard,
    /// A frame was held back; it is handled before anything after it.
    Resume,
    /// The inbox is full: the app has packets to take first.
    WaitForInboxRoom,
    /// The memory budget has no room for the buffer the next read needs (the peer's
    /// bytes wait in TCP meanwhile).
    WaitForMemory(usize),
    /// Nothing to do until input arrives.
    WaitForInput,
}

/// The reader task of a plain TCP connection (see [`TcpReader`]). Every wait but the
/// one for input is boxed, and what the loop keeps across its waits is a few pointers:
/// see the module documentation.
async fn read_loop_tcp(shared: Arc<TcpReader>, direct: Arc<DirectReaders<TcpReader>>) {
    let conn = &shared.conn;
    let Some(tcp) = shared.lock().socket.clone() else {
        return;
    };
    while !conn.cancel.is_cancelled() {
        let woken = match shared.next_step() {
            Next::Discard => {
                Box::pin(discard_rest(conn, tcp.clone())).await;
                break;
            }
            Next::Resume => {
                // (The frame is moved into the boxed wait: not part of the task.)
                let resumed = {
                    let state = shared.lock();
                    let Some(frame) = state.stalled.clone() else {
                        continue;
                    };
                    resume_stalled(conn, frame, state.read_limits)
                };
                let Some(handled) = resumed.await else {
                    break;
                };
                shared.lock().resume_after_stall(conn, handled);
                continue;
            }
            Next::WaitForInboxRoom => {
                Box::pin(conn.wait_for_inbox_room()).await;
                continue;
            }
            Next::WaitForMemory(wanted) => {
                Box::pin(conn.wait_for_memory_room(wanted)).await;
                continue;
            }
            Next::WaitForInput => match conn.settings().idle_timeout {
                None => Some(WaitForInput::new(&shared, &tcp).await),
                idle => {
                    Box::pin(with_idle_timeout(
                        conn,
                        idle,
                        WaitForInput::new(&shared, &tcp),
                    ))
                    .await
                }
            },
        };
        let mut state = shared.lock();
        let read = match woken {
            None => {
                conn.close(Some(reason::IDLE_TIMEOUT.to_owned()));
                state.discarding = true;
                continue;
            }
            Some(Woken::Cancelled) => break,
            Some(Woken::HandedOver) => continue,
            // The wait itself failed: the socket is gone.
            Some(Woken::Input(Err(err))) => Err(err),
            Some(Woken::Input(Ok(()))) if state.must_discard(conn) || state.stalled.is_some() => {
                continue
            }
            Some(Woken::Input(Ok(()))) => match state.read_socket_now(conn) {
                // A Python thread read it first.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                read => read,
            },
        };
        if !state.note_read(conn, read) {
            break;
        }
        state.handle_buffered(conn);
    }
    shared.lock().drop_buffer(conn);
    direct.remove(&shared);
    conn.cancel.cancel();
    // The task ends: wakers left in the slots would keep its memory.
    conn.cancel.stop_polling();
    shared.handover.clear();
    conn.reader_ended();
}

/// Reads and drops input until the stream ends or the connection is stopped.
async fn discard_rest(conn: &Conn, mut tcp: SharedTcp) {
    let mut drain = Vec::new();
    while discard_some(conn, &mut tcp, &mut drain).await {}
}

/// What ended a [`WaitForInput`].
enum Woken {
    /// The connection was stopped.
    Cancelled,
    /// A Python thread left a stalled frame (see [`TcpReader::hand_over`]).
    HandedOver,
    /// The socket has data (or reached its end, or failed) for the task to read.
    Input(io::Result<()>),
}

/// The reader task's wait for input, for a stop or for a hand-over. Polled by hand
/// (not a `select!` over `Notify` waits, ~80 bytes each): its wakers wait in the
/// connection's [`WakerSlot`]s and tokio's registration of the socket.
///
/// Data that arrives while a thread watches the socket in `poll(2)` is left to that
/// thread, which reads it at once ([`TcpReader::read_now`]): the readiness is dropped
/// (so that the task waits for the next one instead of spinning) and noted in
/// `skipped`, which the thread checks when it stops watching, so that nothing is left
/// unread between the two.
struct WaitForInput<'a> {
    reader: &'a TcpReader,
    tcp: &'a SharedTcp,
    /// The socket was reported readable with nobody watching it: waiting for a peek
    /// to find data (readiness can be stale, and a read would then wait with a buffer).
    peeking: bool,
}

impl<'a> WaitForInput<'a> {
    fn new(reader: &'a TcpReader, tcp: &'a SharedTcp) -> Self {
        WaitForInput {
            reader,
            tcp,
            peeking: false,
        }
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.peeking {
                // A peek, not `poll_read_ready`: readiness left over from the last
                // read would return at once, and the read would then wait with its
                // buffer. (`poll_peek`'s one waker slot serves this task, the
                // socket's only asynchronous reader.)
                let mut probe = [0u8; 1];
                return self
                    .tcp
                    .0
                    .poll_peek(cx, &mut ReadBuf::new(&mut probe))
                    .map(|peeked| peeked.map(drop));
            }
            if let Err(err) = std::task::ready!(self.tcp.0.poll_read_ready(cx)) {
                return Poll::Ready(Err(err));
            }
            let watchers = &self.reader.watchers;
            if watchers.load(Ordering::SeqCst) == 0 {
                self.peeking = true;
                continue;
            }
            let _ = self.tcp.0.try_io(tokio::io::Interest::READABLE, || {
                Err::<(), io::Error>(io::ErrorKind::WouldBlock.into())
            });
            self.reader.skipped.store(true, Ordering::SeqCst);
            if watchers.load(Ordering::SeqCst) == 0 {
                // It stopped watching meanwhile: read (or find nothing) ourselves.
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl Future for WaitForInput<'_> {
    type Output = Woken;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Woken> {
        let reader = self.reader;
        if reader.conn.cancel.poll_cancelled(cx).is_ready() {
            return Poll::Ready(Woken::Cancelled);
        }
        // Registered before the flag is read: a hand-over after the read wakes it.
        reader.handover.register(cx);
        if reader.handed_over.swap(false, Ordering::SeqCst) {
            return Poll::Ready(Woken::HandedOver);
        }
        self.poll_data(cx).map(Woken::Input)
    }
}

#[cfg(test)]
mod tests {
    /// The size of what `f` returns (here: an async fn's future, which has no name).
    fn output_size<A, B, R>(_: impl Fn(A, B) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    #[test]
    fn the_reader_task_of_an_idle_connection_stays_small() {
        // tokio's task cell adds 104 bytes to the future and rounds up to 128: up to
        // 152 bytes of future make a cell of 256, held by every connection.
        let size = output_size(super::read_loop_tcp);
        assert!(
            size <= 152,
            "the TCP reader task's future grew to {size} bytes"
        );
    }
}
