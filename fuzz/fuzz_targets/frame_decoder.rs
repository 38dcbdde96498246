//! The frame decoder and body opening, fed arbitrary bytes in arbitrary pieces.
//!
//! The first byte chooses the piece sizes, and whether pieces are appended or read
//! into the decoder's own buffer (as a socket read does). Invariants: no panic; every
//! frame returned has a header and a body of the announced size; nothing is buffered
//! beyond what was fed; the read buffer grows by no more than `growth_wanted` said
//! (what the memory budget was charged) plus a few read chunks; once an error is
//! returned the input is rejected for good.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peng3dnet_core::protocol::packet::open_body;
use peng3dnet_core::protocol::{FrameDecoder, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_frame_len: 1 << 16,
        max_inflated_len: 1 << 16,
        ..Limits::default()
    };
    let mut decoder = FrameDecoder::new(limits.max_frame_len);
    let piece = usize::from(seed % 17) + 1;
    let mut fed = 0usize;
    let mut taken = 0usize;
    let read_into_buffer = seed >= 128;
    for chunk in stream.chunks(piece) {
        if read_into_buffer {
            let mut left = chunk;
            while !left.is_empty() {
                let (wanted, before) = (decoder.growth_wanted(), decoder.capacity());
                let buf = decoder.read_buffer();
                // Within a few read chunks of the bound: BytesMut keeps the bytes of
                // consumed small frames in front of the buffer and may reclaim or
                // double them too (see `FrameDecoder::growth_wanted`).
                let slack = 4 * 64 * 1024;
                assert!(
                    buf.capacity() <= before + wanted + slack,
                    "grew beyond the bound"
                );
                if before > 4 * slack {
                    assert!(
                        buf.capacity() <= before + wanted,
                        "a large buffer grew beyond the bound"
                    );
                }
                let n = (buf.capacity() - buf.len()).min(left.len());
                assert!(n > 0, "no room to read into");
                buf.extend_from_slice(&left[..n]);
                left = &left[n..];
            }
        } else {
            decoder.extend_from_slice(chunk);
        }
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
