//! Committed entries per second of a 3-member appointed group in one process
//! (see `govfs_benches::consensus`), for 1, 64 and 1024 closed-loop
//! proposers, with in-memory and with durable (`SegmentedLog`, one sync per
//! Ready) storage.
//!
//! `cargo bench -p govfs-benches --bench consensus`
//!
//! Each benchmark builds one group (untimed) and keeps it across iterations,
//! so it measures the steady state (in-memory logs compacted as the driver's
//! default says); every iteration commits a fixed number of entries. At the
//! end the followers catch up and the driver checks that every member applied
//! every proposer's commands in order and that durable logs replay.

use std::hint::black_box;

// The engine's allocator; the glibc one spends much of this benchmark consolidating.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use govfs_benches::consensus::{Cluster, Options, Storage};

/// Entries committed per iteration, sized so an iteration takes a few to a few
/// tens of milliseconds on a small machine.
fn entries_per_iteration(storage: Storage, proposers: usize) -> u64 {
    match (storage, proposers) {
        (Storage::Memory, 1) => 5_000,
        (Storage::Memory, _) => 20_000,
        (Storage::Durable, 1) => 100,
        (Storage::Durable, 64) => 2_000,
        (Storage::Durable, _) => 10_000,
    }
}

fn consensus(c: &mut Criterion) {
    for storage in [Storage::Memory, Storage::Durable] {
        let mut group = c.benchmark_group(format!("consensus/{storage}"));
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(4));
        for proposers in [1usize, 64, 1024] {
            let entries = entries_per_iteration(storage, proposers);
            let mut cluster = Cluster::new(Options::new(proposers, storage));
            group.throughput(Throughput::Elements(entries));
            group.bench_with_input(
                BenchmarkId::new("proposers", proposers),
                &entries,
                |b, &n| {
                    b.iter_custom(|iters| {
                        let start = Instant::now();
                        for _ in 0..iters {
                            black_box(cluster.run(n));
                        }
                        start.elapsed()
                    })
                },
            );
            // Panics unless every member applied every command in order.
            cluster.finish();
        }
        group.finish();
    }
}

criterion_group!(benches, consensus);
criterion_main!(benches);
