//! A packet as the sender builds it and the receiver opens it: the frame layout plus
//! the compression rule.
//!
//! Sending: [`begin_frame`] reserves the prefix and header at the end of an output
//! buffer, the caller appends the msgpack body in place, and [`finish_frame`]
//! compresses the body if it is longer than the threshold, then fills in the prefix
//! and header. The body is never copied on the uncompressed path.
//!
//! Receiving: [`open_body`] returns the msgpack bytes of a [`Frame`], inflating them
//! (within the limit) when the compressed flag is set, and refusing the AES flag.

use bytes::Bytes;

use super::compress;
use super::error::{FrameError, ProtocolError};
use super::frame::Frame;
use super::header::{Flags, Header, HEADER_LEN, LENGTH_PREFIX_LEN};
use super::limits::Limits;

/// Bytes reserved in front of each body for the prefix and header.
pub const FRAME_OVERHEAD: usize = LENGTH_PREFIX_LEN + HEADER_LEN;

/// The sender's compression settings (`net.compress.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// `net.compress.enabled`: whether outgoing bodies may be compressed at all.
    pub enabled: bool,
    /// `net.compress.threshold`: bodies strictly longer than this are compressed.
    pub threshold: usize,
    /// `net.compress.level`: zlib level 0-9.
    pub level: u32,
}

impl Default for Compression {
    /// The original library's defaults: enabled, 8 KiB threshold, level 6.
    fn default() -> Self {
        Compression {
            enabled: true,
            threshold: 8 * 1024,
            level: 6,
        }
    }
}

impl Compression {
    /// Whether a body of `len` bytes is sent compressed.
    pub fn applies_to(&self, len: usize) -> bool {
        self.enabled && len > self.threshold
    }
}

/// Reserves the prefix and header of a new frame at the end of `out` and returns the
/// frame's start offset, to be passed to [`finish_frame`] once the body is appended.
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_OVERHEAD]);
    start
}

/// Completes the frame started at `start`: compresses the body appended since
/// [`begin_frame`] if `compression` applies, then writes prefix and header. On error
/// (the frame would not fit the 32-bit prefix) `out` is truncated back to `start`.
pub fn finish_frame(
    out: &mut Vec<u8>,
    start: usize,
    pid: u32,
    compression: &Compression,
) -> Result<(), FrameError> {
    let body_start = start + FRAME_OVERHEAD;
    let compressible = compression.applies_to(out.len() - body_start)
        && compress::looks_compressible(&out[body_start..], compression.level);
    finish_judged_frame(out, start, pid, compression, compressible)
}

/// [`finish_frame`] once it is known whether the body is worth compressing.
fn finish_judged_frame(
    out: &mut Vec<u8>,
    start: usize,
    pid: u32,
    compression: &Compression,
    compressible: bool,
) -> Result<(), FrameError> {
    let body_start = start + FRAME_OVERHEAD;
    let body_len = out.len() - body_start;
    let mut flags = Flags::NONE;
    if compressible {
        let mut packed = Vec::new();
        compress::compress(&out[body_start..], compression.level, &mut packed);
        // A body that did not shrink goes as it is: the flag is per packet, and the
        // receiver saves inflating it.
        if packed.len() < body_len {
            out.truncate(body_start);
            out.extend_from_slice(&packed);
            flags = flags.with(Flags::COMPRESSED);
        }
    }
    let result = write_prefix_and_header(out, start, pid, flags, 0);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Writes the length prefix and header of the frame at `start` whose body is the rest
/// of `out` plus `elsewhere` bytes that are sent from another buffer.
fn write_prefix_and_header(
    out: &mut [u8],
    start: usize,
    pid: u32,
    flags: Flags,
    elsewhere: usize,
) -> Result<(), FrameError> {
    let body_start = start + FRAME_OVERHEAD;
    let len = (out.len() - start - LENGTH_PREFIX_LEN + elsewhere) as u64;
    let Ok(len32) = u32::try_from(len) else {
        return Err(FrameError::TooLong { len, max: u32::MAX });
    };
    out[start..start + LENGTH_PREFIX_LEN].copy_from_slice(&len32.to_be_bytes());
    out[start + LENGTH_PREFIX_LEN..body_start].copy_from_slice(&Header::new(pid, flags).encode());
    Ok(())
}

/// Completes the frame started at `start` whose msgpack body is what was appended
/// since [`begin_frame`] with `external` inserted at body offset `at` (the data of a
/// large bin, which the caller can send from where it lies instead of copying it).
///
/// If the body is compressed, it must be one buffer: `external` is copied in, the
/// frame is whole in `out`, and `Ok(None)` is returned. Otherwise the frame is
/// `out[start..split]`, then `external`, then `out[split..]`, and `Ok(Some(split))` is
/// returned. On error (the frame would not fit the 32-bit prefix) `out` is truncated
/// back to `start`.
pub fn finish_frame_around(
    out: &mut Vec<u8>,
    start: usize,
    pid: u32,
    compression: &Compression,
    external: &[u8],
    at: usize,
) -> Result<Option<usize>, FrameError> {
    let body_start = start + FRAME_OVERHEAD;
    let split = body_start + at;
    let compressible = compression.applies_to(out.len() - body_start + external.len())
        && compress::looks_compressible_in(
            &[&out[body_start..split], external, &out[split..]],
            compression.level,
        );
    let result = if compressible {
        out.splice(split..split, external.iter().copied());
        finish_judged_frame(out, start, pid, compression, true).map(|()| None)
    } else {
        write_prefix_and_header(out, start, pid, Flags::NONE, external.len()).map(|()| Some(split))
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Appends a complete frame for packet `pid` whose msgpack body is `body`.
pub fn encode_packet(
    pid: u32,
    body: &[u8],
    compression: &Compression,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let start = begin_frame(out);
    out.extend_from_slice(body);
    finish_frame(out, start, pid, compression)
}

/// The msgpack bytes of a received frame: inflated if compressed (at most
/// `limits.max_inflated_len` bytes), refused if encrypted.
pub fn open_body(frame: &Frame, limits: &Limits) -> Result<Bytes, ProtocolError> {
    open_body_within(frame, limits.max_inflated_len, &mut |_| true)
}

/// [`open_body`] with the inflated size capped at `max_inflated` bytes and every
/// growth of the inflated body asked of `may_grow` first (see
/// [`compress::decompress_within`]).
pub fn open_body_within(
    frame: &Frame,
    max_inflated: usize,
    may_grow: &mut dyn FnMut(usize) -> bool,
) -> Result<Bytes, ProtocolError> {
    let flags = frame.header.flags;
    if flags.contains(Flags::ENCRYPTED_AES) {
        return Err(ProtocolError::Encrypted);
    }
    if flags.contains(Flags::COMPRESSED) {
        let inflated = compress::decompress_within(&frame.body, max_inflated, may_grow)?;
        return Ok(Bytes::from(inflated));
    }
    Ok(frame.body.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::error::InflateError;
    use crate::protocol::frame::FrameDecoder;

    fn round_trip(pid: u32, body: &[u8], compression: &Compression) -> (Frame, Bytes) {
        let mut out = Vec::new();
        encode_packet(pid, body, compression, &mut out).unwrap();
        let mut decoder = FrameDecoder::new(u32::MAX);
        decoder.extend_from_slice(&out);
        let frame = decoder.decode().unwrap().unwrap();
        assert!(decoder.is_idle());
        let opened = open_body(&frame, &Limits::default()).unwrap();
        (frame, opened)
    }

    #[test]
    fn threshold_is_strictly_greater_than() {
        let compression = Compression::default();
        for (len, compressed) in [(0, false), (8191, false), (8192, false), (8193, true)] {
            let body = vec![b'a'; len];
            let (frame, opened) = round_trip(70, &body, &compression);
            assert_eq!(
                frame.header.flags.contains(Flags::COMPRESSED),
                compressed,
                "len {len}"
            );
            assert_eq!(&opened[..], &body[..]);
        }
    }

    #[test]
    fn bodies_that_do_not_shrink_are_sent_plain() {
        let compression = Compression::default();
        // Random bytes: skipped after sampling (large) or after trying (small).
        let mut state = 7u32;
        for len in [9_000, 1 << 20] {
            let body: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (state >> 24) as u8
                })
                .collect();
            let (frame, opened) = round_trip(64, &body, &compression);
            assert_eq!(frame.header.flags, Flags::NONE, "len {len}");
            assert_eq!(&opened[..], &body[..]);
        }
    }

    #[test]
    fn a_frame_around_an_external_piece_is_the_frame_of_the_whole_body() {
        let compression = Compression::default();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..600_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let text = b"compressible text ".repeat(40_000);
        for (external, at) in [(&noise[..], 3), (&text[..], 3), (&noise[..100_000], 0)] {
            let (before, after) = (vec![0x82, 0xa1, b'a', 0xc6], vec![0xa1, b'b', 0x01]);
            let mut out = vec![9u8; 5]; // a frame need not start at 0
            let start = begin_frame(&mut out);
            out.extend_from_slice(&before[..at.min(before.len())]);
            out.extend_from_slice(&after);
            let mut body = before[..at.min(before.len())].to_vec();
            body.extend_from_slice(external);
            body.extend_from_slice(&after);
            let mut expected = Vec::new();
            encode_packet(77, &body, &compression, &mut expected).unwrap();

            let split =
                finish_frame_around(&mut out, start, 77, &compression, external, at).unwrap();
            let frame = match split {
                None => out[start..].to_vec(),
                Some(split) => [&out[start..split], external, &out[split..]].concat(),
            };
            // (A compressed frame is compared by what it inflates to.)
            let decode = |bytes: &[u8]| {
                let mut decoder = FrameDecoder::new(u32::MAX);
                decoder.extend_from_slice(bytes);
                let frame = decoder.decode().unwrap().unwrap();
                (frame.header, open_body(&frame, &Limits::default()).unwrap())
            };
            assert_eq!(decode(&frame), decode(&expected));
            // Bodies up to 256 KiB are always tried (see `looks_compressible`).
            let tried = std::ptr::eq(external, &text[..]) || body.len() <= 256 * 1024;
            assert_eq!(split.is_none(), tried);
        }
    }

    #[test]
    fn disabled_compression_sends_plain() {
        let compression = Compression {
            enabled: false,
            ..Compression::default()
        };
        let body = vec![b'z'; 100_000];
        let (frame, opened) = round_trip(64, &body, &compression);
        assert_eq!(frame.header.flags, Flags::NONE);
        assert_eq!(frame.body.len(), body.len());
        assert_eq!(&opened[..], &body[..]);
    }

    #[test]
    fn several_frames_in_one_buffer() {
        let compression = Compression {
            threshold: 4,
            ..Compression::default()
        };
        let mut out = Vec::new();
        for (pid, body) in [(1u32, &b"ab"[..]), (2, b"abcdefgh"), (3, b"")] {
            let start = begin_frame(&mut out);
            out.extend_from_slice(body);
            finish_frame(&mut out, start, pid, &compression).unwrap();
        }
        let mut decoder = FrameDecoder::new(1000);
        decoder.extend_from_slice(&out);
        let limits = Limits::default();
        let mut seen = Vec::new();
        while let Some(frame) = decoder.decode().unwrap() {
            seen.push((frame.header.pid, open_body(&frame, &limits).unwrap()));
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(&seen[1].1[..], b"abcdefgh");
    }

    #[test]
    fn aes_flag_and_bad_bodies_are_refused() {
        let limits = Limits {
            max_inflated_len: 10,
            ..Limits::default()
        };
        let encrypted = Frame {
            header: Header::new(64, Flags::ENCRYPTED_AES),
            body: Bytes::from_static(b"\xc0"),
        };
        assert_eq!(
            open_body(&encrypted, &limits),
            Err(ProtocolError::Encrypted)
        );
        let garbage = Frame {
            header: Header::new(64, Flags::COMPRESSED),
            body: Bytes::from_static(b"garbage"),
        };
        assert!(matches!(
            open_body(&garbage, &limits),
            Err(ProtocolError::Inflate(InflateError::Corrupt(_)))
        ));
        let mut big = Vec::new();
        compress::compress(&[0u8; 11], 6, &mut big);
        let bomb = Frame {
            header: Header::new(64, Flags::COMPRESSED),
            body: Bytes::from(big),
        };
        assert_eq!(
            open_body(&bomb, &limits),
            Err(ProtocolError::Inflate(InflateError::TooLarge { max: 10 }))
        );
    }
}
