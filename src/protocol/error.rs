//! Errors of the protocol layer.
//!
//! Each type covers one stage of decoding. Their `Display` texts are short and
//! specific because they end up as the close reason sent to the offending peer and in
//! the server's log.

use thiserror::Error;

/// The length prefix of a frame is unacceptable. The connection cannot be resynchronised
/// after this (the stream position of the next frame is unknown), so it must be closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The prefix announces fewer bytes than the 6-byte header needs.
    #[error("frame of {len} bytes is shorter than the 6-byte header")]
    TooShort {
        /// The announced length.
        len: u32,
    },
    /// The prefix announces more bytes than the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLong {
        /// The announced length.
        len: u64,
        /// The configured maximum ([`crate::protocol::Limits::max_frame_len`]).
        max: u32,
    },
}

/// A compressed body could not be inflated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InflateError {
    /// The zlib stream is corrupt (bad header, bad checksum, invalid code).
    #[error("corrupt zlib body: {0}")]
    Corrupt(String),
    /// The zlib stream ends before its end marker.
    #[error("truncated zlib body")]
    Truncated,
    /// Bytes follow the end of the zlib stream inside the frame.
    #[error("{0} unexpected bytes after the zlib body")]
    TrailingData(usize),
    /// The body inflates to more than the configured maximum.
    #[error("compressed body inflates beyond the limit of {max} bytes")]
    TooLarge {
        /// The configured maximum ([`crate::protocol::Limits::max_inflated_len`]).
        max: usize,
    },
    /// The receiver has no memory left for the inflated body (see
    /// `compress::decompress_within`).
    #[error("no memory left to inflate a compressed body (refused after {had} bytes)")]
    OverBudget {
        /// Bytes inflated when more room was refused.
        had: usize,
    },
}

/// Any reason to refuse what a peer sent; the `Display` text is the close reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The length prefix is unacceptable.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A compressed body could not be inflated.
    #[error(transparent)]
    Inflate(#[from] InflateError),
    /// The body carries the AES flag, which no implementation ever supported.
    #[error("encrypted packets (FLAG_ENCRYPTED_AES) are not supported")]
    Encrypted,
    /// The body is not valid msgpack (or breaks a decoding limit).
    #[error(transparent)]
    Msgpack(#[from] crate::protocol::msgpack::DecodeError),
}
