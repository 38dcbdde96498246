//! Benches only: see `benches/codec.rs`.
