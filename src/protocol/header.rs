//! The packet header: packet id and flag bits, `struct` format `"!IH"`.
//!
//! ```text
//! offset 0..4  pid    u32 big-endian: the packet type (registry id)
//! offset 4..6  flags  u16 big-endian: bit 0 = body is zlib-compressed,
//!                                     bit 1 = body is AES-encrypted (never implemented)
//! ```

/// Size of the header that follows the length prefix (`struct.calcsize("!IH")`).
pub const HEADER_LEN: usize = 6;

/// Size of the length prefix (`struct.calcsize("!I")`).
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Packet ids below this value are internal: they skip the connection type's
/// `receive`/`send` hooks, and the original library reserves them for its handshake.
pub const INTERNAL_ID_LIMIT: u32 = 64;

/// The flag bits of a header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(u16);

impl Flags {
    /// No flag set.
    pub const NONE: Flags = Flags(0);
    /// `FLAG_COMPRESSED`: the body is a zlib stream.
    pub const COMPRESSED: Flags = Flags(1 << 0);
    /// `FLAG_ENCRYPTED_AES`: documented by the original but never implemented; refused.
    pub const ENCRYPTED_AES: Flags = Flags(1 << 1);

    /// Flags from their raw wire value. Unknown bits are kept, so that a packet can be
    /// handed to application hooks exactly as received.
    pub const fn from_bits(bits: u16) -> Flags {
        Flags(bits)
    }

    /// The raw wire value.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with the bits of `other` added.
    #[must_use]
    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

/// A decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Packet id.
    pub pid: u32,
    /// Flag bits.
    pub flags: Flags,
}

impl Header {
    /// A header for packet `pid` with `flags`.
    pub const fn new(pid: u32, flags: Flags) -> Header {
        Header { pid, flags }
    }

    /// The 6 wire bytes of this header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&self.pid.to_be_bytes());
        out[4..].copy_from_slice(&self.flags.bits().to_be_bytes());
        out
    }

    /// Reads a header from its 6 wire bytes.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Header {
        let pid = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let flags = u16::from_be_bytes([bytes[4], bytes[5]]);
        Header::new(pid, Flags::from_bits(flags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_struct_format() {
        // struct.pack("!IH", 0x01020304, 0x0506)
        let h = Header::new(0x0102_0304, Flags::from_bits(0x0506));
        assert_eq!(h.encode(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(Header::decode(&h.encode()), h);
    }

    #[test]
    fn extreme_values_round_trip() {
        for (pid, flags) in [(0, 0), (u32::MAX, u16::MAX), (64, 1), (16, 3)] {
            let h = Header::new(pid, Flags::from_bits(flags));
            assert_eq!(Header::decode(&h.encode()), h);
        }
    }

    #[test]
    fn flag_bits() {
        let f = Flags::NONE.with(Flags::COMPRESSED);
        assert!(f.contains(Flags::COMPRESSED));
        assert!(!f.contains(Flags::ENCRYPTED_AES));
        assert_eq!(f.with(Flags::ENCRYPTED_AES).bits(), 3);
    }
}
