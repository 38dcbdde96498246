//! Where a connection's ends are: TCP or in-process addresses ([`Endpoint`]), what a
//! transport tells a new connection about its socket ([`SocketInfo`]) and the OS handle
//! Python's `fileno()` returns.

use std::net::SocketAddr;
use std::sync::Arc;

/// Where one end of a connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP socket address.
    Socket(SocketAddr),
    /// An in-process address, `memory:NAME` (see [`super::memory`]). `port` tells the
    /// ends of one server apart: 0 is the server's end, a client's end has its cid.
    Memory {
        /// The name after `memory:`.
        name: Arc<str>,
        /// 0 for the server's end, the cid for a client's.
        port: u64,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Socket(addr) => addr.fmt(f),
            Endpoint::Memory { name, port } => write!(f, "memory:{name} (end {port})"),
        }
    }
}

/// Addresses and handle of a socket, for `Conn::start`.
#[derive(Debug, Clone)]
pub struct SocketInfo {
    /// Remote address.
    pub peer_addr: Endpoint,
    /// Local address.
    pub local_addr: Endpoint,
    /// OS handle, or -1.
    pub fd: i64,
    /// `SSLSEC_*` level of the transport.
    pub ssl_seclevel: u32,
}

/// The OS handle of a socket, for Python's `fileno()` (-1 where there is none).
#[cfg(unix)]
pub(crate) fn socket_handle<T: std::os::fd::AsRawFd>(socket: &T) -> i64 {
    i64::from(socket.as_raw_fd())
}

/// The OS handle of a socket, for Python's `fileno()` (-1 where there is none).
#[cfg(not(unix))]
pub(crate) fn socket_handle<T>(_socket: &T) -> i64 {
    -1
}
