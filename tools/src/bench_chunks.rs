//! `govfs bench chunks`: the chunk store against the raw disk it sits on,
//! in one run: the same backend (io_uring, O_DIRECT), block size, file
//! system and durability (every write made durable before the next).
//!
//! - sequential writes of `--block` bytes (default 1 MiB), each durable;
//! - sequential reads of the same blocks (the store verifies every 4 KiB);
//! - random 4 KiB reads (one at a time: latency-bound IOPS).
//!
//! The raw side writes one preallocated file with `DiskIo::write_at_and_sync`
//! and reads it with `read_at`; the store writes chunks of 4 MiB. This is
//! the disk half of issue 6's targets (at least 85 % of raw sequential
//! bandwidth, 50 % of raw random-read IOPS); `govfs bench data`
//! (`bench_data.rs`) measures the whole path, network and replicas
//! included.

use std::path::Path;
use std::time::Instant;

use clap::Args;
use govfs_engine::chunk::{ChunkOptions, ChunkStore, DEFAULT_CHUNK_SIZE};
use govfs_engine::io::{open_backend, AlignedBuf, BackendChoice, OpenMode, BLOCK};

#[derive(Args, Debug)]
pub struct ChunksArgs {
    /// Bytes written and read sequentially, in all.
    #[arg(long, default_value_t = 256 << 20)]
    bytes: usize,
    /// Bytes per sequential write or read (a multiple of 4096, at most 4 MiB).
    #[arg(long, default_value_t = 1 << 20)]
    block: usize,
    /// Random 4 KiB reads.
    #[arg(long, default_value_t = 20_000)]
    random_reads: usize,
    /// A directory on the disk to measure (a temporary directory is made
    /// in it; default: the system's temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

pub(crate) struct Rates {
    pub write_mib_s: f64,
    pub read_mib_s: f64,
    pub random_iops: f64,
}

/// A tiny deterministic generator for random offsets.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn mib_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / secs
}

fn raw(dir: &Path, a: &ChunksArgs) -> Result<Rates, String> {
    raw_disk(dir, a.bytes, a.block, a.random_reads)
}

/// The raw disk under `dir`: `bytes` written in durable `block`s with
/// io_uring and O_DIRECT, read back, then `random_reads` random 4 KiB reads.
pub(crate) fn raw_disk(
    dir: &Path,
    bytes: usize,
    block: usize,
    random_reads: usize,
) -> Result<Rates, String> {
    let a = ChunksArgs {
        bytes,
        block,
        random_reads,
        dir: None,
    };
    let a = &a;
    let (mut io, chosen) = open_backend(BackendChoice::Auto, dir).map_err(|e| e.to_string())?;
    eprintln!("bench chunks: raw disk io: {chosen}");
    let file = io
        .open(&dir.join("raw.bin"), OpenMode::CreateNew)
        .map_err(|e| e.to_string())?;
    let mut buf = io.buffer(a.block);
    buf.fill_from(&vec![0xA5; a.block]);
    let blocks = a.bytes / a.block;
    let t = Instant::now();
    for i in 0..blocks {
        io.write_at_and_sync(&file, (i * a.block) as u64, &buf)
            .map_err(|e| e.to_string())?;
    }
    let write = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..blocks {
        io.read_at(&file, (i * a.block) as u64, a.block, &mut buf)
            .map_err(|e| e.to_string())?;
    }
    let read = t.elapsed().as_secs_f64();
    let mut small = AlignedBuf::new(BLOCK);
    let mut rng = 0x9E37_79B9_7F4A_7C15;
    let t = Instant::now();
    for _ in 0..a.random_reads {
        let at = next(&mut rng) % (a.bytes / BLOCK) as u64 * BLOCK as u64;
        io.read_at(&file, at, BLOCK, &mut small)
            .map_err(|e| e.to_string())?;
    }
    let random = t.elapsed().as_secs_f64();
    Ok(Rates {
        write_mib_s: mib_s(blocks * a.block, write),
        read_mib_s: mib_s(blocks * a.block, read),
        random_iops: a.random_reads as f64 / random,
    })
}

fn store(dir: &Path, a: &ChunksArgs) -> Result<Rates, String> {
    let mut s = ChunkStore::open(&dir.join("chunks"), ChunkOptions::default())
        .map_err(|e| e.to_string())?;
    eprintln!("bench chunks: chunk store disk io: {}", s.chosen());
    let cs = DEFAULT_CHUNK_SIZE;
    let data = vec![0xA5; a.block];
    let blocks = a.bytes / a.block;
    let at = |i: usize| ((i * a.block / cs) as u64, (i * a.block % cs) as u64);
    let t = Instant::now();
    for i in 0..blocks {
        let (chunk, offset) = at(i);
        s.write(chunk, 0, offset, &data)
            .map_err(|e| e.to_string())?;
    }
    let write = t.elapsed().as_secs_f64();
    let mut got = Vec::with_capacity(a.block);
    let t = Instant::now();
    for i in 0..blocks {
        let (chunk, offset) = at(i);
        s.read_into(chunk, offset, a.block, &mut got)
            .map_err(|e| e.to_string())?;
        if got.len() != a.block {
            return Err(format!("short read of block {i}: {} bytes", got.len()));
        }
    }
    let read = t.elapsed().as_secs_f64();
    let mut rng = 0x9E37_79B9_7F4A_7C15;
    let t = Instant::now();
    for _ in 0..a.random_reads {
        let p = next(&mut rng) % (a.bytes / BLOCK) as u64 * BLOCK as u64;
        let (chunk, offset) = (p / cs as u64, p % cs as u64);
        s.read_into(chunk, offset, BLOCK, &mut got)
            .map_err(|e| e.to_string())?;
    }
    let random = t.elapsed().as_secs_f64();
    Ok(Rates {
        write_mib_s: mib_s(blocks * a.block, write),
        read_mib_s: mib_s(blocks * a.block, read),
        random_iops: a.random_reads as f64 / random,
    })
}

pub fn run(a: &ChunksArgs) -> Result<(), String> {
    if a.block == 0 || !a.block.is_multiple_of(BLOCK) || a.block > DEFAULT_CHUNK_SIZE {
        return Err("--block must be a multiple of 4096 up to 4 MiB".into());
    }
    if a.bytes < a.block {
        return Err("--bytes must be at least --block".into());
    }
    let tmp = tempfile::Builder::new()
        .prefix("govfs-bench-chunks-")
        .tempdir_in(a.dir.clone().unwrap_or_else(std::env::temp_dir))
        .map_err(|e| format!("temporary directory: {e}"))?;
    // Raw first, then the store, on the same file system.
    let r = raw(tmp.path(), a)?;
    let s = store(tmp.path(), a)?;
    println!("| measure | raw disk | chunk store | store / raw |\n|---|---:|---:|---:|");
    println!(
        "| sequential write, {} KiB blocks, each durable (MiB/s) | {:.0} | {:.0} | {:.2} |",
        a.block >> 10,
        r.write_mib_s,
        s.write_mib_s,
        s.write_mib_s / r.write_mib_s
    );
    println!(
        "| sequential read, {} KiB blocks (MiB/s) | {:.0} | {:.0} | {:.2} |",
        a.block >> 10,
        r.read_mib_s,
        s.read_mib_s,
        s.read_mib_s / r.read_mib_s
    );
    println!(
        "| random 4 KiB reads, one at a time (IOPS) | {:.0} | {:.0} | {:.2} |",
        r.random_iops,
        s.random_iops,
        s.random_iops / r.random_iops
    );
    Ok(())
}
