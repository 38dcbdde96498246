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
//! Grouped by what they own, from the leaves up:
//!
//! * Leaves: [`runtime`] (the process-wide Tokio runtime, built on first use),
//!   [`sync`] (locks taken even when poisoned, waits with deadlines), [`settings`]
//!   (what a peer configures for all its connections), [`stats`] (traffic counters),
//!   [`socket`] (endpoints, TCP or in-process, and socket handles), `shared_tcp` (a
//!   TCP stream that the reader, the writer and direct senders share), `outbox` (the
//!   queue between a connection's senders and its writer), `wakeup` (wake-up socket
//!   pairs), `timers` (handshake deadlines and heartbeats of all connections in one
//!   queue; it knows its owners only as `Timed`), [`tls`] (configurations,
//!   certificate checks, security levels), [`memory`] (the names of the in-process
//!   transport; it knows a server only as a `Listener`).
//! * One connection: [`connection`] (its shared state; `send`, `receive` and
//!   `close` within it), `reader` (its reader task, or a waiting thread reading for
//!   it), `writer` (its writer task), [`direct_read`] (threads and event loops that
//!   wait for events and read the sockets themselves), [`inbox`] (the ordered events
//!   of one peer's Python side).
//! * The sides: [`peer`] (what servers and clients share, and how a connected stream
//!   becomes a connection), [`server`] (the listener, its accept loop and table of
//!   connections), [`client`] (connecting, the client's wait conditions).
//!
//! Dependencies point up this list, with one circle, inherent to a connection: the
//! connection starts its reader and writer and is driven by them; events in the inbox
//! carry their connection, which queues them; a direct reader holds the connections it
//! reads, each of which joins and leaves it (`connection`, `reader`, `writer`,
//! `direct_read`, `inbox`). Nothing else refers back.
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
