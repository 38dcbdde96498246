//! zlib inflation with an output cap, on arbitrary input.
//!
//! Invariants: no panic; the output never exceeds the cap; a stream our compressor
//! made from the output inflates back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peng3dnet_core::protocol::compress::{compress, decompress};

const CAP: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = decompress(data, CAP) {
        assert!(out.len() <= CAP);
        let mut again = Vec::new();
        compress(&out, 6, &mut again);
        assert_eq!(decompress(&again, CAP).as_deref(), Ok(out.as_slice()));
    }
    // Also treat the input itself as a body to compress and restore.
    let mut packed = Vec::new();
    compress(data, usize::from(data.first().copied().unwrap_or(6) % 10) as u32, &mut packed);
    assert_eq!(decompress(&packed, data.len()).as_deref(), Ok(data));
});
