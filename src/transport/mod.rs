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
//!  socket <--write--  | writer task <--- outbox (queue, unbounded) <-----+ <-- Python   |
//!                     +---------------------------------------------------------------+
//!  Inbox ---> take() on the Python thread that calls process() (see
//!             bindings::events::take_events)
//! ```
//!
//! * [`runtime`]: the process-wide Tokio runtime, built on first use.
//! * [`inbox`]: the ordered queue of events for one peer's Python side.
//! * [`peer`]: what servers and clients share (inbox, settings, tables, starting a
//!   connection, deadline waits).
//! * [`connection`]: one connection's shared state, sending and closing.
//! * [`settings`]: what a peer configures for all its connections.
//! * [`stats`]: traffic counters and statistics of a connection.
//! * [`socket`]: endpoints (TCP or in-process) and socket handles.
//! * `reader`: reading a connection: its reader task, or a waiting thread.
//! * `writer`: a connection's writer task.
//! * `outbox`: the queue of frames between a connection's senders and its writer.
//! * `timers`: handshake deadlines and heartbeats of all connections, in one queue.
//! * `shared_tcp`: a TCP stream that the reader, the writer and direct senders share.
//! * [`sync`]: locks taken even when poisoned, and waits with deadlines.
//! * [`server`]: the listener, its accept loop and the table of connections.
//! * [`client`]: connecting, and the client's wait conditions.
//! * [`tls`]: TLS configurations, certificate checks and security levels.
//! * [`memory`]: the in-process transport (`memory:NAME` addresses).
//!
//! Queues: each connection's outbox is part of its [`connection::Conn`] (Python and
//! the reader task push, its writer task pops). The inbox is shared by all of a peer's
//! connections and drained by Python.

pub mod client;
pub mod connection;
pub mod direct_read;
pub mod inbox;
pub mod memory;
mod outbox;
pub mod peer;
mod reader;
pub mod runtime;
pub mod server;
pub mod settings;
mod shared_tcp;
pub mod socket;
pub mod stats;
pub mod sync;
mod timers;
pub mod tls;
mod wakeup;
mod writer;

#[cfg(test)]
mod tests;
