//! What a frame's checksum costs for a 1 MiB chunk body: checksumming the
//! body, and combining a body checksum computed once with each replica's
//! header (`govfs_net::crc::combine` against the `crc32c` crate's own).
//!
//! `cargo bench -p govfs-benches --bench checksums`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BODY: usize = 1 << 20;

fn bench(c: &mut Criterion) {
    let body: Vec<u8> = (0..BODY).map(|i| (i * 31 + 7) as u8).collect();
    let mut g = c.benchmark_group("frame_checksum_1MiB");
    g.throughput(Throughput::Bytes(BODY as u64));
    g.bench_function("body crc32c", |b| {
        b.iter(|| crc32c::crc32c(black_box(&body)))
    });
    let body_crc = crc32c::crc32c(&body);
    g.bench_function("combine, govfs_net::crc", |b| {
        b.iter(|| govfs_net::crc::combine(black_box(0x1234_5678), body_crc, BODY))
    });
    g.bench_function("combine, crc32c crate", |b| {
        b.iter(|| crc32c::crc32c_combine(black_box(0x1234_5678), body_crc, BODY))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
