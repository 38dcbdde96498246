//! Native core of peng3dnet-rs, a drop-in reimplementation of the Python networking
//! library peng3dnet (API 0.2.0, wire protocol version 2).
//!
//! # Layout
//!
//! Dependencies point downward only; the lower layers never name Tokio or PyO3.
//!
//! * [`protocol`]: the wire format as pure functions: frames, headers, zlib bodies with
//!   bounded inflation, and a msgpack reader/writer that reproduces msgpack-python.
//!   No I/O, no clock, no Python.
//! * [`peer`]: the handshake state machines and the packet table: internal packets
//!   in, actions out. No I/O either.
//! * [`transport`]: Tokio: sockets (TCP, TLS, in-process), each connection's reader
//!   and writer, the timers, and the inbox of events the Python side drains. Never
//!   touches Python.
//! * `bindings` (private; cargo feature `python`, on by default): the only PyO3 code.
//!   The `peng3dnet._core` extension module: msgpack <-> Python object conversion, the
//!   codec classes, and the server and client cores the Python package drives.
//!
//! `./run lint` fails if `protocol` or `peer` names Tokio or PyO3.
//!
//! The pure-Python package in `python/peng3dnet` keeps every import path of the
//! original library and delegates the work to this crate.

pub mod peer;
pub mod protocol;
pub mod transport;

#[cfg(feature = "python")]
mod bindings;
