//! msgpack <-> Python objects, reproducing msgpack-python 1.x with default options.
//!
//! Packing walks the object once and writes straight into the output buffer,
//! following `msgpack.packb`'s dispatch order: `None`, `True`/`False`, `int`
//! (`OverflowError` outside int64/uint64), `float` (always float64), `bytes` and
//! `bytearray` (bin), `str` (UTF-8, `UnicodeEncodeError` on lone surrogates), `dict`
//! (a subclass through its `items()`), `msgpack.ExtType` (before tuple: it is a
//! namedtuple), `msgpack.Timestamp`, `list`/`tuple` (and subclasses such as
//! namedtuples), `memoryview` (bin, C-contiguous only); anything else raises
//! `TypeError("can not serialize 'T' object")`. An object more than 1024 levels deep
//! raises `ValueError("recursion limit exceeded.")`, as msgpack-python does. Exact
//! built-in types are tried first; subclasses take a slower path.
//!
//! Unpacking goes through the protocol layer's bounded reader and builds objects as
//! `msgpack.unpackb(data)` does: str as `str` (strict UTF-8, same
//! `UnicodeDecodeError`), bin as `bytes`, arrays as `list`, maps as `dict` with only
//! `str`/`bytes` keys (`strict_map_key=True`), ext -1 as `msgpack.Timestamp`, other
//! ext as `msgpack.ExtType`.

use pyo3::exceptions::{PyBufferError, PyOverflowError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
    PyType,
};

use crate::protocol::msgpack::{read, write, Builder, DecodeError, ReadLimits};
use crate::protocol::packet::{self, Compression};
use crate::transport::connection::OutFrame;

/// Deepest level `msgpack.packb` accepts (the top-level object is level 0).
const PACK_MAX_LEVEL: usize = 1024;

static EXT_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMESTAMP: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EXTRA_DATA: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn ext_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    EXT_TYPE.import(py, "msgpack", "ExtType")
}

fn timestamp_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    TIMESTAMP.import(py, "msgpack", "Timestamp")
}

// ---------------------------------------------------------------------------------
// Packing
// ---------------------------------------------------------------------------------

/// Appends the msgpack encoding of `obj` to `out`, byte-identical to `msgpack.packb(obj)`.
pub(crate) fn pack(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    let mut packing = PackOut::copying(std::mem::take(out));
    let packed = pack_at(obj, &mut packing, 0);
    *out = packing.buf;
    packed
}

/// Where packing writes: a buffer, and, if the caller can send a large `bytes` object
/// from where it lies ([`PackOut::borrowing`]), the first such object, which is left
/// out of the buffer: its data belong at offset `borrowed.0` of it.
pub(crate) struct PackOut {
    buf: Vec<u8>,
    may_borrow: bool,
    borrowed: Option<(usize, Py<PyBytes>)>,
}

impl PackOut {
    /// Everything is copied into `buf`.
    fn copying(buf: Vec<u8>) -> PackOut {
        PackOut {
            buf,
            may_borrow: false,
            borrowed: None,
        }
    }

    /// The first `bytes` object from [`LARGE_BYTES_FROM`] bytes on is left out of `buf`.
    fn borrowing(buf: Vec<u8>) -> PackOut {
        PackOut {
            buf,
            may_borrow: true,
            borrowed: None,
        }
    }
}

impl std::ops::Deref for PackOut {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl std::ops::DerefMut for PackOut {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

fn check_len(len: usize, what: &str) -> PyResult<u32> {
    u32::try_from(len).map_err(|_| PyValueError::new_err(format!("{what} is too large")))
}

fn pack_at(obj: &Bound<'_, PyAny>, out: &mut PackOut, level: usize) -> PyResult<()> {
    if level > PACK_MAX_LEVEL {
        return Err(PyValueError::new_err("recursion limit exceeded."));
    }
    // Exact built-in types first: they are what packets are made of.
    if obj.is_none() {
        write::write_nil(out);
    } else if let Ok(s) = obj.cast_exact::<PyString>() {
        pack_str(s, out)?;
    } else if obj.is_exact_instance_of::<PyInt>() {
        pack_int(obj, out)?;
    } else if let Ok(b) = obj.cast_exact::<PyBool>() {
        write::write_bool(out, b.is_true());
    } else if let Ok(f) = obj.cast_exact::<PyFloat>() {
        write::write_f64(out, f.value());
    } else if let Ok(d) = obj.cast_exact::<PyDict>() {
        pack_dict(d, out, level)?;
    } else if let Ok(l) = obj.cast_exact::<PyList>() {
        pack_list(l, out, level)?;
    } else if let Ok(t) = obj.cast_exact::<PyTuple>() {
        pack_tuple(t, out, level)?;
    } else if let Ok(b) = obj.cast_exact::<PyBytes>() {
        pack_bytes(b, out)?;
    } else {
        pack_unlikely(obj, out, level)?;
    }
    Ok(())
}

/// Subclasses and the rarer types, in `msgpack.packb`'s order.
#[inline(never)]
fn pack_unlikely(obj: &Bound<'_, PyAny>, out: &mut PackOut, level: usize) -> PyResult<()> {
    let py = obj.py();
    if obj.is_instance_of::<PyInt>() {
        return pack_int(obj, out);
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        write::write_f64(out, f.value());
        return Ok(());
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return pack_bytes(b, out);
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return pack_bin(&b.to_vec(), out, "bytearray");
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return pack_str(s, out);
    }
    if obj.is_instance_of::<PyDict>() {
        // A dict subclass is packed through its own items(), as msgpack-python does.
        let mut pairs = Vec::new();
        for pair in obj.call_method0("items")?.try_iter()? {
            let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair?.extract()?;
            pairs.push((key, value));
        }
        write::write_map_header(out, check_len(pairs.len(), "dict")?);
        for (key, value) in &pairs {
            pack_at(key, out, level + 1)?;
            pack_at(value, out, level + 1)?;
        }
        return Ok(());
    }
    if obj.is_instance(ext_type(py)?)? {
        let code: i64 = obj.getattr("code")?.extract()?;
        let data = obj.getattr("data")?;
        let data = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("ExtType data must be bytes"))?;
        check_len(data.as_bytes().len(), "ExtType data")?;
        // msgpack-python writes the code as a signed byte whatever ExtType allowed.
        write::write_ext(out, code as i8, data.as_bytes());
        return Ok(());
    }
    if obj.get_type().is(timestamp_type(py)?) {
        let seconds: i64 = obj.getattr("seconds")?.extract()?;
        let nanoseconds: u32 = obj.getattr("nanoseconds")?.extract()?;
        write::write_timestamp(out, seconds, nanoseconds);
        return Ok(());
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return pack_list(l, out, level);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return pack_tuple(t, out, level);
    }
    if obj.is_instance_of::<PyMemoryView>() {
        if !obj.getattr("c_contiguous")?.is_truthy()? {
            return Err(PyBufferError::new_err(
                "memoryview: underlying buffer is not C-contiguous",
            ));
        }
        let bytes = obj.call_method0("tobytes")?;
        let bytes = bytes.cast::<PyBytes>()?;
        return pack_bin(bytes.as_bytes(), out, "memoryview");
    }
    let type_name = obj.get_type().name()?;
    Err(PyTypeError::new_err(format!(
        "can not serialize '{type_name}' object"
    )))
}

#[inline]
fn pack_str(s: &Bound<'_, PyString>, out: &mut Vec<u8>) -> PyResult<()> {
    let text = s.to_str()?;
    let len = u32::try_from(text.len())
        .map_err(|_| PyValueError::new_err("unicode string is too large"))?;
    write::write_str_header(out, len);
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

#[inline]
fn pack_int(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    if let Ok(v) = obj.extract::<i64>() {
        write::write_int(out, v);
    } else if let Ok(v) = obj.extract::<u64>() {
        write::write_uint(out, v);
    } else {
        return Err(PyOverflowError::new_err("Integer value out of range"));
    }
    Ok(())
}

/// `bytes` from this size on are sent from the object itself where the caller can (see
/// [`encode_frame_pieces`]), else copied into the body with the GIL released: copying
/// into fresh memory is slow where the pages must first be faulted in, more so while
/// the network threads map and unmap large buffers (a server streaming blobs held
/// the GIL for ~0.2 ms per 256 KiB send, stalling its process thread).
const LARGE_BYTES_FROM: usize = 64 * 1024;

fn pack_bytes(b: &Bound<'_, PyBytes>, out: &mut PackOut) -> PyResult<()> {
    let data = b.as_bytes();
    if data.len() < LARGE_BYTES_FROM {
        return pack_bin(data, out, "bytes");
    }
    let len = check_len(data.len(), "bytes object")?;
    write::write_bin_header(out, len);
    if out.may_borrow && out.borrowed.is_none() {
        out.borrowed = Some((out.buf.len(), b.clone().unbind()));
        return Ok(());
    }
    out.reserve(data.len());
    // A `bytes` object never changes, and `b` keeps it alive until we return, so its
    // buffer may be read by this thread while another one holds the GIL.
    let (address, size) = (data.as_ptr() as usize, data.len());
    b.py().detach(|| {
        // SAFETY: `address..address + size` is the immutable buffer described above.
        let data = unsafe { std::slice::from_raw_parts(address as *const u8, size) };
        out.extend_from_slice(data);
    });
    Ok(())
}

#[inline]
fn pack_bin(bytes: &[u8], out: &mut Vec<u8>, what: &str) -> PyResult<()> {
    let len = check_len(bytes.len(), &format!("{what} object"))?;
    write::write_bin_header(out, len);
    out.extend_from_slice(bytes);
    Ok(())
}

fn pack_dict(d: &Bound<'_, PyDict>, out: &mut PackOut, level: usize) -> PyResult<()> {
    write::write_map_header(out, check_len(d.len(), "dict")?);
    for (key, value) in d.iter() {
        pack_at(&key, out, level + 1)?;
        pack_at(&value, out, level + 1)?;
    }
    Ok(())
}

fn pack_list(l: &Bound<'_, PyList>, out: &mut PackOut, level: usize) -> PyResult<()> {
    let len = l.len();
    write::write_array_header(out, check_len(len, "list")?);
    let mut written = 0;
    for item in l.iter() {
        if written == len {
            break;
        }
        pack_at(&item, out, level + 1)?;
        written += 1;
    }
    if written != len {
        // Only possible if packing an element ran Python code that shrank the list.
        return Err(PyRuntimeError::new_err("list changed size during packing"));
    }
    Ok(())
}

fn pack_tuple(t: &Bound<'_, PyTuple>, out: &mut PackOut, level: usize) -> PyResult<()> {
    write::write_array_header(out, check_len(t.len(), "tuple")?);
    for item in t.iter() {
        pack_at(&item, out, level + 1)?;
    }
    Ok(())
}

/// The complete frame of packet `pid` carrying `msg`, and the length of the msgpack
/// body before compression: the body is packed in place behind the reserved header and
/// compressed if `compression` says so. Compressing a large body takes a while, so
/// that happens with the GIL released.
pub(crate) fn encode_frame(
    py: Python<'_>,
    pid: u32,
    msg: &Bound<'_, PyAny>,
    compression: &Compression,
) -> PyResult<(bytes::Bytes, usize)> {
    let mut out = Vec::with_capacity(64);
    let start = packet::begin_frame(&mut out);
    pack(msg, &mut out)?;
    encode_packed(py, pid, out, start, compression)
}

/// Completes the frame whose body was packed after `start` in `out`.
fn encode_packed(
    py: Python<'_>,
    pid: u32,
    mut out: Vec<u8>,
    start: usize,
    compression: &Compression,
) -> PyResult<(bytes::Bytes, usize)> {
    let body_len = out.len() - start - packet::FRAME_OVERHEAD;
    let (out, result) = if compression.applies_to(body_len) {
        py.detach(|| {
            let result = packet::finish_frame(&mut out, start, pid, compression);
            (out, result)
        })
    } else {
        let result = packet::finish_frame(&mut out, start, pid, compression);
        (out, result)
    };
    result.map_err(|err| PyValueError::new_err(format!("cannot send packet {pid}: {err}")))?;
    Ok((bytes::Bytes::from(out), body_len))
}

/// The buffer of a `bytes` object, as a piece of a frame: the object is immutable and
/// kept alive with it, so its data may be read by any thread (and is, by the thread
/// that writes the frame). Dropping it without the GIL leaves the reference to be
/// released the next time a thread of ours holds the GIL (pyo3's reference pool).
struct BytesObjectData {
    /// Held for `address` to stay valid (never read).
    _object: Py<PyBytes>,
    address: usize,
    len: usize,
}

impl AsRef<[u8]> for BytesObjectData {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the immutable buffer of `object`, which this holds a reference to.
        unsafe { std::slice::from_raw_parts(self.address as *const u8, self.len) }
    }
}

/// [`encode_frame`], except that the data of the message's first `bytes` object of
/// 64 KiB or more is not copied if the body is sent uncompressed (compression off,
/// below its threshold, or a body that does not look compressible: images, archives,
/// already compressed data): the frame is then its head, the object's own buffer and
/// the rest. Saves a copy of the data into fresh memory (and the page faults) per send.
pub(crate) fn encode_frame_pieces(
    py: Python<'_>,
    pid: u32,
    msg: &Bound<'_, PyAny>,
    compression: &Compression,
) -> PyResult<(OutFrame, usize)> {
    let mut out = PackOut::borrowing(Vec::with_capacity(64));
    let start = packet::begin_frame(&mut out);
    pack_at(msg, &mut out, 0)?;
    let PackOut { buf, borrowed, .. } = out;
    let Some((offset, object)) = borrowed else {
        return encode_packed(py, pid, buf, start, compression)
            .map(|(frame, len)| (OutFrame::Whole(frame), len));
    };
    let data = BytesObjectData {
        address: object.bind(py).as_bytes().as_ptr() as usize,
        len: object.bind(py).as_bytes().len(),
        _object: object,
    };
    let body_len = buf.len() - start - packet::FRAME_OVERHEAD + data.len;
    let at = offset - start - packet::FRAME_OVERHEAD;
    let mut buf = buf;
    // Judging (and perhaps compressing) a large body takes a while: without the GIL.
    let finished = py.detach(|| {
        packet::finish_frame_around(&mut buf, start, pid, compression, data.as_ref(), at)
    });
    let split = finished
        .map_err(|err| PyValueError::new_err(format!("cannot send packet {pid}: {err}")))?;
    let frame = bytes::Bytes::from(buf);
    let encoded = match split {
        None => OutFrame::Whole(frame),
        Some(split) => {
            let mut pieces = vec![frame.slice(..split), bytes::Bytes::from_owner(data)];
            if split < frame.len() {
                pieces.push(frame.slice(split..));
            }
            OutFrame::Pieces(pieces)
        }
    };
    Ok((encoded, body_len))
}

// ---------------------------------------------------------------------------------
// Unpacking
// ---------------------------------------------------------------------------------

/// Why unpacking failed: the input broke the format, or Python raised while building.
pub(crate) enum UnpackError {
    /// The reader refused the input.
    Decode(DecodeError),
    /// A Python exception (UnicodeDecodeError, an invalid ExtType code, ...).
    Python(PyErr),
}

impl From<DecodeError> for UnpackError {
    fn from(err: DecodeError) -> Self {
        UnpackError::Decode(err)
    }
}

impl From<PyErr> for UnpackError {
    fn from(err: PyErr) -> Self {
        UnpackError::Python(err)
    }
}

/// Short strings decoded earlier in one batch of received packets, by content.
///
/// The keys of a game's messages (and short values such as tags) repeat from packet
/// to packet; a cached `str` skips the UTF-8 decoding and the allocation, and as a
/// dict key its hash is already computed. Strings are immutable, so sharing one
/// object between messages changes nothing a receiver can observe.
pub(crate) struct StrCache {
    /// Each a `str` object.
    slots: Vec<Option<(CachedKey, Py<PyAny>)>>,
}

/// The bytes of a cached string (at most [`StrCache::MAX_LEN`]), zero-padded into one
/// integer, and its length: compared and hashed as integers.
#[derive(PartialEq, Eq, Clone, Copy)]
struct CachedKey {
    bytes: u128,
    len: usize,
}

impl StrCache {
    /// Longest string that is cached.
    const MAX_LEN: usize = 16;
    /// Number of sets of two slots (a power of two): two strings whose hashes collide
    /// are both kept, so that keys alternating in every message (`"x"`, `"hp"`) do not
    /// keep replacing each other; a third displaces the older of the two.
    const SETS: usize = 128;

    /// An empty cache; its slots are allocated on first use.
    pub(crate) fn new() -> Self {
        StrCache { slots: Vec::new() }
    }

    /// The `str` of `bytes` (at most [`StrCache::MAX_LEN`] of them): the cached one, or
    /// a new one, which is cached.
    fn string<'py>(&mut self, py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        if self.slots.is_empty() {
            self.slots.resize_with(2 * Self::SETS, || None);
        }
        let (set, key) = Self::key(bytes);
        let ways = &mut self.slots[2 * set..2 * set + 2];
        for (cached, string) in ways.iter().flatten() {
            if *cached == key {
                return Ok(string.bind(py).clone());
            }
        }
        let string = decode_utf8(py, bytes)?;
        ways[1] = ways[0].take();
        ways[0] = Some((key, string.clone().unbind()));
        Ok(string)
    }

    /// The set and key of `bytes` (at most [`StrCache::MAX_LEN`] of them).
    fn key(bytes: &[u8]) -> (usize, CachedKey) {
        let mut padded = [0u8; Self::MAX_LEN];
        padded[..bytes.len()].copy_from_slice(bytes);
        let key = CachedKey {
            bytes: u128::from_le_bytes(padded),
            len: bytes.len(),
        };
        // A multiplicative hash of the two halves, mixed; its top bits pick the set.
        let (low, high) = (key.bytes as u64, (key.bytes >> 64) as u64);
        let mixed = low ^ high.rotate_left(29) ^ key.len as u64;
        let set = mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - Self::SETS.trailing_zeros());
        (set as usize, key)
    }
}

/// Builds Python objects from the reader's items.
struct PyBuilder<'a, 'py> {
    py: Python<'py>,
    /// Where short strings are looked up first (received packets only).
    strings: Option<&'a mut StrCache>,
}

impl<'py> PyBuilder<'_, 'py> {
    fn timestamp(&self, data: &[u8], offset: usize) -> Result<Bound<'py, PyAny>, UnpackError> {
        let (seconds, nanoseconds): (i64, u32) = match *data {
            [a, b, c, d] => (i64::from(u32::from_be_bytes([a, b, c, d])), 0),
            [..] if data.len() == 8 => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(data);
                let data64 = u64::from_be_bytes(raw);
                ((data64 & 0x3_ffff_ffff) as i64, (data64 >> 34) as u32)
            }
            [..] if data.len() == 12 => {
                let mut nanos = [0u8; 4];
                nanos.copy_from_slice(&data[..4]);
                let mut secs = [0u8; 8];
                secs.copy_from_slice(&data[4..]);
                (i64::from_be_bytes(secs), u32::from_be_bytes(nanos))
            }
            _ => {
                return Err(DecodeError::InvalidExt {
                    offset,
                    reason: format!("invalid timestamp data (length {})", data.len()),
                }
                .into())
            }
        };
        // The constructor validates the nanoseconds exactly as msgpack-python does.
        Ok(timestamp_type(self.py)?.call1((seconds, nanoseconds))?)
    }
}

impl<'py> Builder for PyBuilder<'_, 'py> {
    type Value = Bound<'py, PyAny>;
    type Map = Bound<'py, PyDict>;
    type Error = UnpackError;

    fn nil(&mut self) -> Result<Self::Value, UnpackError> {
        Ok(self.py.None().into_bound(self.py))
    }

    fn boolean(&mut self, value: bool) -> Result<Self::Value, UnpackError> {
        Ok(PyBool::new(self.py, value).to_owned().into_any())
    }

    fn int(&mut self, value: i64) -> Result<Self::Value, UnpackError> {
        let Ok(int) = value.into_pyobject(self.py);
        Ok(int.into_any())
    }

    fn uint(&mut self, value: u64) -> Result<Self::Value, UnpackError> {
        let Ok(int) = value.into_pyobject(self.py);
        Ok(int.into_any())
    }

    fn float(&mut self, value: f64) -> Result<Self::Value, UnpackError> {
        Ok(PyFloat::new(self.py, value).into_any())
    }

    fn str(&mut self, bytes: &[u8], _offset: usize) -> Result<Self::Value, UnpackError> {
        match self.strings.as_deref_mut() {
            Some(cache) if bytes.len() <= StrCache::MAX_LEN => Ok(cache.string(self.py, bytes)?),
            _ => Ok(decode_utf8(self.py, bytes)?),
        }
    }

    fn bin(&mut self, bytes: &[u8]) -> Result<Self::Value, UnpackError> {
        Ok(PyBytes::new(self.py, bytes).into_any())
    }

    fn ext(&mut self, code: i8, data: &[u8], offset: usize) -> Result<Self::Value, UnpackError> {
        if code == crate::protocol::msgpack::marker::TIMESTAMP_EXT {
            return self.timestamp(data, offset);
        }
        let data = PyBytes::new(self.py, data);
        Ok(ext_type(self.py)?.call1((code, data))?)
    }

    fn array(&mut self, items: Vec<Self::Value>) -> Result<Self::Value, UnpackError> {
        Ok(PyList::new(self.py, items)?.into_any())
    }

    fn map_start(&mut self, _capacity_hint: usize) -> Result<Self::Map, UnpackError> {
        Ok(PyDict::new(self.py))
    }

    fn map_insert(
        &mut self,
        map: &mut Self::Map,
        key: Self::Value,
        value: Self::Value,
        key_offset: usize,
    ) -> Result<(), UnpackError> {
        if !(key.is_exact_instance_of::<PyString>() || key.is_exact_instance_of::<PyBytes>()) {
            return Err(DecodeError::InvalidMapKey {
                offset: key_offset,
                kind: decoded_type_name(&key),
            }
            .into());
        }
        map.set_item(key, value)?;
        Ok(())
    }

    fn map_finish(&mut self, map: Self::Map) -> Result<Self::Value, UnpackError> {
        Ok(map.into_any())
    }
}

/// Decodes UTF-8 with CPython's own strict decoder: one pass, and the very
/// UnicodeDecodeError msgpack-python raises for invalid input.
fn decode_utf8<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: the pointer and length describe `bytes`, which outlives the call (the
    // decoder copies); the length fits Py_ssize_t because msgpack strings are at most
    // u32::MAX bytes; the errors argument is a NUL-terminated C string.
    unsafe {
        let ptr = ffi::PyUnicode_DecodeUTF8(
            bytes.as_ptr().cast(),
            bytes.len() as ffi::Py_ssize_t,
            c"strict".as_ptr(),
        );
        Bound::from_owned_ptr_or_err(py, ptr)
    }
}

/// The type name of an object this builder made (only these kinds exist), for the
/// "X is not allowed for map key" message.
fn decoded_type_name(obj: &Bound<'_, PyAny>) -> &'static str {
    if obj.is_none() {
        "NoneType"
    } else if obj.is_exact_instance_of::<PyBool>() {
        "bool"
    } else if obj.is_exact_instance_of::<PyInt>() {
        "int"
    } else if obj.is_exact_instance_of::<PyFloat>() {
        "float"
    } else if obj.is_exact_instance_of::<PyList>() {
        "list"
    } else if obj.is_exact_instance_of::<PyDict>() {
        "dict"
    } else if obj.is_instance_of::<PyTuple>() {
        "ExtType"
    } else {
        "Timestamp"
    }
}

/// Decodes one complete msgpack value into Python objects (for received packets).
pub(crate) fn unpack<'py>(
    py: Python<'py>,
    data: &[u8],
    limits: ReadLimits,
) -> Result<Bound<'py, PyAny>, UnpackError> {
    read::decode(data, limits, &mut PyBuilder { py, strings: None })
}

/// [`unpack`], looking short strings up in `strings` first (for the packets of one
/// batch: their keys repeat).
pub(crate) fn unpack_cached<'py>(
    py: Python<'py>,
    data: &[u8],
    limits: ReadLimits,
    strings: &mut StrCache,
) -> Result<Bound<'py, PyAny>, UnpackError> {
    read::decode(
        data,
        limits,
        &mut PyBuilder {
            py,
            strings: Some(strings),
        },
    )
}

/// Like `msgpack.unpackb(data)`, including its exception types.
pub(crate) fn unpackb<'py>(
    py: Python<'py>,
    data: &[u8],
    limits: ReadLimits,
) -> PyResult<Bound<'py, PyAny>> {
    let (value, end) = read::decode_prefix(data, limits, &mut PyBuilder { py, strings: None })
        .map_err(|err| unpack_error_to_py(py, err))?;
    if end != data.len() {
        let extra = PyBytes::new(py, &data[end..]);
        let class = EXTRA_DATA.import(py, "msgpack.exceptions", "ExtraData")?;
        return Err(PyErr::from_value(class.call1((value, extra))?));
    }
    Ok(value)
}

/// The Python exception for an unpacking failure, as `msgpack.unpackb` would raise it.
pub(crate) fn unpack_error_to_py(py: Python<'_>, err: UnpackError) -> PyErr {
    match err {
        UnpackError::Decode(err) => super::errors::msgpack_decode_error(py, &err),
        UnpackError::Python(err) => err,
    }
}
