//! A bounds-checked msgpack reader.
//!
//! [`decode`] walks one complete value and hands every item to a [`Builder`], which
//! decides what to make of it (Python objects, a [`super::Value`], ...). The reader
//! owns the safety rules, so every builder gets them:
//!
//! * every read is checked against the remaining input ([`DecodeError::Truncated`]);
//! * a container announcing more elements than the whole input could hold is refused
//!   at its header, as msgpack-python does (its `max_array_len`/`max_map_len` default
//!   to the input size); shorter announcements are read element by element;
//! * nesting is limited ([`DecodeError::DepthExceeded`]); the reader keeps its own
//!   stack of open containers instead of recursing, so no input can exhaust the thread
//!   stack whatever the limit;
//! * preallocation from announced lengths is capped by a budget equal to the input
//!   size, so the memory used is proportional to the bytes actually received;
//! * the whole input must be one value ([`DecodeError::TrailingData`]).

use thiserror::Error;

use super::marker::*;
use crate::protocol::Limits;

/// Why msgpack input was refused. `offset` is the byte position of the problem.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ends inside a value (msgpack-python: "Unpack failed: incomplete input").
    #[error("incomplete msgpack input (needed more bytes at offset {offset})")]
    Truncated {
        /// Where more bytes were needed.
        offset: usize,
    },
    /// Bytes remain after the first complete value (msgpack-python: `ExtraData`).
    #[error("unexpected data after the msgpack value at offset {offset}")]
    TrailingData {
        /// Where the extra bytes start.
        offset: usize,
    },
    /// The marker 0xc1, which the format never uses (msgpack-python: `FormatError`).
    #[error("invalid msgpack marker 0xc1 at offset {offset}")]
    ReservedMarker {
        /// Where the marker is.
        offset: usize,
    },
    /// Containers nest deeper than allowed (msgpack-python: `StackError`).
    #[error("msgpack nesting deeper than {max} levels at offset {offset}")]
    DepthExceeded {
        /// Where the container that is one level too deep starts.
        offset: usize,
        /// The configured limit.
        max: usize,
    },
    /// A container announces more elements than the whole input could hold
    /// (msgpack-python: "N exceeds max_array_len(M)").
    #[error("{len} exceeds max_{kind}_len({max})")]
    LengthExceedsInput {
        /// Where the container starts.
        offset: usize,
        /// "array" or "map".
        kind: &'static str,
        /// The announced element count.
        len: usize,
        /// The most elements the input could hold.
        max: usize,
    },
    /// A container announces more elements than the configured limit.
    #[error("msgpack container of {len} elements exceeds the limit of {max} at offset {offset}")]
    ContainerTooLong {
        /// Where the container starts.
        offset: usize,
        /// The announced element count.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A string is not valid UTF-8.
    #[error("invalid UTF-8 in msgpack string at offset {offset}")]
    InvalidUtf8 {
        /// Where the string's bytes start.
        offset: usize,
    },
    /// A map key is neither a string nor bytes (msgpack-python's `strict_map_key`).
    #[error("{kind} is not allowed as a msgpack map key (offset {offset})")]
    InvalidMapKey {
        /// Where the key starts.
        offset: usize,
        /// Python type name of the key, as msgpack-python reports it.
        kind: &'static str,
    },
    /// An extension value that its type does not allow (a timestamp of the wrong length).
    #[error("invalid msgpack extension value at offset {offset}: {reason}")]
    InvalidExt {
        /// Where the extension value starts.
        offset: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// The limits the reader enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Deepest accepted container nesting.
    pub max_depth: usize,
    /// Largest accepted element count of one container.
    pub max_container_len: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits::from(&Limits::default())
    }
}

impl From<&Limits> for ReadLimits {
    fn from(limits: &Limits) -> Self {
        ReadLimits {
            max_depth: limits.max_depth,
            max_container_len: limits.max_container_len,
        }
    }
}

/// Receives the items of a value as the reader decodes them, innermost first.
///
/// Arrays arrive complete (their items collected in a `Vec`); maps are built
/// incrementally so that a builder can check each key as it arrives. `offset`
/// arguments are byte positions for error messages.
pub trait Builder {
    /// What a complete value becomes.
    type Value;
    /// A map under construction.
    type Map;
    /// The builder's error; reader errors convert into it.
    type Error: From<DecodeError>;

    /// nil.
    fn nil(&mut self) -> Result<Self::Value, Self::Error>;
    /// true / false.
    fn boolean(&mut self, value: bool) -> Result<Self::Value, Self::Error>;
    /// An integer from a signed encoding (negative fixint, int8-int64).
    fn int(&mut self, value: i64) -> Result<Self::Value, Self::Error>;
    /// An integer from an unsigned encoding (positive fixint, uint8-uint64).
    fn uint(&mut self, value: u64) -> Result<Self::Value, Self::Error>;
    /// A float (float32 values arrive widened, as msgpack-python returns them).
    fn float(&mut self, value: f64) -> Result<Self::Value, Self::Error>;
    /// A string's raw bytes; the builder validates UTF-8.
    fn str(&mut self, bytes: &[u8], offset: usize) -> Result<Self::Value, Self::Error>;
    /// A binary blob.
    fn bin(&mut self, bytes: &[u8]) -> Result<Self::Value, Self::Error>;
    /// An extension value of type `code`.
    fn ext(&mut self, code: i8, data: &[u8], offset: usize) -> Result<Self::Value, Self::Error>;
    /// An array with all its items.
    fn array(&mut self, items: Vec<Self::Value>) -> Result<Self::Value, Self::Error>;
    /// Starts a map; `capacity_hint` is the announced pair count, already capped.
    fn map_start(&mut self, capacity_hint: usize) -> Result<Self::Map, Self::Error>;
    /// Adds one pair; a later duplicate key replaces an earlier one, as in a dict.
    fn map_insert(
        &mut self,
        map: &mut Self::Map,
        key: Self::Value,
        value: Self::Value,
        key_offset: usize,
    ) -> Result<(), Self::Error>;
    /// Completes a map.
    fn map_finish(&mut self, map: Self::Map) -> Result<Self::Value, Self::Error>;
}

/// Decodes `input`, which must hold exactly one msgpack value.
pub fn decode<B: Builder>(
    input: &[u8],
    limits: ReadLimits,
    builder: &mut B,
) -> Result<B::Value, B::Error> {
    let (value, end) = decode_prefix(input, limits, builder)?;
    if end != input.len() {
        return Err(DecodeError::TrailingData { offset: end }.into());
    }
    Ok(value)
}

/// Decodes the first msgpack value of `input` and returns it with the offset where it
/// ends (for callers that report trailing bytes themselves).
pub fn decode_prefix<B: Builder>(
    input: &[u8],
    limits: ReadLimits,
    builder: &mut B,
) -> Result<(B::Value, usize), B::Error> {
    let mut reader = Reader {
        input,
        pos: 0,
        limits,
        prealloc_budget: input.len(),
    };
    let value = reader.run(builder)?;
    Ok((value, reader.pos))
}

/// What one marker starts: a complete value, or a container whose elements follow.
enum Item<V> {
    Value(V),
    Array(usize),
    Map(usize),
}

/// A container whose elements are still being read.
enum Open<B: Builder> {
    Array {
        items: Vec<B::Value>,
        remaining: usize,
    },
    Map {
        map: B::Map,
        remaining: usize,
        /// The key read last, waiting for its value, with its offset.
        key: Option<(B::Value, usize)>,
    },
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    limits: ReadLimits,
    /// How many more elements may be preallocated from announced lengths. Starts at
    /// the input length, which bounds the number of elements any input can hold.
    prealloc_budget: usize,
}

impl<'a> Reader<'a> {
    /// Reads items until the outermost value is complete.
    fn run<B: Builder>(&mut self, b: &mut B) -> Result<B::Value, B::Error> {
        let mut open: Vec<Open<B>> = Vec::new();
        loop {
            let item_start = self.pos;
            let mut value = match self.item(b)? {
                Item::Value(value) => value,
                Item::Array(len) => {
                    self.check_container(len, "array", open.len(), item_start)?;
                    if len == 0 {
                        b.array(Vec::new())?
                    } else {
                        let items = Vec::with_capacity(self.reserve(len));
                        open.push(Open::Array {
                            items,
                            remaining: len,
                        });
                        continue;
                    }
                }
                Item::Map(len) => {
                    self.check_container(len, "map", open.len(), item_start)?;
                    let map = b.map_start(self.reserve(len))?;
                    if len == 0 {
                        b.map_finish(map)?
                    } else {
                        open.push(Open::Map {
                            map,
                            remaining: len,
                            key: None,
                        });
                        continue;
                    }
                }
            };
            // Hand the finished value to its container; every container it completes
            // becomes a finished value for the next one out.
            loop {
                match open.last_mut() {
                    None => return Ok(value),
                    Some(Open::Array { items, remaining }) => {
                        items.push(value);
                        *remaining -= 1;
                        if *remaining > 0 {
                            break;
                        }
                        let Some(Open::Array { items, .. }) = open.pop() else {
                            unreachable!("the last open container is this array")
                        };
                        value = b.array(items)?;
                    }
                    Some(Open::Map {
                        map,
                        remaining,
                        key,
                    }) => {
                        let Some((pending_key, key_offset)) = key.take() else {
                            *key = Some((value, item_start));
                            break;
                        };
                        b.map_insert(map, pending_key, value, key_offset)?;
                        *remaining -= 1;
                        if *remaining > 0 {
                            break;
                        }
                        let Some(Open::Map { map, .. }) = open.pop() else {
                            unreachable!("the last open container is this map")
                        };
                        value = b.map_finish(map)?;
                    }
                }
            }
        }
    }

    /// Takes up to `len` elements of preallocation from the budget.
    fn reserve(&mut self, len: usize) -> usize {
        let granted = len.min(self.prealloc_budget);
        self.prealloc_budget -= granted;
        granted
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.input.len())
            .ok_or(DecodeError::Truncated {
                offset: self.input.len(),
            })?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    #[inline]
    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    #[inline]
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take_array::<1>()?[0])
    }

    #[inline]
    fn u16(&mut self) -> Result<usize, DecodeError> {
        Ok(u16::from_be_bytes(self.take_array()?) as usize)
    }

    #[inline]
    fn u32(&mut self) -> Result<usize, DecodeError> {
        Ok(u32::from_be_bytes(self.take_array()?) as usize)
    }

    /// Checks a container header before anything is allocated for it: `depth` is the
    /// number of enclosing containers.
    fn check_container(
        &self,
        len: usize,
        kind: &'static str,
        depth: usize,
        start: usize,
    ) -> Result<(), DecodeError> {
        if depth >= self.limits.max_depth {
            return Err(DecodeError::DepthExceeded {
                offset: start,
                max: self.limits.max_depth,
            });
        }
        if len > self.limits.max_container_len {
            return Err(DecodeError::ContainerTooLong {
                offset: start,
                len,
                max: self.limits.max_container_len,
            });
        }
        // Each array item takes at least one byte and each map pair two, but like
        // msgpack-python we compare with the whole input, not what remains: a shorter
        // announcement is read item by item (an error inside wins over truncation).
        let max = if kind == "map" {
            self.input.len() / 2
        } else {
            self.input.len()
        };
        if len > max {
            return Err(DecodeError::LengthExceedsInput {
                offset: start,
                kind,
                len,
                max,
            });
        }
        Ok(())
    }

    /// Reads one marker and, for scalars, the value it introduces.
    fn item<B: Builder>(&mut self, b: &mut B) -> Result<Item<B::Value>, B::Error> {
        let start = self.pos;
        let marker = self.u8()?;
        let value = match marker {
            0x00..=0x7f => b.uint(u64::from(marker))?,
            0xe0..=0xff => b.int(i64::from(marker as i8))?,
            0x80..=0x8f => return Ok(Item::Map(usize::from(marker & 0x0f))),
            0x90..=0x9f => return Ok(Item::Array(usize::from(marker & 0x0f))),
            0xa0..=0xbf => self.str(b, usize::from(marker & 0x1f))?,
            NIL => b.nil()?,
            RESERVED => return Err(DecodeError::ReservedMarker { offset: start }.into()),
            FALSE => b.boolean(false)?,
            TRUE => b.boolean(true)?,
            BIN8 | BIN16 | BIN32 => {
                let len = match marker {
                    BIN8 => usize::from(self.u8()?),
                    BIN16 => self.u16()?,
                    _ => self.u32()?,
                };
                let bytes = self.take(len)?;
                b.bin(bytes)?
            }
            EXT8 | EXT16 | EXT32 => {
                let len = match marker {
                    EXT8 => usize::from(self.u8()?),
                    EXT16 => self.u16()?,
                    _ => self.u32()?,
                };
                self.ext(b, len, start)?
            }
            FIXEXT1 => self.ext(b, 1, start)?,
            FIXEXT2 => self.ext(b, 2, start)?,
            FIXEXT4 => self.ext(b, 4, start)?,
            FIXEXT8 => self.ext(b, 8, start)?,
            FIXEXT16 => self.ext(b, 16, start)?,
            FLOAT32 => b.float(f64::from(f32::from_be_bytes(self.take_array()?)))?,
            FLOAT64 => b.float(f64::from_be_bytes(self.take_array()?))?,
            UINT8 => b.uint(u64::from(self.u8()?))?,
            UINT16 => b.uint(u64::from(u16::from_be_bytes(self.take_array()?)))?,
            UINT32 => b.uint(u64::from(u32::from_be_bytes(self.take_array()?)))?,
            UINT64 => b.uint(u64::from_be_bytes(self.take_array()?))?,
            INT8 => b.int(i64::from(i8::from_be_bytes(self.take_array()?)))?,
            INT16 => b.int(i64::from(i16::from_be_bytes(self.take_array()?)))?,
            INT32 => b.int(i64::from(i32::from_be_bytes(self.take_array()?)))?,
            INT64 => b.int(i64::from_be_bytes(self.take_array()?))?,
            STR8 => {
                let len = usize::from(self.u8()?);
                self.str(b, len)?
            }
            STR16 => {
                let len = self.u16()?;
                self.str(b, len)?
            }
            STR32 => {
                let len = self.u32()?;
                self.str(b, len)?
            }
            ARRAY16 => return Ok(Item::Array(self.u16()?)),
            ARRAY32 => return Ok(Item::Array(self.u32()?)),
            MAP16 => return Ok(Item::Map(self.u16()?)),
            MAP32 => return Ok(Item::Map(self.u32()?)),
        };
        Ok(Item::Value(value))
    }

    fn str<B: Builder>(&mut self, b: &mut B, len: usize) -> Result<B::Value, B::Error> {
        let offset = self.pos;
        let bytes = self.take(len)?;
        b.str(bytes, offset)
    }

    fn ext<B: Builder>(
        &mut self,
        b: &mut B,
        len: usize,
        start: usize,
    ) -> Result<B::Value, B::Error> {
        let code = self.u8()? as i8;
        let data = self.take(len)?;
        b.ext(code, data, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::msgpack::Value;

    #[test]
    fn deep_nesting_uses_no_thread_stack() {
        // A million nested arrays: refused by the depth limit, or decoded when the limit
        // allows it, either way without recursion.
        let input = [vec![0x91u8; 1_000_000], vec![0xc0]].concat();
        assert!(matches!(
            Value::decode(&input, ReadLimits::default()),
            Err(DecodeError::DepthExceeded { .. })
        ));
        let unlimited = ReadLimits {
            max_depth: usize::MAX,
            ..ReadLimits::default()
        };
        let value = Value::decode(&input, unlimited).unwrap();
        // Dropping a million-level Value recurses; unwrap it level by level instead.
        let mut level = value;
        let mut depth = 0;
        while let Value::Array(mut items) = level {
            level = items.pop().unwrap();
            depth += 1;
        }
        assert_eq!(depth, 1_000_000);
    }

    #[test]
    fn preallocation_is_bounded_by_the_input() {
        // 512 nested arrays each announcing 2^32-1 elements: without the budget each
        // level could reserve gigabytes; with it, the total is bounded by the input size.
        let mut input = Vec::new();
        for _ in 0..512 {
            input.extend_from_slice(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
        }
        assert!(matches!(
            Value::decode(&input, ReadLimits::default()),
            Err(DecodeError::LengthExceedsInput { kind: "array", .. })
        ));
        let mut reader = Reader {
            input: &input,
            pos: 0,
            limits: ReadLimits::default(),
            prealloc_budget: input.len(),
        };
        let granted: usize = (0..512).map(|_| reader.reserve(u32::MAX as usize)).sum();
        assert_eq!(granted, input.len());
    }
}
