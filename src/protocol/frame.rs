//! Length-prefixed frames: one packet each.
//!
//! ```text
//! frame = length:u32 BE | header (6 bytes, see `header`) | body
//!         length counts header + body, so it is always >= 6
//! ```
//!
//! [`FrameDecoder`] is incremental: bytes may arrive split at any point, including
//! inside the prefix and the header. It checks each announced length against the
//! limit as soon as the prefix is complete, before buffering any of the body, and it
//! never copies buffered bytes again per read: a frame of `n` bytes costs `O(n)`.

use bytes::{Buf, Bytes, BytesMut};

use super::error::FrameError;
use super::header::{Header, HEADER_LEN, LENGTH_PREFIX_LEN};

/// Smallest amount of free buffer space offered to each socket read.
const MIN_READ_CHUNK: usize = 64 * 1024;

/// Frames up to this long are copied out of the read buffer; longer ones share it
/// (they fill most of it anyway: a long frame's bytes are read into a buffer sized for
/// it).
const COPY_LIMIT: usize = 16 * 1024;

/// One received packet: its header and its (still encoded) body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The decoded header.
    pub header: Header,
    /// The body as it was on the wire (possibly compressed). Shares the receive buffer.
    pub body: Bytes,
}

/// Appends one frame (prefix, header, body) to `out`.
///
/// Fails only if header and body together do not fit the 32-bit length prefix.
pub fn encode_frame(header: Header, body: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = (HEADER_LEN + body.len()) as u64;
    let len32 = u32::try_from(len).map_err(|_| FrameError::TooLong { len, max: u32::MAX })?;
    out.reserve(LENGTH_PREFIX_LEN + len32 as usize);
    out.extend_from_slice(&len32.to_be_bytes());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(body);
    Ok(())
}

/// Incremental frame decoder for one connection.
///
/// Feed it with [`FrameDecoder::extend_from_slice`], or read straight into the buffer
/// returned by [`FrameDecoder::read_buffer`], then call [`FrameDecoder::decode`] until
/// it returns `Ok(None)` ("need more bytes"). After an error the stream cannot be
/// resynchronised and the decoder must be dropped together with its connection.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Bytes received but not yet returned as frames (after any consumed prefix).
    buf: BytesMut,
    /// Length announced by the prefix of the frame being received, once its 4 prefix
    /// bytes have been consumed; `None` while waiting for a prefix.
    announced: Option<usize>,
    /// Largest accepted length prefix.
    max_frame_len: u32,
}

impl FrameDecoder {
    /// A decoder that accepts frames whose prefix is at most `max_frame_len`.
    pub fn new(max_frame_len: u32) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            announced: None,
            max_frame_len,
        }
    }

    /// Changes the largest accepted length prefix, for frames whose prefix has not
    /// been read yet (a connection accepts only small frames until its handshake is
    /// done).
    pub fn set_max_frame_len(&mut self, max_frame_len: u32) {
        self.max_frame_len = max_frame_len;
    }

    /// The largest accepted length prefix now.
    pub fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// Bytes the receive buffer has allocated (what it costs in memory).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The bytes [`FrameDecoder::read_buffer`] will add to the buffer's capacity now,
    /// at most (0 if the free space suffices), to charge before growing. `BytesMut`
    /// grows in place (`realloc`: a large buffer is not copied) to what is asked or to
    /// twice its size, whichever is more. The bound is exact while the buffer holds a
    /// frame being received (only its 4-byte prefix was consumed in front of it); after
    /// small frames were consumed from it, `BytesMut` may also reclaim or double their
    /// space, a few read chunks more (the fuzz target `frame_decoder` checks both).
    pub fn growth_wanted(&self) -> usize {
        let want = self.reservation();
        let (len, capacity) = (self.buf.len(), self.buf.capacity());
        if capacity - len >= want {
            return 0;
        }
        // The consumed length prefix still occupies the allocation: a few bytes more.
        (len + want).max(2 * capacity + LENGTH_PREFIX_LEN) - capacity
    }

    /// Free space [`FrameDecoder::read_buffer`] reserves for the next read.
    fn reservation(&self) -> usize {
        match self.announced {
            Some(len) => len
                .saturating_sub(self.buf.len())
                .clamp(1, self.buf.len().max(MIN_READ_CHUNK)),
            None => MIN_READ_CHUNK,
        }
    }

    /// Appends received bytes.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The receive buffer, with free space reserved for the next read.
    ///
    /// While a frame's body is outstanding, the reservation grows with what has already
    /// arrived (at most doubling it), so a peer that announces a large frame and sends
    /// little makes us allocate little, and a large frame is still read in `O(n)`.
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        let want = self.reservation();
        self.buf.reserve(want);
        &mut self.buf
    }

    /// Number of received bytes not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
            + if self.announced.is_some() {
                LENGTH_PREFIX_LEN
            } else {
                0
            }
    }

    /// Frees the receive buffer if nothing is buffered: a connection that waits for
    /// its peer then holds no read buffer (the next [`FrameDecoder::read_buffer`]
    /// allocates one again).
    pub fn release_if_idle(&mut self) {
        if self.is_idle() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }

    /// Whether the decoder sits exactly between two frames (nothing partial buffered).
    pub fn is_idle(&self) -> bool {
        self.announced.is_none() && self.buf.is_empty()
    }

    /// Returns the next complete frame, `Ok(None)` if more bytes are needed, or an error
    /// if the stream violates the format or the limit.
    pub fn decode(&mut self) -> Result<Option<Frame>, FrameError> {
        let len = match self.announced {
            Some(len) => len,
            None => {
                if self.buf.len() < LENGTH_PREFIX_LEN {
                    return Ok(None);
                }
                let prefix = [self.buf[0], self.buf[1], self.buf[2], self.buf[3]];
                let len = u32::from_be_bytes(prefix);
                if (len as usize) < HEADER_LEN {
                    return Err(FrameError::TooShort { len });
                }
                if len > self.max_frame_len {
                    return Err(FrameError::TooLong {
                        len: u64::from(len),
                        max: self.max_frame_len,
                    });
                }
                self.buf.advance(LENGTH_PREFIX_LEN);
                self.announced = Some(len as usize);
                len as usize
            }
        };
        if self.buf.len() < len {
            return Ok(None);
        }
        self.announced = None;
        let frame = if len <= COPY_LIMIT {
            // A small frame gets its own copy: sharing the read buffer would keep the
            // whole buffer (64 KiB) alive for as long as the frame waits to be handled.
            let copy = Bytes::copy_from_slice(&self.buf[..len]);
            self.buf.advance(len);
            copy
        } else {
            self.buf.split_to(len).freeze()
        };
        let mut header_bytes = [0u8; HEADER_LEN];
        header_bytes.copy_from_slice(&frame[..HEADER_LEN]);
        Ok(Some(Frame {
            header: Header::decode(&header_bytes),
            body: frame.slice(HEADER_LEN..),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::header::Flags;

    fn frame_bytes(pid: u32, flags: u16, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(Header::new(pid, Flags::from_bits(flags)), body, &mut out).unwrap();
        out
    }

    fn drain(decoder: &mut FrameDecoder) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = decoder.decode().unwrap() {
            frames.push(frame);
        }
        frames
    }

    #[test]
    fn encodes_like_the_struct_formats() {
        // struct.pack("!I", 9) + struct.pack("!IH", 64, 0) + b"abc"
        assert_eq!(
            frame_bytes(64, 0, b"abc"),
            [0, 0, 0, 9, 0, 0, 0, 64, 0, 0, b'a', b'b', b'c']
        );
    }

    #[test]
    fn decodes_every_split_point_of_a_stream() {
        let bodies: Vec<Vec<u8>> = vec![
            vec![],
            b"x".to_vec(),
            b"hello".to_vec(),
            vec![7u8; 300],
            vec![],
            vec![0xc0],
        ];
        let mut stream = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            stream.extend(frame_bytes(64 + i as u32, (i % 2) as u16, body));
        }
        // Split the stream into two parts at every position, then into three parts at
        // every pair of positions: every prefix, header and body boundary is crossed.
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                let mut decoder = FrameDecoder::new(1 << 20);
                let mut frames = Vec::new();
                for part in [&stream[..a], &stream[a..b], &stream[b..]] {
                    decoder.extend_from_slice(part);
                    frames.extend(drain(&mut decoder));
                }
                assert!(decoder.is_idle(), "split at {a}/{b}");
                assert_eq!(frames.len(), bodies.len(), "split at {a}/{b}");
                for (i, frame) in frames.iter().enumerate() {
                    assert_eq!(frame.header.pid, 64 + i as u32);
                    assert_eq!(frame.header.flags.bits(), (i % 2) as u16);
                    assert_eq!(&frame.body[..], &bodies[i][..]);
                }
            }
        }
    }

    #[test]
    fn byte_by_byte_feeding() {
        let stream = [frame_bytes(70, 1, b"abc"), frame_bytes(71, 0, b"")].concat();
        let mut decoder = FrameDecoder::new(100);
        let mut frames = Vec::new();
        for byte in &stream {
            decoder.extend_from_slice(std::slice::from_ref(byte));
            frames.extend(drain(&mut decoder));
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(&frames[0].body[..], b"abc");
        assert!(frames[1].body.is_empty());
    }

    #[test]
    fn length_boundaries() {
        // 0..=5 are shorter than the header; 6 is an empty body.
        for len in 0u32..6 {
            let mut decoder = FrameDecoder::new(100);
            decoder.extend_from_slice(&len.to_be_bytes());
            assert_eq!(decoder.decode(), Err(FrameError::TooShort { len }));
        }
        let mut decoder = FrameDecoder::new(100);
        decoder.extend_from_slice(&frame_bytes(1, 0, b""));
        assert!(decoder.decode().unwrap().unwrap().body.is_empty());
    }

    #[test]
    fn limit_is_checked_on_the_prefix_before_the_body() {
        let max = 6 + 10;
        let mut decoder = FrameDecoder::new(max);
        decoder.extend_from_slice(&frame_bytes(64, 0, &[1u8; 10]));
        assert_eq!(decoder.decode().unwrap().unwrap().body.len(), 10);

        let mut decoder = FrameDecoder::new(max);
        // Only the prefix has arrived: the error must come now, not after the body.
        decoder.extend_from_slice(&(max + 1).to_be_bytes());
        assert_eq!(
            decoder.decode(),
            Err(FrameError::TooLong {
                len: u64::from(max + 1),
                max
            })
        );
        let mut decoder = FrameDecoder::new(u32::MAX);
        decoder.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            decoder.decode(),
            Ok(None),
            "the largest prefix is accepted if allowed"
        );
    }

    #[test]
    fn partial_prefix_waits() {
        // The reference spins forever on 1-3 leftover prefix bytes; we just wait.
        for n in 1..4 {
            let mut decoder = FrameDecoder::new(100);
            decoder.extend_from_slice(&frame_bytes(64, 0, b"ab")[..n]);
            assert_eq!(decoder.decode(), Ok(None));
            assert_eq!(decoder.buffered(), n);
        }
    }

    #[test]
    fn announced_size_does_not_allocate_up_front() {
        let mut decoder = FrameDecoder::new(u32::MAX);
        decoder.extend_from_slice(&(1u32 << 31).to_be_bytes());
        assert_eq!(decoder.decode(), Ok(None));
        let capacity = decoder.read_buffer().capacity();
        assert!(capacity <= 2 * MIN_READ_CHUNK, "reserved {capacity}");
    }

    #[test]
    fn large_frame_read_in_chunks_is_linear() {
        // Simulates socket reads into the reserved buffer; counts bytes copied by growth
        // indirectly through the number of reallocations (capacity changes).
        let body = vec![0x5a; 8 * 1024 * 1024];
        let stream = frame_bytes(64, 0, &body);
        let mut decoder = FrameDecoder::new(u32::MAX);
        let mut pos = 0;
        let mut reallocations = 0;
        let mut last_capacity = 0;
        let mut frames = Vec::new();
        while pos < stream.len() {
            let buf = decoder.read_buffer();
            if buf.capacity() != last_capacity {
                reallocations += 1;
                last_capacity = buf.capacity();
            }
            let n = (buf.capacity() - buf.len())
                .min(stream.len() - pos)
                .min(256 * 1024);
            buf.extend_from_slice(&stream[pos..pos + n]);
            pos += n;
            frames.extend(drain(&mut decoder));
        }
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].body.len(), body.len());
        assert!(reallocations < 20, "{reallocations} reallocations");
    }

    #[test]
    fn the_buffer_never_grows_by_more_than_announced() {
        let body = vec![0x33; 3 * 1024 * 1024];
        let stream = frame_bytes(64, 0, &body);
        let mut decoder = FrameDecoder::new(u32::MAX);
        let mut pos = 0;
        while pos < stream.len() {
            let wanted = decoder.growth_wanted();
            let before = decoder.capacity();
            let buf = decoder.read_buffer();
            assert!(
                buf.capacity() <= before + wanted,
                "grew by {} where {wanted} was announced",
                buf.capacity() - before
            );
            let n = (buf.capacity() - buf.len()).min(stream.len() - pos);
            buf.extend_from_slice(&stream[pos..pos + n]);
            pos += n;
            if let Some(frame) = decoder.decode().unwrap() {
                assert_eq!(frame.body.len(), body.len());
            }
        }
    }

    #[test]
    fn encode_rejects_bodies_beyond_the_prefix() {
        // Checked arithmetically only: allocating 4 GiB in a unit test is not useful.
        let len = (HEADER_LEN as u64) + u64::from(u32::MAX);
        assert!(u32::try_from(len).is_err());
    }

    #[test]
    fn small_frames_do_not_keep_the_read_buffer_alive() {
        let mut decoder = FrameDecoder::new(u32::MAX);
        let wire = frame_bytes(64, 0, b"small body");
        decoder.read_buffer().extend_from_slice(&wire);
        let frame = decoder.decode().unwrap().unwrap();
        assert!(decoder.is_idle());
        decoder.release_if_idle();
        assert_eq!(
            decoder.buf.capacity(),
            0,
            "the idle decoder still holds its buffer"
        );
        // The frame owns its bytes: nothing else is left holding the 64 KiB buffer.
        assert_eq!(&frame.body[..], b"small body");
        assert!(frame.body.len() < MIN_READ_CHUNK);

        // A long frame shares the buffer it was read into (no copy of its bytes).
        let body = vec![7u8; COPY_LIMIT + 1];
        let wire = frame_bytes(64, 0, &body);
        decoder.read_buffer().extend_from_slice(&wire);
        let start = decoder.buf.as_ptr() as usize;
        let frame = decoder.decode().unwrap().unwrap();
        assert_eq!(
            frame.body.as_ptr() as usize,
            start + HEADER_LEN + LENGTH_PREFIX_LEN
        );
        assert_eq!(&frame.body[..], &body[..]);
    }
}
