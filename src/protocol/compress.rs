//! zlib bodies (`FLAG_COMPRESSED`).
//!
//! The sender compresses a body when it is longer than `net.compress.threshold` bytes,
//! at `net.compress.level`, as a complete zlib stream (what Python's `zlib.compress`
//! produces). The receiver inflates with a hard cap on the output, so a small "zlib
//! bomb" cannot make it allocate gigabytes.
//!
//! The zlib-rs backend compresses faster than CPython's zlib and its compressed bytes
//! differ from CPython's; both sides accept each other's streams. Tests therefore
//! compare inflated bodies, never compressed bytes.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::error::InflateError;

/// Appends the zlib stream of `data`, compressed at `level` (0-9, clamped), to `out`.
///
/// Level 1 runs as level 2: zlib-rs's level 1 is a "quick" strategy with static Huffman
/// codes only, which leaves data such as msgpack floats no smaller at all, where
/// CPython's level 1 (and zlib-rs's level 2) saves a third. Users of level 1 ask for
/// fast compression, not for none.
pub fn compress(data: &[u8], level: u32, out: &mut Vec<u8>) {
    with_encoder(level, |encoder| compress_with(encoder, data, out));
}

fn compress_with(encoder: &mut Compress, data: &[u8], out: &mut Vec<u8>) {
    // zlib's worst case for incompressible input is a few bytes per 16 KiB block.
    out.reserve(data.len() / 2 + 64);
    loop {
        let consumed = encoder.total_in() as usize;
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(64));
        }
        let status = encoder
            .compress_vec(&data[consumed..], out, FlushCompress::Finish)
            .expect("zlib compression of an in-memory buffer cannot fail");
        if status == Status::StreamEnd {
            return;
        }
    }
}

thread_local! {
    /// The encoder this thread used last, and its level: reset and used again.
    static ENCODER: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
}

/// Runs `compress` with a fresh zlib stream at `level`, on this thread's encoder.
///
/// An encoder holds about 300 KiB of tables, which zlib zeroes when it is made. Made
/// anew for each packet they came from freshly mapped pages as often as not (the
/// allocator gives large freed blocks back): a server sending 256 KiB blobs spent a
/// third of its CPU time in the kernel clearing those pages. So each thread that
/// compresses keeps its last encoder (memory that stays with the thread).
fn with_encoder<R>(level: u32, compress: impl FnOnce(&mut Compress) -> R) -> R {
    let level = match level {
        1 => 2,
        other => other.min(9),
    };
    ENCODER.with(|cell| {
        // A nested use (none today) would find the cell taken: it gets an encoder of
        // its own.
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return compress(&mut Compress::new(Compression::new(level), true));
        };
        match &mut *slot {
            Some((kept, encoder)) if *kept == level => encoder.reset(),
            _ => *slot = Some((level, Compress::new(Compression::new(level), true))),
        }
        let (_, encoder) = slot.as_mut().expect("set just above");
        compress(encoder)
    })
}

/// Bytes of each sample [`looks_compressible`] compresses.
const SAMPLE_LEN: usize = 8 * 1024;

/// Bodies up to this long are compressed without sampling first.
const SAMPLED_FROM: usize = 256 * 1024;

/// Whether `data` is worth compressing at `level`: bodies up to 256 KiB always are
/// (the caller still checks that they shrank); of larger ones, three samples of 8 KiB
/// (start, middle, end) are compressed and must shrink by at least 5%. Already-
/// compressed or random payloads (images, archives, encrypted blobs) are then sent as
/// they are instead of spending about as long in zlib as on the wire, on both sides.
/// (The samples use `level` itself: zlib-rs's level 1 is a much weaker strategy, which
/// would misjudge data that level 6 shrinks well. A random sample costs about 60 us at
/// level 6.)
pub fn looks_compressible(data: &[u8], level: u32) -> bool {
    looks_compressible_in(&[data], level)
}

/// [`looks_compressible`] for a body made of `pieces` that follow each other.
pub fn looks_compressible_in(pieces: &[&[u8]], level: u32) -> bool {
    let len: usize = pieces.iter().map(|piece| piece.len()).sum();
    if len <= SAMPLED_FROM {
        return true;
    }
    let middle = len / 2 - SAMPLE_LEN / 2;
    let mut sample = Vec::with_capacity(SAMPLE_LEN);
    let mut packed = Vec::with_capacity(SAMPLE_LEN + 64);
    let mut total = 0;
    with_encoder(level, |encoder| {
        for offset in [0, middle, len - SAMPLE_LEN] {
            sample.clear();
            copy_range(pieces, offset, SAMPLE_LEN, &mut sample);
            packed.clear();
            encoder.reset();
            compress_with(encoder, &sample, &mut packed);
            total += packed.len();
        }
    });
    total * 20 < 3 * SAMPLE_LEN * 19
}

/// Appends bytes `offset..offset + len` of the concatenation of `pieces` to `out`.
fn copy_range(pieces: &[&[u8]], mut offset: usize, mut len: usize, out: &mut Vec<u8>) {
    for piece in pieces {
        if len == 0 {
            return;
        }
        if offset >= piece.len() {
            offset -= piece.len();
            continue;
        }
        let end = piece.len().min(offset + len);
        out.extend_from_slice(&piece[offset..end]);
        len -= end - offset;
        offset = 0;
    }
}

/// Inflates the complete zlib stream `data`, failing if it is corrupt, truncated,
/// followed by extra bytes, or larger than `max_len` bytes once inflated.
pub fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>, InflateError> {
    decompress_within(data, max_len, &mut |_| true)
}

/// [`decompress`], asking `may_grow(n)` before the output buffer grows by `n` bytes:
/// the caller accounts for the memory (a budget shared by many connections) and may
/// refuse, which fails with [`InflateError::OverBudget`]. The output grows
/// geometrically from a few times the input, so memory follows what the stream
/// really inflates to, never what its sender claims.
pub fn decompress_within(
    data: &[u8],
    max_len: usize,
    may_grow: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<u8>, InflateError> {
    let mut decoder = Decompress::new(true);
    // Allow one byte beyond the limit so that "exactly at the limit" and "beyond it"
    // can be told apart without inflating any further.
    let hard_cap = max_len.saturating_add(1);
    let first = data.len().saturating_mul(4).max(64).min(hard_cap);
    if !may_grow(first) {
        return Err(InflateError::OverBudget { had: 0 });
    }
    let mut out = Vec::with_capacity(first);
    let mut granted = first;
    loop {
        let consumed = decoder.total_in() as usize;
        let produced_before = out.len();
        let status = decoder
            .decompress_vec(&data[consumed..], &mut out, FlushDecompress::None)
            .map_err(|e| InflateError::Corrupt(e.to_string()))?;
        if out.len() > max_len {
            return Err(InflateError::TooLarge { max: max_len });
        }
        if status == Status::StreamEnd {
            let trailing = data.len() - decoder.total_in() as usize;
            if trailing != 0 {
                return Err(InflateError::TrailingData(trailing));
            }
            return Ok(out);
        }
        if out.len() == out.capacity() {
            // Output space is the bottleneck: grow geometrically up to the cap.
            let grown = granted.saturating_mul(2).min(hard_cap);
            if !may_grow(grown - granted) {
                return Err(InflateError::OverBudget { had: out.len() });
            }
            granted = grown;
            out.reserve_exact(grown - out.len());
            continue;
        }
        let made_progress = decoder.total_in() as usize != consumed || out.len() != produced_before;
        if decoder.total_in() as usize == data.len() || !made_progress {
            return Err(InflateError::Truncated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: a repeating pattern with a counter.
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    fn zlib(data: &[u8], level: u32) -> Vec<u8> {
        let mut out = Vec::new();
        compress(data, level, &mut out);
        out
    }

    #[test]
    fn round_trips_at_every_level_and_size() {
        for level in 0..=9 {
            for len in [0, 1, 100, 8192, 8193, 70_000] {
                let data = sample(len);
                let packed = zlib(&data, level);
                assert_eq!(packed[0] & 0x0f, 8, "zlib header: deflate method");
                assert_eq!(
                    decompress(&packed, len).unwrap(),
                    data,
                    "level {level} len {len}"
                );
            }
        }
    }

    /// Bytes that do not compress (a xorshift stream).
    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn level_1_compresses_a_counting_sequence() {
        // msgpack of list(range(70000)): short repeats that the quick strategy with its
        // static Huffman codes cannot use; zlib-rs's own level 1 leaves it no smaller.
        use crate::protocol::msgpack::Value;
        let data = Value::Array((0..70_000u32).map(Value::from).collect()).to_bytes();
        let packed = zlib(&data, 1);
        assert!(
            packed.len() * 10 < data.len() * 9,
            "{} of {}",
            packed.len(),
            data.len()
        );
    }

    #[test]
    fn incompressible_bodies_are_recognised_by_samples() {
        assert!(looks_compressible(&sample(1 << 20), 6));
        assert!(!looks_compressible(&noise(1 << 20), 6));
        // Stored blocks (level 0) never shrink.
        assert!(!looks_compressible(&sample(1 << 20), 0));
        // Small bodies are not sampled: compressing them costs little anyway.
        assert!(looks_compressible(&noise(SAMPLED_FROM), 6));
        // Noise with a compressible middle is still worth compressing.
        let mut mixed = noise(1 << 20);
        let mid = mixed.len() / 2;
        mixed[mid - 300_000..mid + 300_000].fill(7);
        assert!(looks_compressible(&mixed, 6));
    }

    #[test]
    fn a_reused_encoder_makes_the_stream_a_fresh_one_makes() {
        for (i, level) in [6, 6, 9, 1, 2, 0, 6].into_iter().enumerate() {
            let data = sample(20_000 + i * 1000);
            // Sampling in between uses (and leaves) the same encoder.
            assert!(looks_compressible(&sample(300_000), level) || level == 0);
            let mut fresh = Vec::new();
            // (Level 1 runs as level 2, see `compress`.)
            let effective = if level == 1 { 2 } else { level };
            let mut encoder = Compress::new(Compression::new(effective), true);
            compress_with(&mut encoder, &data, &mut fresh);
            assert_eq!(zlib(&data, level), fresh, "level {level}");
            assert_eq!(decompress(&fresh, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn a_body_in_pieces_is_judged_as_the_whole() {
        let mut mixed = noise(1 << 20);
        let mid = mixed.len() / 2;
        mixed[mid - 300_000..mid + 300_000].fill(7);
        for data in [noise(1 << 20), sample(1 << 20), mixed, noise(300_000)] {
            let whole = looks_compressible(&data, 6);
            for cuts in [(0, 0), (10, 20), (4000, 700_000), (150_000, 150_001)] {
                let (a, b) = (cuts.0.min(data.len()), cuts.1.min(data.len()));
                let pieces = [&data[..a], &data[a..b], &data[b..]];
                assert_eq!(looks_compressible_in(&pieces, 6), whole, "cut at {cuts:?}");
            }
        }
        let mut out = Vec::new();
        copy_range(&[b"abc", b"", b"defg", b"h"], 2, 5, &mut out);
        assert_eq!(out, b"cdefg");
    }

    #[test]
    fn output_cap_is_exact() {
        let data = sample(10_000);
        let packed = zlib(&data, 6);
        assert_eq!(decompress(&packed, 10_000).unwrap().len(), 10_000);
        assert_eq!(
            decompress(&packed, 9_999),
            Err(InflateError::TooLarge { max: 9_999 })
        );
    }

    #[test]
    fn bomb_is_stopped_at_the_cap() {
        // 64 MiB of zeros compresses to about 64 KiB.
        let bomb = zlib(&vec![0u8; 64 << 20], 9);
        assert!(bomb.len() < 128 * 1024);
        assert_eq!(
            decompress(&bomb, 1 << 20),
            Err(InflateError::TooLarge { max: 1 << 20 })
        );
    }

    #[test]
    fn growth_is_asked_for_and_a_refusal_stops_inflating() {
        let bomb = zlib(&vec![0u8; 16 << 20], 9);
        let mut asked = Vec::new();
        let result = decompress_within(&bomb, 64 << 20, &mut |n| {
            asked.push(n);
            asked.iter().sum::<usize>() <= 4 << 20
        });
        assert!(
            matches!(result, Err(InflateError::OverBudget { had }) if had <= 4 << 20),
            "{result:?}"
        );
        // Every step at most doubles what was granted before it.
        let mut granted = 0;
        for step in asked {
            assert!(granted == 0 || step <= granted, "{step} after {granted}");
            granted += step;
        }
        // What was granted covers what was inflated.
        let data = sample(300_000);
        let mut granted = 0;
        let out = decompress_within(&zlib(&data, 6), 1 << 20, &mut |n| {
            granted += n;
            true
        })
        .unwrap();
        assert_eq!(out, data);
        assert!(out.capacity() <= granted, "{} > {granted}", out.capacity());
    }

    #[test]
    fn truncated_stream_is_refused_at_every_cut() {
        let packed = zlib(&sample(5_000), 6);
        for cut in 0..packed.len() {
            assert!(
                decompress(&packed[..cut], 1 << 20).is_err(),
                "a stream cut at {cut} of {} was accepted",
                packed.len()
            );
        }
    }

    #[test]
    fn corrupt_and_trailing_input() {
        assert!(matches!(
            decompress(b"not zlib at all", 100),
            Err(InflateError::Corrupt(_))
        ));
        let mut packed = zlib(b"abc", 6);
        packed.extend_from_slice(b"xyz");
        assert_eq!(decompress(&packed, 100), Err(InflateError::TrailingData(3)));
        let mut packed = zlib(&sample(1000), 6);
        let last = packed.len() - 1;
        packed[last] ^= 0xff; // breaks the Adler-32 checksum
        assert!(matches!(
            decompress(&packed, 10_000),
            Err(InflateError::Corrupt(_))
        ));
    }

    #[test]
    fn accepts_streams_made_by_c_zlib() {
        // zlib.compress(b"peng3dnet" * 3, 6) from CPython 3.11 (zlib 1.2.13).
        let cpython = [
            0x78, 0x9c, 0x2b, 0x48, 0xcd, 0x4b, 0x37, 0x4e, 0xc9, 0x4b, 0x2d, 0x29, 0xc0, 0x60,
            0x00, 0x00, 0x94, 0x44, 0x0a, 0x99,
        ];
        assert_eq!(decompress(&cpython, 100).unwrap(), b"peng3dnet".repeat(3));
    }
}
