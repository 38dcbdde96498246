//! The writing side of a connection: its writer task drains the outbox into the
//! socket, copying small frames into one buffer per write. It runs only while there is
//! something to write (see `outbox`), writes our close packet last, and ending cancels
//! the reader; see [`super::connection`] for the close protocol.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::connection::Conn;
use super::outbox::{Outbound, StreamWriter};
use super::stats::Traffic;
use crate::peer::constants::reason;
use crate::peer::handshake::close_packet;

/// Frames smaller than this are copied into one buffer and written together.
const BATCH_LIMIT: usize = 64 * 1024;

/// How long a writer with nothing to write runs on before it parks its stream and
/// ends (giving back its batch buffer): far longer than the pauses within a stream.
const WRITER_IDLE: Duration = Duration::from_millis(100);

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
/// Starts a writer task on `writer` for `conn` (its [`super::connection::StartWriter`]).
pub(super) fn start(conn: Arc<Conn>, writer: StreamWriter) {
    super::runtime::runtime().spawn(write_loop(conn, writer));
}

async fn write_loop(conn: Arc<Conn>, mut writer: StreamWriter) {
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
        // Bytes of `batch` charged to the memory budget.
        let mut batch_charged = 0;
        // Queued bytes stay counted in `out_bytes` (and charged to the budget) until
        // written: a sender may write directly only when it is zero (see
        // `Conn::queue_frame`).
        let written = |n: usize, charged: usize| {
            conn.out_bytes.fetch_sub(n, Ordering::SeqCst);
            conn.written_out(charged);
            conn.changed.notify_waiters();
        };
        loop {
            let charged = item.charged_len();
            let frame = match item {
                Outbound::Frame { frame, .. } => frame,
                Outbound::Close(reason) => {
                    close = Some(reason);
                    break;
                }
            };
            batch_charged += charged;
            for piece in frame.into_pieces() {
                if piece.len() >= BATCH_LIMIT {
                    // Large pieces are written from their own buffer, not copied.
                    let ok = write_all(&conn, &mut writer, &batch).await
                        && write_all(&conn, &mut writer, &piece).await;
                    written(batch.len() + piece.len(), batch_charged);
                    batch.clear();
                    batch_charged = 0;
                    if !ok {
                        break 'run WriterEnd::Failed;
                    }
                } else {
                    batch.extend_from_slice(&piece);
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
        written(batch.len(), batch_charged);
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
            let frame = close_packet(reason.as_deref(), &conn.settings().compression);
            let sent = write_all(&conn, &mut writer, &frame).await;
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
    // What will never be written gives its memory back.
    let unwritten: usize = pending.iter().map(Outbound::charged_len).sum();
    conn.written_out(unwritten + outbox.close());
    conn.cancel.cancel();
    conn.task_ended();
}
