//! A small owned msgpack value, for the packets the core reads and writes itself
//! (hello, settype, handshake, accept, close) and for tests.
//!
//! Decoding applies msgpack-python's default rules: strings must be UTF-8 and map keys
//! must be strings or bytes (`strict_map_key=True`).

use super::read::{self, Builder, DecodeError, ReadLimits};
use super::write;

/// An owned msgpack value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// nil / `None`.
    Nil,
    /// true / false.
    Bool(bool),
    /// An integer read from a signed encoding, or a negative integer to write.
    Int(i64),
    /// An integer read from an unsigned encoding, or a non-negative integer to write.
    UInt(u64),
    /// A float (always written as float64).
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// A binary blob.
    Bin(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// A map, in wire order. Lookups treat a later duplicate key as replacing an
    /// earlier one, as a Python dict does.
    Map(Vec<(Value, Value)>),
    /// An extension value (type code, data); code -1 is a timestamp.
    Ext(i8, Vec<u8>),
}

impl Value {
    /// Decodes one value from `input` (which must hold exactly one).
    pub fn decode(input: &[u8], limits: ReadLimits) -> Result<Value, DecodeError> {
        read::decode(input, limits, &mut ValueBuilder)
    }

    /// Appends the msgpack encoding of this value to `out`, choosing the same
    /// encodings as msgpack-python.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Nil => write::write_nil(out),
            Value::Bool(v) => write::write_bool(out, *v),
            Value::Int(v) => write::write_int(out, *v),
            Value::UInt(v) => write::write_uint(out, *v),
            Value::Float(v) => write::write_f64(out, *v),
            Value::Str(v) => write::write_str(out, v),
            Value::Bin(v) => {
                write::write_bin_header(out, v.len() as u32);
                out.extend_from_slice(v);
            }
            Value::Array(items) => {
                write::write_array_header(out, items.len() as u32);
                for item in items {
                    item.encode(out);
                }
            }
            Value::Map(pairs) => {
                write::write_map_header(out, pairs.len() as u32);
                for (key, value) in pairs {
                    key.encode(out);
                    value.encode(out);
                }
            }
            Value::Ext(code, data) => write::write_ext(out, *code, data),
        }
    }

    /// The msgpack encoding of this value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// A map with string keys, in the given order.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::Str(k.into()), v))
                .collect(),
        )
    }

    /// The value stored under the string key `key`, if this is a map that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .rev()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one that fits `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            Value::UInt(v) => i64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// Python truthiness of the value this decodes to.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(v) => *v,
            Value::Int(v) => *v != 0,
            Value::UInt(v) => *v != 0,
            Value::Float(v) => *v != 0.0,
            Value::Str(v) => !v.is_empty(),
            Value::Bin(v) => !v.is_empty(),
            Value::Array(v) => !v.is_empty(),
            Value::Map(v) => !v.is_empty(),
            Value::Ext(..) => true,
        }
    }

    /// The Python type name of the value this decodes to (for error messages).
    pub fn python_type_name(&self) -> &'static str {
        match self {
            Value::Nil => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bin(_) => "bytes",
            Value::Array(_) => "list",
            Value::Map(_) => "dict",
            Value::Ext(-1, _) => "Timestamp",
            Value::Ext(..) => "ExtType",
        }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        if v >= 0 {
            Value::UInt(v as u64)
        } else {
            Value::Int(v)
        }
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::UInt(u64::from(v))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Nil, Into::into)
    }
}

struct ValueBuilder;

impl Builder for ValueBuilder {
    type Value = Value;
    type Map = Vec<(Value, Value)>;
    type Error = DecodeError;

    fn nil(&mut self) -> Result<Value, DecodeError> {
        Ok(Value::Nil)
    }
    fn boolean(&mut self, value: bool) -> Result<Value, DecodeError> {
        Ok(Value::Bool(value))
    }
    fn int(&mut self, value: i64) -> Result<Value, DecodeError> {
        Ok(Value::Int(value))
    }
    fn uint(&mut self, value: u64) -> Result<Value, DecodeError> {
        Ok(Value::UInt(value))
    }
    fn float(&mut self, value: f64) -> Result<Value, DecodeError> {
        Ok(Value::Float(value))
    }
    fn str(&mut self, bytes: &[u8], offset: usize) -> Result<Value, DecodeError> {
        std::str::from_utf8(bytes)
            .map(|s| Value::Str(s.to_owned()))
            .map_err(|_| DecodeError::InvalidUtf8 { offset })
    }
    fn bin(&mut self, bytes: &[u8]) -> Result<Value, DecodeError> {
        Ok(Value::Bin(bytes.to_vec()))
    }
    fn ext(&mut self, code: i8, data: &[u8], _offset: usize) -> Result<Value, DecodeError> {
        Ok(Value::Ext(code, data.to_vec()))
    }
    fn array(&mut self, items: Vec<Value>) -> Result<Value, DecodeError> {
        Ok(Value::Array(items))
    }
    fn map_start(&mut self, len: usize) -> Result<Self::Map, DecodeError> {
        Ok(Vec::with_capacity(len))
    }
    fn map_insert(
        &mut self,
        map: &mut Self::Map,
        key: Value,
        value: Value,
        key_offset: usize,
    ) -> Result<(), DecodeError> {
        if !matches!(key, Value::Str(_) | Value::Bin(_)) {
            return Err(DecodeError::InvalidMapKey {
                offset: key_offset,
                kind: key.python_type_name(),
            });
        }
        map.push((key, value));
        Ok(())
    }
    fn map_finish(&mut self, map: Self::Map) -> Result<Value, DecodeError> {
        Ok(Value::Map(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
        Value::decode(bytes, ReadLimits::default())
    }

    #[test]
    fn handshake_like_value_round_trips() {
        let registry = Value::map([
            ("peng3dnet:internal.hello", Value::from(1u32)),
            ("app:chat", Value::from(64u32)),
        ]);
        let value = Value::map([
            ("version", Value::from("0.2.0")),
            ("protoversion", Value::from(2u32)),
            ("registry", registry),
        ]);
        let bytes = value.to_bytes();
        let back = decode(&bytes).unwrap();
        assert_eq!(back, value);
        assert_eq!(back.get("protoversion").and_then(Value::as_i64), Some(2));
        assert_eq!(back.get("version").and_then(Value::as_str), Some("0.2.0"));
        assert_eq!(back.get("missing"), None);
    }

    #[test]
    fn every_marker_family_decodes() {
        let cases: &[(&[u8], Value)] = &[
            (&[0xc0], Value::Nil),
            (&[0xc3], Value::Bool(true)),
            (&[0x05], Value::UInt(5)),
            (&[0xe0], Value::Int(-32)),
            (&[0xcc, 0xff], Value::UInt(255)),
            (&[0xcd, 0x01, 0x00], Value::UInt(256)),
            (&[0xce, 0, 1, 0, 0], Value::UInt(65536)),
            (
                &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Value::UInt(u64::MAX),
            ),
            (&[0xd0, 0x80], Value::Int(-128)),
            (&[0xd1, 0x80, 0x00], Value::Int(-32768)),
            (&[0xd2, 0x80, 0, 0, 0], Value::Int(i64::from(i32::MIN))),
            (&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], Value::Int(i64::MIN)),
            (&[0xca, 0x3f, 0xc0, 0, 0], Value::Float(1.5)),
            (&[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0], Value::Float(1.5)),
            (&[0xa1, b'a'], Value::from("a")),
            (&[0xd9, 1, b'a'], Value::from("a")),
            (&[0xda, 0, 1, b'a'], Value::from("a")),
            (&[0xdb, 0, 0, 0, 1, b'a'], Value::from("a")),
            (&[0xc4, 1, 7], Value::Bin(vec![7])),
            (&[0xc5, 0, 1, 7], Value::Bin(vec![7])),
            (&[0xc6, 0, 0, 0, 1, 7], Value::Bin(vec![7])),
            (&[0x91, 0x01], Value::Array(vec![Value::UInt(1)])),
            (&[0xdc, 0, 1, 0x01], Value::Array(vec![Value::UInt(1)])),
            (
                &[0xdd, 0, 0, 0, 1, 0x01],
                Value::Array(vec![Value::UInt(1)]),
            ),
            (
                &[0xde, 0, 1, 0xa1, b'k', 0xc0],
                Value::map([("k", Value::Nil)]),
            ),
            (
                &[0xdf, 0, 0, 0, 1, 0xa1, b'k', 0xc0],
                Value::map([("k", Value::Nil)]),
            ),
            (&[0xd4, 5, 1], Value::Ext(5, vec![1])),
            (&[0xd5, 5, 1, 2], Value::Ext(5, vec![1, 2])),
            (&[0xd6, 0xff, 0, 0, 0, 1], Value::Ext(-1, vec![0, 0, 0, 1])),
            (
                &[0xd7, 5, 0, 0, 0, 0, 0, 0, 0, 1],
                Value::Ext(5, vec![0, 0, 0, 0, 0, 0, 0, 1]),
            ),
            (
                &[0xd8, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
                Value::Ext(5, [vec![0; 15], vec![9]].concat()),
            ),
            (&[0xc7, 0, 5], Value::Ext(5, vec![])),
            (&[0xc8, 0, 1, 5, 3], Value::Ext(5, vec![3])),
            (&[0xc9, 0, 0, 0, 1, 5, 3], Value::Ext(5, vec![3])),
        ];
        for (bytes, expected) in cases {
            assert_eq!(&decode(bytes).unwrap(), expected, "{bytes:02x?}");
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let value = Value::map([
            (
                "a",
                Value::Array(vec![
                    Value::from(1u32),
                    Value::from("xyz"),
                    Value::Float(0.5),
                ]),
            ),
            ("b", Value::Bin(vec![1, 2, 3])),
            ("c", Value::Ext(3, vec![1, 2, 3])),
            ("d", Value::from(-70000i64)),
        ]);
        let bytes = value.to_bytes();
        for cut in 0..bytes.len() {
            assert!(
                matches!(
                    decode(&bytes[..cut]),
                    Err(DecodeError::Truncated { .. } | DecodeError::LengthExceedsInput { .. })
                ),
                "cut at {cut}"
            );
        }
        assert_eq!(decode(&bytes).unwrap(), value);
    }

    #[test]
    fn malformed_input() {
        assert_eq!(decode(&[]), Err(DecodeError::Truncated { offset: 0 }));
        assert_eq!(
            decode(&[0x01, 0x02]),
            Err(DecodeError::TrailingData { offset: 1 })
        );
        assert_eq!(
            decode(&[0xc1]),
            Err(DecodeError::ReservedMarker { offset: 0 })
        );
        assert_eq!(
            decode(&[0x91, 0xc1]),
            Err(DecodeError::ReservedMarker { offset: 1 })
        );
        assert_eq!(
            decode(&[0xa2, 0xff, 0xfe]),
            Err(DecodeError::InvalidUtf8 { offset: 1 })
        );
        assert_eq!(
            decode(&[0x81, 0x01, 0x02]),
            Err(DecodeError::InvalidMapKey {
                offset: 1,
                kind: "int"
            })
        );
        assert_eq!(
            decode(&[0x81, 0xc0, 0x02]),
            Err(DecodeError::InvalidMapKey {
                offset: 1,
                kind: "NoneType"
            })
        );
        // A length beyond the whole input is refused at the header, as msgpack-python
        // does ("4294967295 exceeds max_array_len(5)"), before anything is allocated.
        assert_eq!(
            decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::LengthExceedsInput {
                offset: 0,
                kind: "array",
                len: u32::MAX as usize,
                max: 5
            })
        );
        assert!(matches!(
            decode(&[0xdf, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::LengthExceedsInput {
                kind: "map",
                max: 2,
                ..
            })
        ));
        assert!(matches!(
            decode(&[0xc6, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::Truncated { .. })
        ));
        // A shorter announcement is read item by item: the bad marker inside wins.
        assert_eq!(
            decode(&[0x95, 0xc1, 0, 0, 0]),
            Err(DecodeError::ReservedMarker { offset: 1 })
        );
    }

    #[test]
    fn depth_limit_matches_msgpack_python() {
        // msgpack.unpackb accepts 1024 nested arrays and raises StackError on 1025.
        let nested = |n: usize| [vec![0x91u8; n], vec![0x90]].concat();
        assert!(decode(&nested(1023)).is_ok()); // 1024 containers
        assert!(matches!(
            decode(&nested(1024)),
            Err(DecodeError::DepthExceeded { max: 1024, .. })
        ));
        let limits = ReadLimits {
            max_depth: 3,
            ..ReadLimits::default()
        };
        assert!(Value::decode(&[0x91, 0x91, 0x90], limits).is_ok());
        assert!(Value::decode(&[0x91, 0x91, 0x91, 0x90], limits).is_err());
        // Scalars do not count as a level.
        assert!(Value::decode(&[0x91, 0x91, 0x91, 0x01], limits).is_ok());
    }

    #[test]
    fn container_length_limit() {
        let limits = ReadLimits {
            max_container_len: 2,
            ..ReadLimits::default()
        };
        assert!(Value::decode(&[0x92, 1, 2], limits).is_ok());
        assert!(matches!(
            Value::decode(&[0x93, 1, 2, 3], limits),
            Err(DecodeError::ContainerTooLong { len: 3, max: 2, .. })
        ));
    }

    #[test]
    fn duplicate_keys_resolve_like_a_dict() {
        let v = decode(&[0x82, 0xa1, b'a', 1, 0xa1, b'a', 2]).unwrap();
        assert_eq!(v.get("a"), Some(&Value::UInt(2)));
    }

    #[test]
    fn truthiness() {
        assert!(!Value::Nil.is_truthy());
        assert!(Value::Bool(true).is_truthy());
        assert!(!Value::UInt(0).is_truthy());
        assert!(Value::from("x").is_truthy());
        assert!(!Value::Map(vec![]).is_truthy());
    }
}
