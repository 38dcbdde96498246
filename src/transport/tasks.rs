//! The two tasks of a connection: the reader (bytes -> frames -> handshake rules and
//! inbox) and the writer (outbox -> socket, small frames batched into one write).
//! Either ending cancels the other; see [`super::connection`] for the close protocol.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::connection::{Conn, Outbound, Traffic};
use crate::peer::constants::{pid, reason};
use crate::protocol::msgpack::{ReadLimits, Value};
use crate::protocol::packet;
use crate::protocol::FrameDecoder;

/// Frames smaller than this are copied into one buffer and written together.
const BATCH_LIMIT: usize = 64 * 1024;

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

pub(super) async fn read_loop<R: ReadSource>(conn: Arc<Conn>, mut reader: R) {
    let settings = conn.settings().clone();
    let read_limits = ReadLimits::from(&settings.limits);
    let mut decoder = FrameDecoder::new(settings.limits.max_frame_len);
    // Allocated only once input is being dropped: most connections never need it, and
    // 16 KiB each would dominate the memory of a server with thousands of them.
    let mut drain = Vec::new();
    // After a protocol error or once the connection is over, input is read and dropped.
    let mut discarding = false;
    loop {
        discarding = discarding || conn.is_finished() || conn.input_rejected();
        let read = if discarding {
            if drain.is_empty() {
                drain.resize(16 * 1024, 0);
            }
            tokio::select! {
                () = conn.cancel.cancelled() => break,
                read = reader.read(&mut drain) => read,
            }
        } else {
            conn.wait_for_inbox_room().await;
            let read_more = async {
                if R::WAITS_FOR_DATA && decoder.is_idle() {
                    decoder.release_if_idle();
                    reader.data_arrived().await?;
                }
                reader.read_buf(decoder.read_buffer()).await
            };
            // `None` when the idle timeout passed before anything arrived.
            let read = async {
                match settings.idle_timeout {
                    Some(idle) => tokio::time::timeout(idle, read_more).await.ok(),
                    None => Some(read_more.await),
                }
            };
            tokio::select! {
                () = conn.cancel.cancelled() => break,
                read = read => match read {
                    Some(read) => read,
                    None => {
                        conn.close(Some(reason::IDLE_TIMEOUT.to_owned()));
                        discarding = true;
                        continue;
                    }
                },
            }
        };
        match read {
            Ok(0) => {
                conn.finish(Some(reason::SOCKET_CLOSE.to_owned()));
                break;
            }
            Err(err) => {
                // TCP keepalive giving up on a silent peer surfaces as a timed-out read.
                let why = if err.kind() == std::io::ErrorKind::TimedOut {
                    reason::TIMEOUT
                } else {
                    reason::SOCKET_CLOSE
                };
                conn.finish(Some(why.to_owned()));
                break;
            }
            Ok(_) if discarding => continue,
            Ok(n) => {
                conn.note_input();
                Traffic::add(&conn.traffic.bytes_in, n);
            }
        }
        loop {
            match decoder.decode() {
                Ok(Some(frame)) => {
                    Traffic::add(&conn.traffic.frames_in, 1);
                    if let Err(err) = conn.handle_frame(frame, read_limits).await {
                        conn.protocol_error(&err);
                        discarding = true;
                        break;
                    }
                    if conn.is_finished() {
                        discarding = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    conn.protocol_error(&err.into());
                    discarding = true;
                    break;
                }
            }
        }
    }
    conn.cancel.cancel();
    conn.task_ended();
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

pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    conn: Arc<Conn>,
    mut writer: W,
    mut outbox: mpsc::UnboundedReceiver<Outbound>,
) {
    // Grows to what the batches need (at most a little over BATCH_LIMIT) and is kept.
    let mut batch: Vec<u8> = Vec::new();
    let end = 'run: loop {
        let first = tokio::select! {
            biased;
            () = conn.cancel.cancelled() => break 'run WriterEnd::Stopped,
            item = outbox.recv() => item,
        };
        let Some(mut item) = first else {
            break 'run WriterEnd::Stopped;
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
            match outbox.try_recv() {
                Ok(next) => item = next,
                Err(_) => break,
            }
        }
        let ok = write_all(&conn, &mut writer, &batch).await;
        written(batch.len());
        if !ok {
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
                tokio::select! {
                    () = tokio::time::sleep(conn.settings().linger) => {}
                    () = conn.cancel.cancelled() => {}
                }
            }
            break 'run WriterEnd::Closed;
        }
    };
    if matches!(end, WriterEnd::Failed) {
        conn.finish(Some(reason::SOCKET_CLOSE.to_owned()));
    }
    conn.cancel.cancel();
    conn.task_ended();
}
