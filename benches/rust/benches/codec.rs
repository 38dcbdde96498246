//! Criterion benches of the protocol core: what one packet costs to frame, compress,
//! split out of a byte stream and walk as msgpack, with no sockets or Python involved.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use peng3dnet_core::protocol::msgpack::{ReadLimits, Value};
use peng3dnet_core::protocol::packet::{encode_packet, open_body, Compression};
use peng3dnet_core::protocol::{compress, FrameDecoder, Limits};

/// A game-state update of about 1 kB.
fn update() -> Value {
    let players = (0..25u32)
        .map(|i| {
            Value::map([
                ("id", Value::from(i)),
                ("x", Value::Float(f64::from(i) * 1.5)),
                ("y", Value::Float(-f64::from(i) * 0.5)),
                ("hp", Value::from(100u32)),
            ])
        })
        .collect();
    Value::map([("tick", Value::from(7u32)), ("players", Value::Array(players))])
}

fn small() -> Value {
    Value::map([
        ("seq", Value::from(1u32)),
        ("op", Value::from("move")),
        ("x", Value::Float(1.5)),
        ("y", Value::Float(-2.25)),
    ])
}

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for (name, value) in [("small", small()), ("update_1k", update())] {
        let body = value.to_bytes();
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("encode", name), &body, |b, body| {
            let mut out = Vec::with_capacity(body.len() + 16);
            b.iter(|| {
                out.clear();
                encode_packet(64, black_box(body), &Compression::default(), &mut out).unwrap();
            });
        });
        // 1,000 frames back to back, fed in 16 KiB reads, as a socket delivers them.
        let mut stream = Vec::new();
        for _ in 0..1000 {
            encode_packet(64, &body, &Compression::default(), &mut stream).unwrap();
        }
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_with_input(BenchmarkId::new("decode_1000", name), &stream, |b, stream| {
            b.iter(|| {
                let mut decoder = FrameDecoder::new(u32::MAX);
                let mut seen = 0;
                for chunk in stream.chunks(16 * 1024) {
                    decoder.extend_from_slice(chunk);
                    while let Some(frame) = decoder.decode().unwrap() {
                        seen += frame.body.len();
                    }
                }
                black_box(seen)
            });
        });
    }
    group.finish();
}

fn zlib(c: &mut Criterion) {
    let mut group = c.benchmark_group("zlib");
    let text: Vec<u8> = update().to_bytes().repeat(100); // ~100 kB, compressible
    let mut packed = Vec::new();
    compress::compress(&text, 6, &mut packed);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("compress_100k_level6", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            out.clear();
            compress::compress(black_box(&text), 6, &mut out);
        });
    });
    group.bench_function("inflate_100k", |b| {
        b.iter(|| compress::decompress(black_box(&packed), usize::MAX).unwrap());
    });
    let mut frame = Vec::new();
    encode_packet(64, &text, &Compression::default(), &mut frame).unwrap();
    group.bench_function("open_compressed_frame_100k", |b| {
        let limits = Limits::default();
        b.iter(|| {
            let mut decoder = FrameDecoder::new(u32::MAX);
            decoder.extend_from_slice(&frame);
            let frame = decoder.decode().unwrap().unwrap();
            black_box(open_body(&frame, &limits).unwrap())
        });
    });
    group.finish();
}

fn msgpack(c: &mut Criterion) {
    let mut group = c.benchmark_group("msgpack");
    let value = update();
    let bytes = value.to_bytes();
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode_update_1k", |b| {
        let mut out = Vec::with_capacity(bytes.len());
        b.iter(|| {
            out.clear();
            black_box(&value).encode(&mut out);
        });
    });
    group.bench_function("decode_update_1k", |b| {
        b.iter(|| Value::decode(black_box(&bytes), ReadLimits::default()).unwrap());
    });
    group.finish();
}

criterion_group!(benches, frames, zlib, msgpack);
criterion_main!(benches);
