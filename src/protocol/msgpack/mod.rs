//! msgpack, as msgpack-python 1.x writes and reads it with default options.
//!
//! * [`write`](mod@write): the smallest encoding for each value, exactly as `msgpack.packb` picks
//!   it (non-negative integers always use the unsigned forms, floats are always float64,
//!   `str` uses str8 for 32-255 bytes, `bytes` uses the bin family).
//! * [`read`]: a bounds-checked, depth-limited reader that hands each decoded item to a
//!   [`read::Builder`]. The Python bindings implement one builder that makes Python
//!   objects; [`value::Value`] is another, for the handshake packets the core reads
//!   itself.
//! * [`marker`]: the format's first-byte markers.

pub mod marker;
pub mod read;
pub mod value;
pub mod write;

pub use read::{decode, decode_prefix, Builder, DecodeError, ReadLimits};
pub use value::Value;
