//! msgpack writers that choose the same encoding as `msgpack.packb` (msgpack-python
//! 1.x, `use_bin_type=True`, `use_single_float=False`).
//!
//! Lengths are `u32` because that is the format's maximum; callers check larger
//! Python objects first and raise the same `ValueError` msgpack-python raises.

use super::marker::*;

/// `None`.
#[inline]
pub fn write_nil(out: &mut Vec<u8>) {
    out.push(NIL);
}

/// `True` / `False`.
#[inline]
pub fn write_bool(out: &mut Vec<u8>, value: bool) {
    out.push(if value { TRUE } else { FALSE });
}

/// A signed integer. Non-negative values use the unsigned encodings, as
/// msgpack-python does (`packb(200) == b"\xcc\xc8"`, not int16).
#[inline]
pub fn write_int(out: &mut Vec<u8>, value: i64) {
    if value >= 0 {
        write_uint(out, value as u64);
    } else if value >= -32 {
        out.push(value as i8 as u8); // negative fixint
    } else if value >= i64::from(i8::MIN) {
        out.extend_from_slice(&[INT8, value as i8 as u8]);
    } else if value >= i64::from(i16::MIN) {
        out.push(INT16);
        out.extend_from_slice(&(value as i16).to_be_bytes());
    } else if value >= i64::from(i32::MIN) {
        out.push(INT32);
        out.extend_from_slice(&(value as i32).to_be_bytes());
    } else {
        out.push(INT64);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// An unsigned integer, in the smallest encoding.
#[inline]
pub fn write_uint(out: &mut Vec<u8>, value: u64) {
    if value < 0x80 {
        out.push(value as u8); // positive fixint
    } else if value <= u64::from(u8::MAX) {
        out.extend_from_slice(&[UINT8, value as u8]);
    } else if value <= u64::from(u16::MAX) {
        out.push(UINT16);
        out.extend_from_slice(&(value as u16).to_be_bytes());
    } else if value <= u64::from(u32::MAX) {
        out.push(UINT32);
        out.extend_from_slice(&(value as u32).to_be_bytes());
    } else {
        out.push(UINT64);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// A float: always float64, as `packb` does by default.
#[inline]
pub fn write_f64(out: &mut Vec<u8>, value: f64) {
    out.push(FLOAT64);
    out.extend_from_slice(&value.to_bits().to_be_bytes());
}

/// Header of a UTF-8 string of `len` bytes.
#[inline]
pub fn write_str_header(out: &mut Vec<u8>, len: u32) {
    if len < 32 {
        out.push(FIXSTR | len as u8);
    } else if len <= u32::from(u8::MAX) {
        out.extend_from_slice(&[STR8, len as u8]);
    } else if len <= u32::from(u16::MAX) {
        out.push(STR16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(STR32);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// A complete string (header and bytes). `value` must fit in `u32` bytes.
#[inline]
pub fn write_str(out: &mut Vec<u8>, value: &str) {
    write_str_header(out, value.len() as u32);
    out.extend_from_slice(value.as_bytes());
}

/// Header of a binary blob of `len` bytes.
#[inline]
pub fn write_bin_header(out: &mut Vec<u8>, len: u32) {
    if len <= u32::from(u8::MAX) {
        out.extend_from_slice(&[BIN8, len as u8]);
    } else if len <= u32::from(u16::MAX) {
        out.push(BIN16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(BIN32);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Header of an array of `len` elements.
#[inline]
pub fn write_array_header(out: &mut Vec<u8>, len: u32) {
    if len < 16 {
        out.push(FIXARRAY | len as u8);
    } else if len <= u32::from(u16::MAX) {
        out.push(ARRAY16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(ARRAY32);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Header of a map of `len` key/value pairs.
#[inline]
pub fn write_map_header(out: &mut Vec<u8>, len: u32) {
    if len < 16 {
        out.push(FIXMAP | len as u8);
    } else if len <= u32::from(u16::MAX) {
        out.push(MAP16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(MAP32);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// An extension value: type `code` and its `data` (fixext forms for 1, 2, 4, 8, 16 bytes).
pub fn write_ext(out: &mut Vec<u8>, code: i8, data: &[u8]) {
    let len = data.len() as u32;
    match len {
        1 => out.push(FIXEXT1),
        2 => out.push(FIXEXT2),
        4 => out.push(FIXEXT4),
        8 => out.push(FIXEXT8),
        16 => out.push(FIXEXT16),
        _ if len <= u32::from(u8::MAX) => out.extend_from_slice(&[EXT8, len as u8]),
        _ if len <= u32::from(u16::MAX) => {
            out.push(EXT16);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(EXT32);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.push(code as u8);
    out.extend_from_slice(data);
}

/// A timestamp (ext type -1) in the smallest of its three forms, chosen like
/// `msgpack.Timestamp.to_bytes`: 32-bit seconds when there are no nanoseconds and the
/// seconds fit, 64-bit when the seconds fit 34 bits, else 96-bit.
pub fn write_timestamp(out: &mut Vec<u8>, seconds: i64, nanoseconds: u32) {
    if seconds >> 34 == 0 {
        let data64 = (u64::from(nanoseconds) << 34) | seconds as u64;
        if data64 & 0xffff_ffff_0000_0000 == 0 {
            write_ext(out, TIMESTAMP_EXT, &(data64 as u32).to_be_bytes());
        } else {
            write_ext(out, TIMESTAMP_EXT, &data64.to_be_bytes());
        }
    } else {
        let mut data = [0u8; 12];
        data[..4].copy_from_slice(&nanoseconds.to_be_bytes());
        data[4..].copy_from_slice(&seconds.to_be_bytes());
        write_ext(out, TIMESTAMP_EXT, &data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        write_int(&mut out, v);
        out
    }

    #[test]
    fn integer_size_classes_match_msgpack_python() {
        // Expected bytes from msgpack.packb(v) (msgpack 1.2.4).
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0xcc, 0x80]),
            (255, &[0xcc, 0xff]),
            (256, &[0xcd, 0x01, 0x00]),
            (65535, &[0xcd, 0xff, 0xff]),
            (65536, &[0xce, 0, 1, 0, 0]),
            (4_294_967_295, &[0xce, 0xff, 0xff, 0xff, 0xff]),
            (4_294_967_296, &[0xcf, 0, 0, 0, 1, 0, 0, 0, 0]),
            (-1, &[0xff]),
            (-32, &[0xe0]),
            (-33, &[0xd0, 0xdf]),
            (-128, &[0xd0, 0x80]),
            (-129, &[0xd1, 0xff, 0x7f]),
            (-32768, &[0xd1, 0x80, 0x00]),
            (-32769, &[0xd2, 0xff, 0xff, 0x7f, 0xff]),
            (-2_147_483_648, &[0xd2, 0x80, 0, 0, 0]),
            (
                -2_147_483_649,
                &[0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff],
            ),
            (i64::MIN, &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        ];
        for (value, expected) in cases {
            assert_eq!(&int(*value), expected, "packb({value})");
        }
        let mut out = Vec::new();
        write_uint(&mut out, u64::MAX);
        assert_eq!(out, [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn length_headers() {
        let mut out = Vec::new();
        write_str_header(&mut out, 31);
        write_str_header(&mut out, 32);
        write_bin_header(&mut out, 0);
        write_array_header(&mut out, 15);
        write_array_header(&mut out, 16);
        write_map_header(&mut out, 65536);
        assert_eq!(
            out,
            [0xbf, 0xd9, 32, 0xc4, 0, 0x9f, 0xdc, 0, 16, 0xdf, 0, 1, 0, 0]
        );
    }

    #[test]
    fn timestamps_match_msgpack_python() {
        // packb(Timestamp(1, 0)), packb(Timestamp(1, 5)), packb(Timestamp(2**34, 5))
        let mut out = Vec::new();
        write_timestamp(&mut out, 1, 0);
        assert_eq!(out, [0xd6, 0xff, 0, 0, 0, 1]);
        out.clear();
        write_timestamp(&mut out, 1, 5);
        assert_eq!(
            out,
            [0xd7, 0xff, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x01]
        );
        out.clear();
        write_timestamp(&mut out, 1 << 34, 5);
        assert_eq!(out, [0xc7, 0x0c, 0xff, 0, 0, 0, 5, 0, 0, 0, 4, 0, 0, 0, 0]);
    }
}
