//! Bounds that every decoder enforces, so that no peer can make us allocate or
//! recurse without limit.
//!
//! The original library has none of these (its `MAX_PACKETLENGTH` check can never
//! fire), so any value here is stricter than the reference; the defaults are chosen to
//! be far above what a game sends while keeping one connection from exhausting memory.

/// Decoder limits. Construct with [`Limits::default`] and adjust fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted value of the length prefix (header + body, in bytes). Checked as
    /// soon as the 4 prefix bytes arrive, before any of the body is buffered.
    pub max_frame_len: u32,
    /// Largest accepted size of a compressed body once inflated. Stops zlib bombs: a
    /// 1 MiB bomb would otherwise inflate to gigabytes.
    pub max_inflated_len: usize,
    /// Deepest accepted nesting of msgpack arrays and maps. msgpack-python refuses more
    /// than 1024 levels when unpacking, so 1024 accepts everything it accepts.
    pub max_depth: usize,
    /// Largest accepted element count of one msgpack array or map. The input length
    /// bounds it anyway (every element takes at least one byte); this is an extra,
    /// optional bound for applications that want one.
    pub max_container_len: usize,
}

impl Limits {
    /// Default for [`Limits::max_frame_len`]: 256 MiB.
    pub const DEFAULT_MAX_FRAME_LEN: u32 = 256 * 1024 * 1024;
    /// Default for [`Limits::max_inflated_len`]: 256 MiB.
    pub const DEFAULT_MAX_INFLATED_LEN: usize = 256 * 1024 * 1024;
    /// Default for [`Limits::max_depth`]: msgpack-python's own unpacking limit.
    pub const DEFAULT_MAX_DEPTH: usize = 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_len: Self::DEFAULT_MAX_FRAME_LEN,
            max_inflated_len: Self::DEFAULT_MAX_INFLATED_LEN,
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_container_len: usize::MAX,
        }
    }
}
