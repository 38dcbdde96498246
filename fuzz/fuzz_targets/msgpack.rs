//! The msgpack reader on arbitrary input (with a small depth limit to reach it).
//!
//! Invariants: no panic and no unbounded allocation; a value that decodes re-encodes
//! to bytes that decode to the same value (the encoding is canonical from then on).
#![no_main]

use libfuzzer_sys::fuzz_target;
use peng3dnet_core::protocol::msgpack::{ReadLimits, Value};

fuzz_target!(|data: &[u8]| {
    let limits = ReadLimits { max_depth: 64, max_container_len: 1 << 16 };
    let Ok(value) = Value::decode(data, limits) else { return };
    let encoded = value.to_bytes();
    let again = Value::decode(&encoded, limits).expect("our own encoding must decode");
    // NaN != NaN, so compare the canonical bytes rather than the values.
    assert_eq!(again.to_bytes(), encoded);
});
