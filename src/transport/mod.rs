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
//!   transport; it knows a server only as a `Listener`), [`budget`] (the memory a
//!   peer's connections hold, against one limit; it knows them only as `Holder`s),
//!   [`dial`] (connecting a TCP socket: a first step that never blocks, then the wait),
//!   `bulk` (low-priority threads for CPU-heavy work peers cause: large inflates).
//! * One connection: [`inbox`] (the ordered events of one peer's Python side, a queue
//!   that knows its events only as `Queued`), [`connection`] (its shared state, the
//!   events it queues; `send`, `receive` and `close` within it; a leaf that names
//!   none of the tasks that drive it), `writer` (its writer task), [`direct_read`]
//!   (threads and event loops that wait for events and read the sockets themselves;
//!   it knows a socket only as a `DirectSocket`), `reader` (its reader task, and the
//!   read state a waiting thread shares with it, which is that `DirectSocket`).
//! * The sides: [`peer`] (what servers and clients share, and the driver: how a
//!   connected stream becomes a connection whose reader and writer run), [`server`]
//!   (the listener, its accept loop and table of connections), [`client`]
//!   (connecting, the client's wait conditions).
//!
//! Dependencies point up this list, without a circle: where a lower module must call
//! up (a connection starting a writer once its last one parked, the inbox telling a
//! connection that its event was taken, a waiting thread reading a socket), it calls
//! through a function or trait given to it from above (`connection::StartWriter`,
//! `inbox::Queued`, `direct_read::DirectSocket`); `tests/test_layers.py` fails if a
//! circle comes back.
//!
//! Queues: each connection's outbox is part of its [`connection::Conn`] (Python and
//! the reader task push, its writer task pops). The inbox is shared by all of a peer's
//! connections and drained by Python.

pub mod budget;
mod bulk;
pub mod client;
pub mod connection;
pub mod dial;
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

pub use timers::queued_timers;

#[cfg(test)]
mod tests;
