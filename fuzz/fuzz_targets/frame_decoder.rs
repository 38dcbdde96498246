//! The frame decoder and body opening, fed arbitrary bytes in arbitrary pieces.
//!
//! The first byte chooses the piece sizes. Invariants: no panic; every frame returned
//! has a header and a body of the announced size; nothing is buffered beyond what was
//! fed; once an error is returned the input is rejected for good.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peng3dnet_core::protocol::packet::open_body;
use peng3dnet_core::protocol::{FrameDecoder, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else { return };
    let limits = Limits {
        max_frame_len: 1 << 16,
        max_inflated_len: 1 << 16,
        ..Limits::default()
    };
    let mut decoder = FrameDecoder::new(limits.max_frame_len);
    let piece = usize::from(seed % 17) + 1;
    let mut fed = 0usize;
    let mut taken = 0usize;
    for chunk in stream.chunks(piece) {
        decoder.extend_from_slice(chunk);
        fed += chunk.len();
        loop {
            match decoder.decode() {
                Ok(Some(frame)) => {
                    taken += 4 + 6 + frame.body.len();
                    assert!(frame.body.len() + 6 <= limits.max_frame_len as usize);
                    if let Ok(body) = open_body(&frame, &limits) {
                        assert!(body.len() <= limits.max_inflated_len.max(frame.body.len()));
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert_eq!(taken + decoder.buffered(), fed);
    }
});
