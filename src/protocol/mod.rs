//! The peng3dnet wire format, as pure functions over bytes.
//!
//! Nothing in this module knows about sockets, clocks, Tokio or Python: it turns
//! bytes into frames and values and back, and refuses anything that breaks the
//! format or the configured [`Limits`]. Every later layer builds on it.
//!
//! ```text
//! +----------------+----------------+-------------+---------------------------+
//! | length: u32 BE | pid: u32 BE    | flags: u16 BE | body                    |
//! | (bytes after   | packet id      | bit 0: zlib   | msgpack value, zlib-    |
//! |  this prefix)  |                | bit 1: AES    | compressed if bit 0 set |
//! +----------------+----------------+-------------+---------------------------+
//!  STRUCT "!I"      STRUCT "!IH" (the 6-byte header)
//! ```
//!
//! * [`header`]: the 6-byte header and its flag bits.
//! * [`frame`]: the length-prefixed frame, an incremental [`FrameDecoder`] and the encoder.
//! * [`compress`]: zlib bodies, with a hard cap on the inflated size.
//! * [`packet`]: building a frame in place around a body (compressing it when the
//!   rule says so) and opening a received body.
//! * [`msgpack`]: a msgpack reader and writer that reproduce msgpack-python's choices.
//! * [`limits`]: the bounds every decoder enforces.
//! * [`error`]: one error type per failure class, each with a message fit for a close reason.

pub mod compress;
pub mod error;
pub mod frame;
pub mod header;
pub mod limits;
pub mod msgpack;
pub mod packet;

pub use error::{FrameError, InflateError, ProtocolError};
pub use frame::{encode_frame, Frame, FrameDecoder};
pub use header::{Flags, Header, HEADER_LEN, INTERNAL_ID_LIMIT, LENGTH_PREFIX_LEN};
pub use limits::Limits;
