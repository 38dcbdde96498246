//! The reading side of a connection: bytes -> frames -> handshake rules and inbox.
//!
//! A TLS or in-process connection is read by its reader task alone ([`start`]). A
//! plain TCP connection is read through a [`TcpReader`] by whoever holds it: its
//! reader task ([`start_tcp`]) or a Python thread (or event loop) that waits for its
//! events and reads the socket itself (see `direct_read`). The reader ending cancels
//! the writer; see [`super::connection`] for the close protocol.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::Notify;

use super::connection::{Conn, Event};
use super::direct_read::{DirectReaders, DirectSocket};
use super::settings::Settings;
use super::shared_tcp::SharedTcp;
use super::stats::Traffic;
use super::sync::Unpoisoned;
use crate::peer::constants::reason;
use crate::protocol::msgpack::ReadLimits;
use crate::protocol::{Frame, FrameDecoder, ProtocolError};

/// Stack buffer of a waiting thread's read between frames (see
/// `ReadState::read_socket_now_small`).
const SMALL_READ: usize = 8 * 1024;

/// Frames with a body longer than this settle the decoder's charge as they leave it.
const SETTLE_PER_FRAME: usize = 64 * 1024;

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

/// Plain TCP: waits for data with a peek, so that an idle connection holds no buffer.
impl ReadSource for SharedTcp {
    const WAITS_FOR_DATA: bool = true;

    async fn data_arrived(&self) -> io::Result<()> {
        // A peek, not `readable()`: readiness left over from the last read would make
        // `readable()` return at once, and the read would then wait with its buffer.
        // Polled, not `peek().await`: that future holds a waiter node of ~250 bytes,
        // which every idle connection's reader task would carry (this task is the
        // socket's only asynchronous reader, so the one waker slot of `poll_peek`
        // serves it).
        let mut probe = [0u8; 1];
        std::future::poll_fn(|cx| self.0.poll_peek(cx, &mut ReadBuf::new(&mut probe)))
            .await
            .map(drop)
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
    /// A frame that [`Conn::handle_frame_now`] held back (an internal packet waiting
    /// for a connection type's `init` in Python, or a large body to inflate on a bulk
    /// thread): only the reader task handles it, and nothing after it is handled
    /// before it. It stays here until it is handled, so that a Python thread reading
    /// the socket meanwhile leaves the socket alone.
    stalled: Option<Frame>,
    /// Bytes of the decoder's buffer charged to the memory budget.
    charged: usize,
    /// Plain TCP: the socket, for threads that read it directly. It stays open as long
    /// as the [`TcpReader`] is held (by its reader task, the peer's direct readers, or
    /// an event loop or thread watching it): a descriptor that is still being watched
    /// must not close, or be reused by the next socket (libuv aborts on that).
    socket: Option<SharedTcp>,
}

impl ReadState {
    fn new(settings: &Settings, socket: Option<SharedTcp>) -> ReadState {
        ReadState {
            // Small frames until the handshake is done (see `handle_buffered`).
            decoder: FrameDecoder::new(
                settings
                    .limits
                    .max_frame_len
                    .min(settings.handshake_frame_len),
            ),
            read_limits: ReadLimits::from(&settings.limits),
            discarding: false,
            stalled: None,
            charged: 0,
            socket,
        }
    }

    /// Brings the budget's charge in line with what the decoder's buffer holds.
    fn settle(&mut self, conn: &Conn) {
        let capacity = self.decoder.capacity();
        if capacity > self.charged {
            conn.charge_memory(capacity - self.charged);
        } else {
            conn.release_memory(self.charged - capacity);
        }
        self.charged = capacity;
    }

    /// Room in the decoder for the next read, if the memory budget grants it; false
    /// (and no allocation) if not: reading waits then.
    fn make_room(&mut self, conn: &Conn) -> bool {
        let growth = self.decoder.growth_wanted();
        if growth > 0 {
            if !conn.try_charge_memory(growth) {
                return false;
            }
            self.charged += growth;
        }
        self.decoder.read_buffer();
        self.settle(conn);
        true
    }

    /// Frees the decoder's buffer if it sits between frames.
    fn release_if_idle(&mut self, conn: &Conn) {
        self.decoder.release_if_idle();
        self.settle(conn);
    }

    /// Input is over: the decoder and what it buffered are dropped.
    fn drop_buffer(&mut self, conn: &Conn) {
        self.decoder = FrameDecoder::new(self.decoder.max_frame_len());
        self.settle(conn);
    }

    /// Reads what the socket holds now into the decoder (`WouldBlock`: nothing, or no
    /// memory to read into).
    fn read_socket_now(&mut self, conn: &Conn) -> io::Result<usize> {
        if self.socket.is_none() || !self.make_room(conn) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
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
    fn read_socket_now_small(&mut self, conn: &Conn) -> io::Result<(usize, bool)> {
        if self.socket.is_none() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if !self.decoder.is_idle() {
            if !self.make_room(conn) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let Some(socket) = &self.socket else {
                return Err(io::ErrorKind::WouldBlock.into());
            };
            let buf = self.decoder.read_buffer();
            let offered = buf.capacity() - buf.len();
            let n = socket.read_now(buf)?;
            return Ok((n, n == offered));
        }
        if !conn.memory_has_room(SMALL_READ) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let Some(socket) = &self.socket else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let mut small = [std::mem::MaybeUninit::<u8>::uninit(); SMALL_READ];
        let data = socket.read_now_into(&mut small)?;
        self.decoder.extend_from_slice(data);
        let n = data.len();
        self.settle(conn);
        Ok((n, n == SMALL_READ))
    }

    /// Goes on after a stalled frame was handled, or broke the protocol.
    fn resume_after_stall(&mut self, conn: &Arc<Conn>, handled: Result<(), ProtocolError>) {
        self.stalled = None;
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

    /// Handles every complete frame in the decoder, stopping at one that is held back
    /// (kept in `stalled`).
    fn handle_buffered(&mut self, conn: &Arc<Conn>) {
        while !self.discarding && self.stalled.is_none() {
            // Small frames only until the handshake is done (checked per frame until
            // then: the frame before may have completed it).
            if self.decoder.max_frame_len() < conn.settings().limits.max_frame_len {
                self.decoder.set_max_frame_len(conn.frame_limit());
            }
            match self.decoder.decode() {
                Ok(Some(frame)) => {
                    // A large frame leaves the buffer (it shares its allocation): its
                    // bytes are charged again as an event when it is queued. (Small
                    // ones are copied out; the buffer is settled once per read.)
                    if frame.body.len() > SETTLE_PER_FRAME {
                        self.settle(conn);
                    }
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
                Ok(None) => break,
                Err(err) => {
                    conn.protocol_error(&err.into());
                    self.discarding = true;
                }
            }
        }
        self.settle(conn);
    }

    /// Whether new input must be dropped instead of decoded (the decoder's buffer is
    /// dropped then).
    fn must_discard(&mut self, conn: &Conn) -> bool {
        self.discarding = self.discarding || conn.is_finished() || conn.input_rejected();
        if self.discarding && self.charged > 0 {
            self.drop_buffer(conn);
        }
        self.discarding
    }
}

/// The reading side of a plain TCP connection. Its reader task reads it, and so does a
/// Python thread that waits for input on few enough connections
/// ([`TcpReader::read_now`]): whoever holds `state` reads, so frames stay in order.
pub struct TcpReader {
    conn: Arc<Conn>,
    state: Mutex<ReadState>,
    /// Wakes the reader task when a Python thread left a stalled frame behind (one
    /// held back while the task handles it wakes it once more: it finds nothing).
    handover: Notify,
    /// Threads waiting in `poll(2)` on this socket right now: the reader task leaves
    /// arrived data to them (see [`wait_for_data`]).
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
        // to us (see `wait_for_data`), so nobody else would read what is left. A read
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
            self.handover.notify_one();
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

/// Handles a stalled frame (see [`Conn::handle_held_frame`]); `None` if the
/// connection was stopped first. Boxed: a task is as large as its largest wait, and
/// this one is rare.
async fn resume_stalled(
    conn: &Arc<Conn>,
    frame: Frame,
    limits: ReadLimits,
) -> Option<Result<(), ProtocolError>> {
    Box::pin(async {
        tokio::select! {
            () = conn.cancel.cancelled() => None,
            handled = conn.handle_held_frame(frame, limits) => Some(handled),
        }
    })
    .await
}

/// Starts reading a plain TCP connection: its reader task, and `direct`'s waiting
/// threads if it has room for one more socket.
pub(super) fn start_tcp(conn: &Arc<Conn>, tcp: SharedTcp, direct: Arc<DirectReaders<TcpReader>>) {
    let reader = Arc::new(TcpReader::new(conn.clone(), tcp));
    direct.add(&reader);
    tokio::spawn(read_loop_tcp(reader, direct));
}

/// Starts the reader task of a TLS or in-process connection.
pub(super) fn start<R: ReadSource>(conn: &Arc<Conn>, source: R) {
    tokio::spawn(read_loop(conn.clone(), source));
}

/// The reader task of a plain TCP connection (see [`TcpReader`]).
async fn read_loop_tcp(shared: Arc<TcpReader>, direct: Arc<DirectReaders<TcpReader>>) {
    let conn = shared.conn.clone();
    let settings = conn.settings().clone();
    let Some(mut tcp) = shared.lock().socket.clone() else {
        return;
    };
    let mut drain = Vec::new();
    loop {
        let (discarding, stalled) = {
            let mut state = shared.lock();
            (state.must_discard(&conn), state.stalled.clone())
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
        let wanted = {
            let mut state = shared.lock();
            state.release_if_idle(&conn);
            state.decoder.growth_wanted()
        };
        // (A read into room the buffer already has costs nothing: never held back.)
        if wanted > 0 && !conn.memory_has_room(wanted) {
            // Back-pressure: the peer's bytes wait in TCP until memory is released.
            Box::pin(conn.wait_for_memory_room(wanted)).await;
            continue;
        }
        // Wait for data (or a frame a Python thread left stalled), without a buffer.
        let arrived = async {
            tokio::select! {
                arrived = wait_for_data(&shared, &tcp) => arrived,
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
            Some(Ok(())) => match state.read_socket_now(&conn) {
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
    shared.lock().drop_buffer(&conn);
    direct.remove(&shared);
    conn.cancel.cancel();
    conn.reader_ended();
}

/// Waits until the socket has data for the reader task to read. Data that arrives
/// while a thread watches the socket in `poll(2)` is left to that thread, which reads
/// it at once ([`TcpReader::read_now`]): the readiness is dropped (so that the task waits for
/// the next one instead of spinning) and noted in `skipped`, which the thread checks
/// when it stops watching, so that nothing is left unread between the two.
async fn wait_for_data(shared: &TcpReader, tcp: &SharedTcp) -> io::Result<()> {
    loop {
        // Polled, not `readable().await`, for the size of the task (see `data_arrived`).
        std::future::poll_fn(|cx| tcp.0.poll_read_ready(cx)).await?;
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
async fn read_loop<R: ReadSource>(conn: Arc<Conn>, mut reader: R) {
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
        if let Some(frame) = state.stalled.clone() {
            let Some(handled) = resume_stalled(&conn, frame, state.read_limits).await else {
                break;
            };
            state.resume_after_stall(&conn, handled);
            continue;
        }
        conn.wait_for_inbox_room().await;
        if R::WAITS_FOR_DATA {
            state.release_if_idle(&conn);
        }
        let wanted = state.decoder.growth_wanted();
        if wanted > 0 && !conn.memory_has_room(wanted) {
            // Back-pressure: the peer's bytes wait until memory is released.
            Box::pin(conn.wait_for_memory_room(wanted)).await;
            continue;
        }
        let read_more = async {
            if R::WAITS_FOR_DATA && state.decoder.is_idle() {
                reader.data_arrived().await?;
            }
            if !state.make_room(&conn) {
                // Another connection took the room meanwhile: wait again.
                return Ok(None);
            }
            reader.read_buf(state.decoder.read_buffer()).await.map(Some)
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
            Some(Ok(None)) => continue,
            Some(read) => {
                if !state.note_read(&conn, read.map(|n| n.unwrap_or(0))) {
                    break;
                }
                state.handle_buffered(&conn);
            }
        }
    }
    state.drop_buffer(&conn);
    conn.cancel.cancel();
    conn.reader_ended();
}
