//! `govfs bench chunks`: the chunk store against the raw disk it sits on,
//! in one run: the same backend (io_uring, O_DIRECT), block size, file
//! system and durability (every write made durable before the next).
//!
//! - sequential writes of `--block` bytes (default 1 MiB), each durable;
//! - sequential reads of the same blocks (the store verifies every 4 KiB);
//! - random 4 KiB reads (one at a time: latency-bound IOPS).
//!
//! The raw side writes one preallocated file with `DiskIo::write_at_and_sync`
//! and reads it with `read_at`; the store writes chunks of 4 MiB. (For
//! `govfs bench data`, `raw_disk` can also keep several blocks in flight,
//! to compare with pipelined writes and reads.) This is
//! the disk half of issue 6's targets (at least 85 % of raw sequential
//! bandwidth, 50 % of raw random-read IOPS); `govfs bench data`
//! (`bench_data.rs`) measures the whole path, network and replicas
//! included.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use clap::Args;
use govfs_engine::chunk::{ChunkOptions, ChunkStore, DEFAULT_CHUNK_SIZE};
use govfs_engine::io::uring::MAX_IN_FLIGHT;
use govfs_engine::io::{
    open_backend_with, AlignedBuf, BackendChoice, DiskError, DiskIo, OpenMode, SubmissionId, BLOCK,
};

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
    raw_disk(dir, a.bytes, a.block, a.random_reads, 1)
}

/// The raw disk under `dir` (io_uring and O_DIRECT where they work): `bytes`
/// written sequentially in durable `block`s, read back in `block`s, then
/// `random_reads` random 4 KiB reads one at a time (0 IOPS if none).
///
/// `depth` is how many sequential blocks are in flight. 1: one at a time,
/// each write durable before the next starts (`write_at_and_sync`, then
/// `read_at`). More: `depth` slots, each with its own buffer from
/// `DiskIo::buffer` (registered where the backend can), each write still
/// linked to its own `fdatasync` (`submit_write_and_sync`, then
/// `submit_read`), a slot refilled as soon as its IO completes. At most
/// `io::uring::MAX_IN_FLIGHT` (16). On the blocking backend (io_uring
/// unavailable) every IO completes before the next starts, so depth
/// changes nothing there.
///
/// One depth per call, so that a caller measuring two depths gets each
/// from a fresh file: the file is removed before returning, and calls may
/// share `dir`. The random reads do not depend on `depth`; a caller that
/// already has them can pass `random_reads` 0.
pub(crate) fn raw_disk(
    dir: &Path,
    bytes: usize,
    block: usize,
    random_reads: usize,
    depth: usize,
) -> Result<Rates, String> {
    if !(1..=MAX_IN_FLIGHT).contains(&depth) {
        return Err(format!(
            "raw disk depth {depth}: must be 1 to {MAX_IN_FLIGHT} IOs in flight"
        ));
    }
    let a = ChunksArgs {
        bytes,
        block,
        random_reads,
        dir: None,
    };
    let a = &a;
    // A registered buffer per block in flight, as the chunk store has one
    // for the chunk it works on (where the memory lock limit allows).
    let (mut io, chosen) =
        open_backend_with(BackendChoice::Auto, dir, depth, block).map_err(|e| e.to_string())?;
    eprintln!("bench chunks: raw disk io: {chosen}");
    let path = dir.join("raw.bin");
    let file = io
        .open(&path, OpenMode::CreateNew)
        .map_err(|e| e.to_string())?;
    let blocks = a.bytes / a.block;
    let (write, read) = if depth == 1 {
        let mut buf = io.buffer(a.block);
        buf.fill_from(&vec![0xA5; a.block]);
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
        (write, t.elapsed().as_secs_f64())
    } else {
        let mut slots: Vec<AlignedBuf> = (0..depth)
            .map(|_| {
                let mut buf = io.buffer(a.block);
                buf.fill_from(&vec![0xA5; a.block]);
                buf
            })
            .collect();
        let t = Instant::now();
        pipelined(&mut *io, &mut slots, blocks, |io, i, buf| {
            io.submit_write_and_sync(&file, (i * a.block) as u64, buf)
        })?;
        let write = t.elapsed().as_secs_f64();
        let t = Instant::now();
        pipelined(&mut *io, &mut slots, blocks, |io, i, buf| {
            io.submit_read(&file, (i * a.block) as u64, a.block, buf)
        })?;
        (write, t.elapsed().as_secs_f64())
    };
    let mut small = AlignedBuf::new(BLOCK);
    let mut rng = 0x9E37_79B9_7F4A_7C15;
    let t = Instant::now();
    for _ in 0..a.random_reads {
        let at = next(&mut rng) % (a.bytes / BLOCK) as u64 * BLOCK as u64;
        io.read_at(&file, at, BLOCK, &mut small)
            .map_err(|e| e.to_string())?;
    }
    let random = t.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path).map_err(|e| format!("remove {}: {e}", path.display()))?;
    Ok(Rates {
        write_mib_s: mib_s(blocks * a.block, write),
        read_mib_s: mib_s(blocks * a.block, read),
        random_iops: if a.random_reads == 0 {
            0.0
        } else {
            a.random_reads as f64 / random
        },
    })
}

/// Runs `blocks` asynchronous IOs, as many at once as there are `slots`:
/// `submit(io, i, buf)` starts block `i` with a free slot's buffer. Each
/// completion frees its slot, refilled at once; when none has completed,
/// waits for the oldest. Fails on the first IO that fails (those still in
/// flight finish when the backend is dropped).
fn pipelined(
    io: &mut dyn DiskIo,
    slots: &mut [AlignedBuf],
    blocks: usize,
    mut submit: impl FnMut(&mut dyn DiskIo, usize, &mut AlignedBuf) -> Result<SubmissionId, DiskError>,
) -> Result<(), String> {
    let mut free: Vec<usize> = (0..slots.len()).collect();
    // In submission order: (id, block, slot).
    let mut busy: VecDeque<(SubmissionId, usize, usize)> = VecDeque::new();
    let mut next = 0;
    let mut out = Vec::new();
    while next < blocks || !busy.is_empty() {
        while next < blocks {
            let Some(slot) = free.pop() else { break };
            let id =
                submit(io, next, &mut slots[slot]).map_err(|e| format!("block {next}: {e}"))?;
            busy.push_back((id, next, slot));
            next += 1;
        }
        io.poll_completions(&mut out);
        if out.is_empty() {
            if let Some(&(oldest, _, _)) = busy.front() {
                out.push((oldest, io.wait_completion(oldest)));
            }
        }
        for (id, result) in out.drain(..) {
            let at = busy
                .iter()
                .position(|(b, _, _)| *b == id)
                .ok_or_else(|| format!("completion of unknown submission {id}"))?;
            let (_, block, slot) = busy.remove(at).expect("position is in range");
            result.map_err(|e| format!("block {block}: {e}"))?;
            free.push(slot);
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_disk_at_depth_one_and_more_in_one_directory() {
        let dir = tempfile::tempdir().unwrap();
        let serial = raw_disk(dir.path(), 8 << 20, 1 << 20, 50, 1).unwrap();
        // The same directory again: each call removes its file.
        let deep = raw_disk(dir.path(), 8 << 20, 1 << 20, 0, 4).unwrap();
        for rate in [serial.write_mib_s, serial.read_mib_s, serial.random_iops] {
            assert!(rate.is_finite() && rate > 0.0, "{rate}");
        }
        assert!(deep.write_mib_s > 0.0 && deep.read_mib_s > 0.0);
        assert_eq!(deep.random_iops, 0.0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let too_deep = raw_disk(dir.path(), 8 << 20, 1 << 20, 0, MAX_IN_FLIGHT + 1);
        assert!(too_deep.is_err_and(|e| e.contains("must be 1 to 16")));
    }
}
