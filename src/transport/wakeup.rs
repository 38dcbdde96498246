//! Wake-up sockets: a socket pair whose read end a waiter watches together with other
//! sockets (an event loop with `add_reader`, a thread in `poll(2)`), and whose write
//! end gets one byte when something happens while the waiter has armed it.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(unix)]
use std::sync::Mutex;

#[cfg(unix)]
use super::sync::Unpoisoned;

/// A socket pair whose read end a waiter watches: while armed, the next push writes
/// one byte to it. Waking a waiter this way costs one write from the network thread,
/// with no GIL and no thread of ours in between.
#[derive(Default)]
pub(super) struct Wakeup {
    /// The pair (read end, write end) until [`Wakeup::close`].
    #[cfg(unix)]
    sockets: Mutex<
        Option<(
            std::os::unix::net::UnixStream,
            std::os::unix::net::UnixStream,
        )>,
    >,
    /// Set by the waiter just before it waits; cleared by the push that wakes it.
    pub(super) armed: AtomicBool,
}

impl Wakeup {
    #[cfg(unix)]
    pub(super) fn new() -> io::Result<Wakeup> {
        let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Wakeup {
            sockets: Mutex::new(Some((reader, writer))),
            armed: AtomicBool::new(false),
        })
    }

    /// Opens a new pair if there is none (the first time, or after [`Wakeup::close`]).
    #[cfg(unix)]
    pub(super) fn reopen(&self) -> io::Result<()> {
        let mut sockets = self.sockets.lock_anyway();
        if sockets.is_none() {
            let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
            reader.set_nonblocking(true)?;
            writer.set_nonblocking(true)?;
            *sockets = Some((reader, writer));
        }
        Ok(())
    }

    #[cfg(not(unix))]
    pub(super) fn new() -> io::Result<Wakeup> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "wake-up sockets need a Unix system",
        ))
    }

    /// The read end's descriptor, or -1 once closed.
    pub(super) fn fd(&self) -> i64 {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let sockets = self.sockets.lock_anyway();
            sockets
                .as_ref()
                .map_or(-1, |(reader, _)| i64::from(reader.as_raw_fd()))
        }
        #[cfg(not(unix))]
        -1
    }

    pub(super) fn close(&self) {
        self.armed.store(false, Ordering::SeqCst);
        #[cfg(unix)]
        self.sockets.lock_anyway().take();
    }

    /// Empties the read end.
    pub(super) fn drain(&self) {
        #[cfg(unix)]
        {
            use std::io::Read;
            let sockets = self.sockets.lock_anyway();
            if let Some((reader, _)) = sockets.as_ref() {
                let mut sink = [0u8; 64];
                while matches!((&*reader).read(&mut sink), Ok(n) if n > 0) {}
            }
        }
    }

    /// Writes the wake-up byte if armed (and disarms).
    pub(super) fn wake(&self) {
        if self.armed.load(Ordering::SeqCst) && self.armed.swap(false, Ordering::SeqCst) {
            #[cfg(unix)]
            if let Some((_, writer)) = self.sockets.lock_anyway().as_ref() {
                use std::io::Write;
                // A full socket already holds a wake-up: nothing is lost.
                let _ = (&*writer).write(&[1]);
            }
        }
    }
}
