//! Tokio: sockets and tasks. Moves frames between sockets and the [`inbox::Inbox`];
//! never touches Python.
//!
//! ```text
//!                     +--------------------------- one per connection ----------------+
//!  socket --read-->   | reader task: FrameDecoder -> open_body -> internal? --yes--+  |
//!                     |                                         |     handshake rules |
//!                     |                                         no    (peer::)  Actions|
//!                     |                                         v          v          |
//!                     |                                   Inbox <----- events          |
//!                     |                                                  | Send        |
//!  socket <--write--  | writer task <--- outbox (mpsc, unbounded) <------+ <-- Python   |
//!                     +---------------------------------------------------------------+
//!  Inbox ---> take() on the Python thread that calls process() (see bindings::peer)
//! ```
//!
//! * [`runtime`]: the process-wide Tokio runtime, built on first use.
//! * [`inbox`]: the ordered queue of events for one peer's Python side.
//! * [`peer`]: what servers and clients share (inbox, settings, tables, starting a
//!   connection, deadline waits).
//! * [`connection`]: one connection's shared state, sending and closing.
//! * `tasks`: the reader and writer task of each connection.
//! * `shared_tcp`: a TCP stream that the reader, the writer and direct senders share.
//! * [`server`]: the listener, its accept loop and the table of connections.
//! * [`client`]: connecting, and the client's wait conditions.
//! * [`tls`]: TLS configurations, certificate checks and security levels.
//! * [`memory`]: the in-process transport (`memory:NAME` addresses).
//!
//! Channel ends: each connection's outbox sender is held by its [`connection::Conn`]
//! (Python and the reader task send through it), the receiver by its writer task. The
//! inbox is shared by all of a peer's connections and drained by Python.

pub mod client;
pub mod connection;
pub mod inbox;
pub mod memory;
pub mod peer;
pub mod runtime;
pub mod server;
mod shared_tcp;
mod tasks;
pub mod tls;

#[cfg(test)]
mod tests;
