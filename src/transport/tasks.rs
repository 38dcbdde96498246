//! The two tasks of a connection: the reader (bytes -> frames -> handshake rules and
//! inbox) and the writer (outbox -> socket, small frames batched into one write; it
//! runs only while there is something to write, see `outbox`). Either ending cancels
//! the other; see [`super::connection`] for the close protocol.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use super::connection::{Conn, Settings, Traffic};
use super::outbox::{Outbound, StreamWriter};
use super::shared_tcp::SharedTcp;
use super::sync::Unpoisoned;
use crate::peer::constants::{pid, reason};
use crate::protocol::msgpack::{ReadLimits, Value};
use crate::protocol::packet;
use crate::protocol::{Frame, FrameDecoder, ProtocolError};

/// Frames smaller than this are copied into one buffer and written together.
const BATCH_LIMIT: usize = 64 * 1024;

/// Stack buffer of a waiting thread's read between frames (see
/// `ReadState::read_socket_now_small`).
const SMALL_READ: usize = 8 * 1024;

/// How long a writer with nothing to write runs on before it parks its stream and
/// ends (giving back its batch buffer): far longer than the pauses within a stream.
const WRITER_IDLE: Duration = Duration::from_millis(100);

/// A stream the reader task reads from. One that can tell when data has arrived
/// ([`ReadSource::WAITS_FOR_DATA`]) is waited on before a read buffer is set aside, so
/// that an idle connection holds no buffer: with thousands of connections that is
/// 64 KiB of heap each.
pub(crate) trait ReadSource: AsyncRead + Unpin + Send + 'static {
    /// Whether [`ReadSource::data_arrived`] really waits.
    const WAITS_FOR_DATA: bool = false;

    /// Waits until a read would not block (data, end of stream or an error).
    fn data_arrived(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        std::future::ready(Ok(()))
    }
}

/// TLS streams and in-process pipes: read as they are.
impl<S: AsyncRead + Send + 'static> ReadSource for tokio::io::ReadHalf<S> {}

/// What the reading side of a connection keeps between reads: the frame decoder and
/// what the input is doing.
pub(super) struct ReadState {
    decoder: FrameDecoder,
    read_limits: ReadLimits,
    /// After a protocol error or once the connection is over, input is read and dropped.
    discarding: bool,
    /// An internal packet waiting for a connection type's `init` in Python; nothing
    /// after it is handled before it.
    stalled: Option<Frame>,
    /// Plain TCP: the socket, for threads that read it directly; dropped when the
    /// connection's tasks end, so that the socket closes then.
    socket: Option<SharedTcp>,
}

impl ReadState {
    fn new(settings: &Settings, socket: Option<SharedTcp>) -> ReadState {
        ReadState {
            decoder: FrameDecoder::new(settings.limits.max_frame_len),
            read_limits: ReadLimits::from(&settings.limits),
            discarding: false,
            stalled: None,
            socket,
        }
    }

    /// Reads what the socket holds now into the decoder (`WouldBlock`: nothing).
    fn read_socket_now(&mut self) -> io::Result<usize> {
        match &self.socket {
            Some(socket) => socket.read_now(self.decoder.read_buffer()),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// [`ReadState::read_socket_now`] for a thread that waits for events: between
    /// frames it reads into a small buffer on its stack first and hands the decoder
    /// only what arrived. The decoder's 64 KiB read buffer would otherwise be
    /// allocated and freed around every small packet, by each of possibly many
    /// threads (contending in the allocator), where the reader task's few threads
    /// reuse theirs.
    /// Returns the bytes read and whether they filled the space offered (then more
    /// may be waiting).
    fn read_socket_now_small(&mut self) -> io::Result<(usize, bool)> {
        let Some(socket) = &self.socket else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        if !self.decoder.is_idle() {
            let buf = self.decoder.read_buffer();
            let offered = buf.capacity() - buf.len();
            let n = socket.read_now(buf)?;
            return Ok((n, n == offered));
        }
        let mut small = [std::mem::MaybeUninit::<u8>::uninit(); SMALL_READ];
        let data = socket.read_now_into(&mut small)?;
        self.decoder.extend_from_slice(data);
        Ok((data.len(), data.len() == SMALL_READ))
    }

    /// Goes on after a stalled frame was handled, or broke the protocol.
    fn resume_after_stall(&mut self, conn: &Arc<Conn>, handled: Result<(), ProtocolError>) {
        match handled {
            Ok(()) => self.handle_buffered(conn),
            Err(err) => {
                conn.protocol_error(&err);
                self.discarding = true;
            }
        }
    }

    /// Accounts for one read into the decoder's buffer. Returns false if the stream
    /// ended (end of stream or an error; the connection is reported closed).
    fn note_read(&mut self, conn: &Arc<Conn>, read: io::Result<usize>) -> bool {
        match read {
            Ok(0) => {
                conn.finish(conn.hangup_reason());
                false
            }
            Err(err) => {
                // TCP keepalive giving up on a silent peer surfaces as a timed-out read.
                let why = if err.kind() == io::ErrorKind::TimedOut {
                    Some(reason::TIMEOUT.to_owned())
                } else {
                    conn.hangup_reason()
                };
                conn.finish(why);
                false
            }
            Ok(n) => {
                conn.note_input();
                Traffic::add(&conn.traffic.bytes_in, n);
                true
            }
        }
    }

    /// Handles every complete frame in the decoder, stopping at one that must wait for
    /// a connection type's `init` (kept in `stalled`).
    fn handle_buffered(&mut self, conn: &Arc<Conn>) {
        while !self.discarding && self.stalled.is_none() {
            match self.decoder.decode() {
                Ok(Some(frame)) => {
                    Traffic::add(&conn.traffic.frames_in, 1);
                    match conn.handle_frame_now(frame, self.read_limits) {
                        Ok(None) => self.discarding = conn.is_finished(),
                        Ok(Some(frame)) => self.stalled = Some(frame),
                        Err(err) => {
                            conn.protocol_error(&err);
                            self.discarding = true;
                        }
                    }
                }
                Ok(None) => return,
                Err(err) => {
                    conn.protocol_error(&err.into());
                    self.discarding = true;
                }
            }
        }
    }

    /// Whether new input must be dropped instead of decoded.
    fn must_discard(&mut self, conn: &Conn) -> bool {
        self.discarding = self.discarding || conn.is_finished() || conn.input_rejected();
        self.discarding
    }
}

/// The reading side of a plain TCP connection. Its reader task reads it, and so does a
/// Python thread that waits for input on few enough connections ([`read_inline`]):
/// whoever holds `state` reads, so frames stay in order.
pub(crate) struct SharedReader {
    state: Mutex<ReadState>,
    /// Wakes the reader task when a Python thread left a stalled frame behind.
    handover: Notify,
    /// Threads waiting in `poll(2)` on this socket right now: the reader task leaves
    /// arrived data to them (see [`wait_for_data`]).
    watchers: AtomicUsize,
    /// The reader task let a readiness of the socket pass because a thread watched
    /// it; that thread checks the socket once more when it stops watching.
    skipped: AtomicBool,
}

impl SharedReader {
    pub(super) fn new(tcp: SharedTcp, settings: &Settings) -> SharedReader {
        SharedReader {
            state: Mutex::new(ReadState::new(settings, Some(tcp))),
            handover: Notify::new(),
            watchers: AtomicUsize::new(0),
            skipped: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ReadState> {
        // Every critical section leaves the state consistent (a read, then frames
        // handled one by one), so a poisoned lock is still usable.
        self.state.lock_anyway()
    }

    /// A thread starts (`true`) or stops waiting in `poll(2)` on the socket.
    pub(super) fn set_watched(&self, watching: bool) {
        if watching {
            self.watchers.fetch_add(1, Ordering::SeqCst);
        } else {
            self.watchers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Whether the reader task let data pass to a watching thread since the last call.
    pub(super) fn take_skipped(&self) -> bool {
        self.skipped.swap(false, Ordering::SeqCst)
    }

    /// Lets go of the socket (the connection's tasks have ended).
    pub(super) fn release_socket(&self) {
        self.lock().socket = None;
    }
}

/// Reads what the socket holds now into the decoder, from the calling thread; see
/// [`Conn::read_inline`].
pub(super) fn read_inline(conn: &Arc<Conn>) -> bool {
    let Some(shared) = conn.shared_reader.as_ref() else {
        return false;
    };
    if conn.is_finished() || conn.input_rejected() || !conn.inbox_has_room() {
        return false;
    }
    let Ok(mut state) = shared.state.try_lock() else {
        return false; // the reader task is reading
    };
    // Until the socket is empty: the reader task may have let its readiness pass to
    // us (see `wait_for_data`), so nobody else would read what is left. A read that
    // did not fill its buffer emptied the socket; no extra read to find that out.
    let mut read_any = false;
    while !state.must_discard(conn) && state.stalled.is_none() && conn.inbox_has_room() {
        let (read, more) = match state.read_socket_now_small() {
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
    state.decoder.release_if_idle();
    let stalled = state.stalled.is_some();
    drop(state);
    if stalled {
        shared.handover.notify_one();
    }
    read_any
}

/// Hands a stalled frame to the handshake rules once its connection type's `init` is
/// done; `None` if the connection was stopped first. Boxed: a task is as large as its
/// largest wait, and this one is rare.
async fn resume_stalled(
    conn: &Arc<Conn>,
    frame: Frame,
    limits: ReadLimits,
) -> Option<Result<(), ProtocolError>> {
    Box::pin(async {
        tokio::select! {
            () = conn.cancel.cancelled() => None,
            handled = conn.handle_frame_after_init(frame, limits) => Some(handled),
        }
    })
    .await
}

/// The reader task of a plain TCP connection (see [`SharedReader`]).
pub(super) async fn read_loop_tcp(conn: Arc<Conn>) {
    let Some(shared) = conn.shared_reader.as_ref() else {
        return;
    };
    let settings = conn.settings().clone();
    let Some(mut tcp) = shared.lock().socket.clone() else {
        return;
    };
    let mut drain = Vec::new();
    loop {
        let (discarding, stalled) = {
            let mut state = shared.lock();
            (state.must_discard(&conn), state.stalled.take())
        };
        // The rare waits are boxed: a task is as large as its largest wait, for every
        // connection and all the time (this loop's was over 1 KiB).
        if discarding {
            if !Box::pin(discard_some(&conn, &mut tcp, &mut drain)).await {
                break;
            }
            continue;
        }
        if let Some(frame) = stalled {
            let limits = shared.lock().read_limits;
            let Some(handled) = resume_stalled(&conn, frame, limits).await else {
                break;
            };
            shared.lock().resume_after_stall(&conn, handled);
            continue;
        }
        if !conn.inbox_has_room() {
            Box::pin(conn.wait_for_inbox_room()).await;
        }
        shared.lock().decoder.release_if_idle();
        // Wait for data (or a frame a Python thread left stalled), without a buffer.
        let arrived = async {
            tokio::select! {
                arrived = wait_for_data(shared, &tcp) => arrived,
                () = shared.handover.notified() => Ok(()),
            }
        };
        let arrived = match settings.idle_timeout {
            None => tokio::select! {
                () = conn.cancel.cancelled() => break,
                arrived = arrived => Some(arrived),
            },
            Some(idle) => {
                let arrived = Box::pin(async {
                    tokio::select! {
                        () = conn.cancel.cancelled() => None,
                        arrived = with_idle_timeout(&conn, Some(idle), arrived) => Some(arrived),
                    }
                })
                .await;
                match arrived {
                    Some(arrived) => arrived,
                    None => break,
                }
            }
        };
        let mut state = shared.lock();
        let read = match arrived {
            None => {
                conn.close(Some(reason::IDLE_TIMEOUT.to_owned()));
                state.discarding = true;
                continue;
            }
            // The wait itself failed: the socket is gone.
            Some(Err(err)) => Err(err),
            Some(Ok(())) if state.must_discard(&conn) || state.stalled.is_some() => continue,
            Some(Ok(())) => match state.read_socket_now() {
                // A Python thread read it first, or the wake-up was a hand-over.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                read => read,
            },
        };
        if !state.note_read(&conn, read) {
            break;
        }
        state.handle_buffered(&conn);
    }
    conn.cancel.cancel();
    conn.reader_ended();
}

/// Waits until the socket has data for the reader task to read. Data that arrives
/// while a thread watches the socket in `poll(2)` is left to that thread, which reads
/// it at once ([`read_inline`]): the readiness is dropped (so that the task waits for
/// the next one instead of spinning) and noted in `skipped`, which the thread checks
/// when it stops watching, so that nothing is left unread between the two.
async fn wait_for_data(shared: &SharedReader, tcp: &SharedTcp) -> io::Result<()> {
    loop {
        tcp.0.readable().await?;
        if shared.watchers.load(Ordering::SeqCst) == 0 {
            // Readiness can be stale: the peek waits until data is really there.
            return tcp.data_arrived().await;
        }
        let _ = tcp.0.try_io(tokio::io::Interest::READABLE, || {
            Err::<(), io::Error>(io::ErrorKind::WouldBlock.into())
        });
        shared.skipped.store(true, Ordering::SeqCst);
        if shared.watchers.load(Ordering::SeqCst) == 0 {
            // It stopped watching meanwhile: read (or find nothing) ourselves.
            return Ok(());
        }
    }
}

/// Waits for `arrived`; `None` if nothing arrived on the connection for `idle` (input
/// read by a Python thread meanwhile counts: the wait restarts then).
async fn with_idle_timeout<T>(
    conn: &Conn,
    idle: Option<Duration>,
    arrived: impl std::future::Future<Output = T>,
) -> Option<T> {
    let Some(idle) = idle else {
        return Some(arrived.await);
    };
    tokio::pin!(arrived);
    loop {
        let left = idle.saturating_sub(conn.silence());
        if left.is_zero() {
            return None;
        }
        if let Ok(done) = tokio::time::timeout(left, &mut arrived).await {
            return Some(done);
        }
    }
}

/// Reads and drops input of a connection that is over; false once the stream ended.
async fn discard_some<R: AsyncRead + Unpin>(conn: &Conn, reader: R, drain: &mut Vec<u8>) -> bool {
    let mut reader = reader;
    if drain.is_empty() {
        // Allocated only once input is being dropped: most connections never need it,
        // and 16 KiB each would dominate the memory of a server with thousands of them.
        drain.resize(16 * 1024, 0);
    }
    let read = tokio::select! {
        () = conn.cancel.cancelled() => return false,
        read = reader.read(drain) => read,
    };
    matches!(read, Ok(n) if n > 0)
}

/// The reader task of a TLS or in-process connection: reads into the decoder, which it
/// owns alone.
pub(super) async fn read_loop<R: ReadSource>(conn: Arc<Conn>, mut reader: R) {
    let settings = conn.settings().clone();
    let mut state = ReadState::new(&settings, None);
    let mut drain = Vec::new();
    loop {
        if state.must_discard(&conn) {
            if !discard_some(&conn, &mut reader, &mut drain).await {
                break;
            }
            continue;
        }
        if let Some(frame) = state.stalled.take() {
            let Some(handled) = resume_stalled(&conn, frame, state.read_limits).await else {
                break;
            };
            state.resume_after_stall(&conn, handled);
            continue;
        }
        conn.wait_for_inbox_room().await;
        let read_more = async {
            if R::WAITS_FOR_DATA && state.decoder.is_idle() {
                state.decoder.release_if_idle();
                reader.data_arrived().await?;
            }
            reader.read_buf(state.decoder.read_buffer()).await
        };
        let read = tokio::select! {
            () = conn.cancel.cancelled() => break,
            read = with_idle_timeout(&conn, settings.idle_timeout, read_more) => read,
        };
        match read {
            None => {
                conn.close(Some(reason::IDLE_TIMEOUT.to_owned()));
                state.discarding = true;
            }
            Some(read) => {
                if !state.note_read(&conn, read) {
                    break;
                }
                state.handle_buffered(&conn);
            }
        }
    }
    conn.cancel.cancel();
    conn.reader_ended();
}

/// Sends what the stream still buffers; false if that failed or the connection was
/// cancelled meanwhile.
async fn flush<W: AsyncWrite + Unpin>(conn: &Conn, writer: &mut W) -> bool {
    tokio::select! {
        () = conn.cancel.cancelled() => false,
        result = writer.flush() => result.is_ok(),
    }
}

/// Why the writer stopped.
enum WriterEnd {
    /// Cancelled, or every sender is gone.
    Stopped,
    /// A write failed: the peer is gone.
    Failed,
    /// A close packet was sent.
    Closed,
}

async fn write_all<W: AsyncWrite + Unpin>(conn: &Conn, writer: &mut W, data: &[u8]) -> bool {
    if data.is_empty() {
        return true;
    }
    let written = tokio::select! {
        () = conn.cancel.cancelled() => false,
        result = writer.write_all(data) => result.is_ok(),
    };
    if written {
        Traffic::add(&conn.traffic.bytes_out, data.len());
    }
    written
}

/// Writes what is queued; after [`WRITER_IDLE`] with nothing to write, parks the stream
/// in the outbox and ends (the next push starts a new writer).
pub(super) async fn write_loop(conn: Arc<Conn>, mut writer: StreamWriter) {
    let outbox = &conn.outbox;
    // Taken from the outbox a whole burst at a time.
    let mut pending = VecDeque::new();
    // Grows to what the batches need (at most a little over BATCH_LIMIT); kept while
    // the writer runs: it catches up with a stream many times a second, and
    // allocating the buffer anew each time costs.
    let mut batch: Vec<u8> = Vec::new();
    let end = 'run: loop {
        if pending.is_empty() {
            tokio::select! {
                biased;
                () = conn.cancel.cancelled() => break 'run WriterEnd::Stopped,
                () = outbox.take_all(&mut pending) => {}
                () = tokio::time::sleep(WRITER_IDLE) => match outbox.park(writer) {
                    None => return,
                    Some(handed_back) => {
                        writer = handed_back;
                        continue;
                    }
                },
            }
        }
        let Some(mut item) = pending.pop_front() else {
            continue;
        };
        let mut close = None;
        batch.clear();
        // Queued bytes stay counted in `out_bytes` until written: a sender may write
        // directly only when it is zero (see `Conn::queue_frame`).
        let written = |n: usize| {
            conn.out_bytes.fetch_sub(n, Ordering::SeqCst);
            conn.write_progress.notify_waiters();
        };
        loop {
            match item {
                Outbound::Frame(frame) => {
                    if frame.len() >= BATCH_LIMIT {
                        // Large frames are written from their own buffer, not copied.
                        let ok = write_all(&conn, &mut writer, &batch).await
                            && write_all(&conn, &mut writer, &frame).await;
                        written(batch.len() + frame.len());
                        batch.clear();
                        if !ok {
                            break 'run WriterEnd::Failed;
                        }
                    } else {
                        batch.extend_from_slice(&frame);
                    }
                }
                Outbound::Close(reason) => {
                    close = Some(reason);
                    break;
                }
            }
            if batch.len() >= BATCH_LIMIT {
                break;
            }
            if pending.is_empty() {
                outbox.try_take_all(&mut pending);
            }
            match pending.pop_front() {
                Some(next) => item = next,
                None => break,
            }
        }
        let ok = write_all(&conn, &mut writer, &batch).await;
        written(batch.len());
        if !ok {
            break 'run WriterEnd::Failed;
        }
        // A TLS stream takes the plaintext and may keep the tail of the records it made
        // (up to its buffer limit) until the socket has room; only a flush (or the next
        // write) sends them. Without this, the end of a large message waited for the
        // next packet, a heartbeat seconds later. Plain sockets flush at no cost.
        if pending.is_empty() && close.is_none() && !flush(&conn, &mut writer).await {
            break 'run WriterEnd::Failed;
        }
        if let Some(reason) = close {
            let body = Value::map([("reason", Value::from(reason.clone()))]).to_bytes();
            let mut frame = Vec::new();
            let encoded =
                packet::encode_packet(pid::CLOSE, &body, &conn.settings().compression, &mut frame);
            let sent = encoded.is_ok() && write_all(&conn, &mut writer, &frame).await;
            let _ = writer.flush().await;
            conn.finish(reason);
            if sent {
                // The receiver of a close packet hangs up; wait for that instead of
                // closing first: a peer that sees end-of-stream before it has read our
                // close packet (the original reads and dispatches on different threads)
                // would report a closed socket instead of our reason.
                Box::pin(async {
                    tokio::select! {
                        () = tokio::time::sleep(conn.settings().linger) => {}
                        () = conn.cancel.cancelled() => {}
                    }
                })
                .await;
            }
            break 'run WriterEnd::Closed;
        }
    };
    if matches!(end, WriterEnd::Failed) {
        conn.finish(Some(reason::SOCKET_CLOSE.to_owned()));
    }
    outbox.close();
    conn.cancel.cancel();
    conn.task_ended();
}
