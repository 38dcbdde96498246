//! A plain TCP stream shared by a connection's reader task, its writer task and the
//! threads that send on it directly ([`super::connection::Conn::queue_frame`]).
//!
//! Tokio's split halves each own their side, so only the writer task could write.
//! [`SharedTcp`] implements `AsyncRead` and `AsyncWrite` on an `Arc<TcpStream>` through
//! its readiness API (`poll_*_ready` + `try_*`, all `&self`), so a sender that finds
//! nothing queued can write its frame at once from its own thread instead of waking
//! the writer task: one thread handoff less per packet.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A reference to a connection's TCP stream; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct SharedTcp(pub(crate) Arc<TcpStream>);

impl SharedTcp {
    /// Writes as much of `data` as the socket takes now, without waiting; `Ok(0)` if
    /// it takes nothing.
    pub(crate) fn try_write_now(&self, data: &[u8]) -> io::Result<usize> {
        match self.0.try_write(data) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(0),
            other => other,
        }
    }

    /// [`SharedTcp::try_write_now`] for data in pieces, in one system call.
    pub(crate) fn try_write_pieces_now(&self, pieces: &[bytes::Bytes]) -> io::Result<usize> {
        let slices: Vec<io::IoSlice<'_>> = pieces.iter().map(|p| io::IoSlice::new(p)).collect();
        match self.0.try_write_vectored(&slices) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(0),
            other => other,
        }
    }
}

impl SharedTcp {
    /// Reads what the socket holds into the free space of `buf` (growing its length),
    /// without waiting (`WouldBlock` if nothing is there). A plain system call that
    /// leaves tokio's readiness state alone: it works from any thread, also before the
    /// runtime has seen the socket become readable.
    pub(crate) fn read_now(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let socket = socket2::SockRef::from(&*self.0);
        let spare = buf.spare_capacity_mut();
        // An empty buffer would read 0 bytes, which means end of stream.
        debug_assert!(!spare.is_empty(), "read_now needs free buffer space");
        let n = socket.recv(spare)?;
        // SAFETY: recv(2) initialised the first `n` bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
        Ok(n)
    }
}

impl SharedTcp {
    /// Like [`SharedTcp::read_now`], into a caller's (uninitialised) buffer; returns
    /// the bytes read.
    pub(crate) fn read_now_into<'a>(
        &self,
        buf: &'a mut [std::mem::MaybeUninit<u8>],
    ) -> io::Result<&'a [u8]> {
        let n = socket2::SockRef::from(&*self.0).recv(buf)?;
        // SAFETY: recv(2) initialised the first `n` bytes of `buf`.
        Ok(unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) })
    }
}

impl AsyncRead for SharedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            // `try_read` clears the readiness it consumed when it would block, so the
            // next `poll_read_ready` waits for new data.
            // SAFETY: read(2) only writes into the slice, and only the `n` bytes it
            // reports are then marked initialised; this is what tokio's own
            // `TcpStream::poll_read` does. (Zero-filling instead would cost a memset
            // of the whole read buffer per read and make every page resident.)
            let unfilled = unsafe {
                &mut *(std::ptr::from_mut::<[std::mem::MaybeUninit<u8>]>(buf.unfilled_mut())
                    as *mut [u8])
            };
            match self.0.try_read(unfilled) {
                Ok(n) => {
                    // SAFETY: the kernel wrote these `n` bytes.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(data) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let socket = socket2::SockRef::from(&*self.0);
        Poll::Ready(match socket.shutdown(std::net::Shutdown::Write) {
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }
}
