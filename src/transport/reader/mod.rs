//! The reading side of a connection: bytes -> frames -> handshake rules and inbox.
//!
//! A TLS or in-process connection is read by its reader task alone ([`start`]). A
//! plain TCP connection is read through a [`TcpReader`] by whoever holds it: its
//! reader task ([`start_tcp`]) or a Python thread (or event loop) that waits for its
//! events and reads the socket itself (see [`tcp`] and `direct_read`). Both keep a
//! [`ReadState`]. The reader ending cancels the writer; see [`super::connection`] for
//! the close protocol.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::connection::Conn;
use super::settings::Settings;
use super::shared_tcp::SharedTcp;
use super::stats::Traffic;
use crate::peer::constants::reason;
use crate::protocol::msgpack::ReadLimits;
use crate::protocol::{Frame, FrameDecoder, ProtocolError};

mod tcp;

pub(super) use tcp::{start_tcp, TcpReader};

/// Stack buffer of a waiting thread's read between frames (see
/// `ReadState::read_socket_now_small`).
const SMALL_READ: usize = 8 * 1024;

/// Frames with a body longer than this settle the decoder's charge as they leave it.
const SETTLE_PER_FRAME: usize = 64 * 1024;

/// A stream a reader task reads as it is (TLS streams and in-process pipes; plain TCP
/// has its own task, see [`tcp`]).
pub(crate) trait ReadSource: AsyncRead + Unpin + Send + 'static {}

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

/// Handles a stalled frame (see [`Conn::handle_held_frame`]); `None` if the
/// connection was stopped first. Boxed: a task is as large as its largest wait, and
/// this one is rare (awaiting the box holds a pointer).
type Resumed<'a> = Pin<Box<dyn Future<Output = Option<Result<(), ProtocolError>>> + Send + 'a>>;

fn resume_stalled(conn: &Arc<Conn>, frame: Frame, limits: ReadLimits) -> Resumed<'_> {
    Box::pin(async move {
        tokio::select! {
            () = conn.cancel.cancelled() => None,
            handled = conn.handle_held_frame(frame, limits) => Some(handled),
        }
    })
}

/// Starts the reader task of a TLS or in-process connection.
pub(super) fn start<R: ReadSource>(conn: &Arc<Conn>, source: R) {
    tokio::spawn(read_loop(conn.clone(), source));
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
        let wanted = state.decoder.growth_wanted();
        if wanted > 0 && !conn.memory_has_room(wanted) {
            // Back-pressure: the peer's bytes wait until memory is released.
            Box::pin(conn.wait_for_memory_room(wanted)).await;
            continue;
        }
        let read_more = async {
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
