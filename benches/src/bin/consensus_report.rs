//! Runs every consensus benchmark configuration once for a fixed number of
//! committed entries (no criterion) and prints markdown tables for
//! `docs/benchmarks.md`, plus the cost of one fdatasync on the benchmark disk.
//!
//! ```text
//! cargo run --release -p govfs-benches --bin consensus_report -- [--scale F] [--only memory|durable] [--proposers P] [--compact-every N] [--count-allocs] [--fsyncs N]
//! ```
//!
//! `--scale` multiplies every entry count (e.g. `--scale 0.01` under
//! callgrind). `--count-allocs` adds heap allocations (and bytes) per
//! committed entry, counted by this binary's global allocator (a relaxed
//! atomic add per allocation while on, so its timings are slightly higher).
//! Durable logs go to `$GOVFS_BENCH_DIR`, else `$TMPDIR`/`/tmp`.

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc as System;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use govfs_benches::consensus::{
    Cluster, Options, Stats, Storage, COMMAND_BYTES, DEFAULT_COMPACT_EVERY,
};
use govfs_benches::fsync;

const PROPOSERS: [usize; 3] = [1, 64, 1024];

fn entries(storage: Storage, proposers: usize) -> u64 {
    match (storage, proposers) {
        (Storage::Memory, 1) => 200_000,
        (Storage::Memory, _) => 1_000_000,
        (Storage::Durable, 1) => 1_000,
        (Storage::Durable, 64) => 20_000,
        (Storage::Durable, _) => 200_000,
    }
}

/// mimalloc (the engine's allocator), counting allocations while [`COUNTING`] is on.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

fn count(size: usize) {
    if COUNTING.load(Relaxed) {
        ALLOCS.fetch_add(1, Relaxed);
        ALLOC_BYTES.fetch_add(size as u64, Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to mimalloc; counting touches only atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with `layout`, as every block here does.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as for `dealloc`; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Args {
    scale: f64,
    only: Option<Storage>,
    proposers: Option<usize>,
    compact_every: Option<u64>,
    count_allocs: bool,
    fsyncs: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        scale: 1.0,
        only: None,
        proposers: None,
        compact_every: None,
        count_allocs: false,
        fsyncs: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--scale" => args.scale = value()?.parse().map_err(|e| format!("--scale: {e}"))?,
            "--proposers" => args.proposers = Some(value()?.parse().map_err(|e| format!("--proposers: {e}"))?),
            "--compact-every" => {
                args.compact_every = Some(value()?.parse().map_err(|e| format!("--compact-every: {e}"))?)
            }
            "--count-allocs" => args.count_allocs = true,
            "--fsyncs" => args.fsyncs = value()?.parse().map_err(|e| format!("--fsyncs: {e}"))?,
            "--only" => {
                args.only = Some(match value()?.as_str() {
                    "memory" => Storage::Memory,
                    "durable" => Storage::Durable,
                    other => return Err(format!("--only memory|durable, not {other}")),
                })
            }
            "-h" | "--help" => {
                return Err("usage: consensus_report [--scale F] [--only memory|durable] [--proposers P] [--compact-every N] [--count-allocs] [--fsyncs N]".into())
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !args.scale.is_finite() || args.scale <= 0.0 || args.fsyncs == 0 {
        return Err("--scale and --fsyncs must be positive".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = std::env::var_os("GOVFS_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let compact_every = args.compact_every.unwrap_or(DEFAULT_COMPACT_EVERY);
    println!(
        "3-member appointed group in one process, {COMMAND_BYTES}-byte commands, closed-loop proposers \
         (one command outstanding each), in-memory Raft logs compacted every {compact_every} entries \
         (0: never); durable logs under `{}`.\n",
        dir.display()
    );
    let (alloc_head, alloc_rule) = if args.count_allocs {
        (" allocs/entry | alloc bytes/entry |", "---:|---:|")
    } else {
        ("", "")
    };
    println!(
        "| configuration | entries committed | seconds | entries/s | mean batch (entries/leader Ready) \
         | fsyncs/s (3 members) | turns |{alloc_head}"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|{alloc_rule}");
    for storage in [Storage::Memory, Storage::Durable] {
        if args.only.is_some_and(|o| o != storage) {
            continue;
        }
        for p in PROPOSERS {
            if args.proposers.is_some_and(|q| q != p) {
                continue;
            }
            let n = ((entries(storage, p) as f64 * args.scale).round() as u64).max(1);
            let mut opts = Options::new(p, storage);
            opts.compact_every = compact_every;
            let mut cluster = Cluster::new(opts);
            let (allocs, bytes) = (ALLOCS.load(Relaxed), ALLOC_BYTES.load(Relaxed));
            COUNTING.store(args.count_allocs, Relaxed);
            let start = Instant::now();
            let run = cluster.run(n);
            let secs = start.elapsed().as_secs_f64();
            COUNTING.store(false, Relaxed);
            let allocs = (
                ALLOCS.load(Relaxed) - allocs,
                ALLOC_BYTES.load(Relaxed) - bytes,
            );
            cluster.finish();
            print_row(storage, p, &run, secs, args.count_allocs.then_some(allocs));
        }
    }
    if args.only != Some(Storage::Memory) {
        match fsync::measure(&dir, args.fsyncs, 4096) {
            Ok(f) => {
                println!(
                    "\nfdatasync after appending {} B, {} times:\n",
                    f.bytes_per_write, f.count
                );
                println!("| mean | min | p50 | p99 | max |");
                println!("|---:|---:|---:|---:|---:|");
                let ms = |d: std::time::Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
                println!(
                    "| {} | {} | {} | {} | {} |",
                    ms(f.mean),
                    ms(f.min),
                    ms(f.p50),
                    ms(f.p99),
                    ms(f.max)
                );
            }
            Err(e) => {
                eprintln!("fsync probe failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn print_row(
    storage: Storage,
    proposers: usize,
    run: &Stats,
    secs: f64,
    allocs: Option<(u64, u64)>,
) {
    let fsyncs = match storage {
        Storage::Memory => "-".to_string(),
        Storage::Durable => format!("{:.0}", run.fsyncs as f64 / secs),
    };
    let per_entry = |x: u64| x as f64 / run.committed as f64;
    let allocs = allocs.map_or_else(String::new, |(n, bytes)| {
        format!(" {:.1} | {:.0} |", per_entry(n), per_entry(bytes))
    });
    println!(
        "| {storage}, P={proposers} | {} | {secs:.3} | {:.0} | {:.1} | {fsyncs} | {} |{allocs}",
        run.committed,
        run.committed as f64 / secs,
        run.mean_batch(),
        run.turns,
    );
}
