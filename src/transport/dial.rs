//! Connecting a TCP socket in two steps: [`start`] never blocks, and on loopback it
//! usually finds the connection established already (the kernel completes the
//! handshake inside the connect call); only when it did not does [`finish`] wait. A
//! caller holding the GIL takes the first step and releases the GIL only when there is
//! something to wait for: a wave of clients connecting to a local server then costs no
//! GIL hand-off per client.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// A connection attempt after its first, non-blocking step.
pub enum Dial {
    /// Connected; the stream is non-blocking.
    Established(TcpStream),
    /// The handshake is under way.
    Pending(Socket, SocketAddr),
    /// The attempt failed at once.
    Failed(io::Error),
}

/// Starts connecting to `addr` without blocking.
pub fn start(addr: SocketAddr) -> Dial {
    let socket = match Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .and_then(|socket| socket.set_nonblocking(true).map(|()| socket))
    {
        Ok(socket) => socket,
        Err(err) => return Dial::Failed(err),
    };
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => Dial::Established(socket.into()),
        // A peer address means the handshake completed during the call.
        Err(err) if in_progress(&err) && socket.peer_addr().is_ok() => {
            Dial::Established(socket.into())
        }
        Err(err) if in_progress(&err) => Dial::Pending(socket, addr),
        Err(err) => Dial::Failed(err),
    }
}

/// [`start`] on the first of `addrs` (failed if there is none).
pub fn start_first(addrs: &[SocketAddr]) -> Dial {
    match addrs.first() {
        Some(&addr) => start(addr),
        None => Dial::Failed(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no address to connect to",
        )),
    }
}

/// Completes `dial`, waiting up to `timeout` for a pending handshake. Blocks: call
/// without the GIL.
pub fn finish(dial: Dial, timeout: Duration) -> io::Result<TcpStream> {
    match dial {
        Dial::Established(stream) => Ok(stream),
        Dial::Failed(err) => Err(err),
        Dial::Pending(socket, addr) => wait_connected(socket, addr, timeout),
    }
}

/// The first of `first` (already started) and then `rest` that connects within
/// `timeout` each; the last error if none does. Blocks: call without the GIL.
pub fn first_of(first: Dial, rest: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut last_error = match finish(first, timeout) {
        Ok(stream) => return Ok(stream),
        Err(err) => err,
    };
    for addr in rest {
        match finish(start(*addr), timeout) {
            Ok(stream) => return Ok(stream),
            Err(err) => last_error = err,
        }
    }
    Err(last_error)
}

#[cfg(unix)]
fn in_progress(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::EINPROGRESS)
}

#[cfg(not(unix))]
fn in_progress(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
}

fn timed_out(addr: SocketAddr, timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("connecting to {addr} took longer than {timeout:?}"),
    )
}

/// Waits in `poll(2)` until the pending connect is writable, then asks how it ended.
#[cfg(unix)]
fn wait_connected(socket: Socket, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    use std::os::fd::AsRawFd;
    use std::time::Instant;

    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(addr, timeout));
        }
        let mut fds = [libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        }];
        let millis = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: `fds` is a valid array of one pollfd for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, millis) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if ready > 0 {
            if let Some(err) = socket.take_error()? {
                return Err(err);
            }
            return match socket.peer_addr() {
                Ok(_) => Ok(socket.into()),
                // Writable without a peer: the attempt failed (the error was consumed).
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("connecting to {addr} failed"),
                )),
            };
        }
    }
}

/// Without `poll(2)`: the pending attempt is dropped and a blocking connect made.
#[cfg(not(unix))]
fn wait_connected(socket: Socket, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    drop(socket);
    match TcpStream::connect_timeout(&addr, timeout) {
        Err(err) if err.kind() == io::ErrorKind::TimedOut => Err(timed_out(addr, timeout)),
        result => result.and_then(|stream| stream.set_nonblocking(true).map(|()| stream)),
    }
}
