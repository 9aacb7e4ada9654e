//! Does an asynchronous sync overlap the disk with the caller's work? Per
//! batch of 64 entries of 64 bytes, three loops on each backend:
//!
//! - `sync only`:  append, `sync()` (what a sync costs by itself);
//! - `sync+work`:  append, `sync()`, 100 µs of CPU work (today's core thread);
//! - `async+work`: append, `start_sync()`, 100 µs of CPU work, `poll_sync()`,
//!   and `finish_sync()` if the sync is still in flight.
//!
//! With real overlap `async+work` costs about max(sync, work) per batch
//! rather than sync + work. The blocking backend does its "asynchronous"
//! sync at submit time, so it shows none, by design.
//!
//! ```text
//! cargo run --release -p govfs-engine --example async_sync_bench [DIR] [SECONDS_PER_CASE]
//! ```
//!
//! DIR (default: the temp dir) decides the filesystem and disk measured.

use govfs_core::raft::{Entry, HardState, Payload};
use govfs_core::wal::Record;
use govfs_engine::io::{BlockingIo, DiskIo, UringIo, UringOptions};
use govfs_engine::log_store::{LogOptions, LogStore, SegmentedLog};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ENTRY_BYTES: usize = 64;
const BATCH: usize = 64;
const WORK: Duration = Duration::from_micros(100);

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
type Make = fn(&Path) -> Result<Box<dyn DiskIo>>;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    SyncOnly,
    SyncThenWork,
    AsyncWithWork,
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let base = args.next().map_or_else(std::env::temp_dir, PathBuf::from);
    let seconds: f64 = args.next().map_or(Ok(2.0), |s| s.parse())?;
    let per_case = Duration::from_secs_f64(seconds);
    println!(
        "async_sync_bench in {} ({seconds} s per case, batches of {BATCH} x {ENTRY_BYTES} B, \
         {} µs of work per batch)",
        base.display(),
        WORK.as_micros()
    );
    let backends: [(&str, Make); 2] = [
        ("io_uring O_DIRECT, registered", |dir| {
            Ok(Box::new(UringIo::open(dir, UringOptions::default())?))
        }),
        ("blocking pwrite+fdatasync", |_| {
            Ok(Box::new(BlockingIo::new(None)))
        }),
    ];
    println!(
        "{:<32} {:>12} {:>12} {:>12} {:>14}",
        "backend", "sync µs", "sync+work µs", "async+work", "done at poll"
    );
    for (name, make) in backends {
        let mut per_batch = [0.0; 3];
        let mut done_at_poll = 0.0;
        let mut available = true;
        for (i, mode) in [Mode::SyncOnly, Mode::SyncThenWork, Mode::AsyncWithWork]
            .into_iter()
            .enumerate()
        {
            let dir = tempfile::tempdir_in(&base)?;
            let io = match make(dir.path()) {
                Ok(io) => io,
                Err(e) => {
                    println!("{name:<32} unavailable: {e}");
                    available = false;
                    break;
                }
            };
            let (us, at_poll) = run(dir.path(), io, mode, per_case)?;
            per_batch[i] = us;
            if mode == Mode::AsyncWithWork {
                done_at_poll = at_poll;
            }
        }
        if !available {
            continue;
        }
        let [sync, serial, overlapped] = per_batch;
        println!(
            "{name:<32} {sync:>12.1} {serial:>12.1} {overlapped:>12.1} {:>13.0}%",
            done_at_poll * 100.0
        );
        // What overlapping could save at best: the shorter of sync and work.
        let best = sync.min(WORK.as_secs_f64() * 1e6);
        let saved = serial - overlapped;
        println!(
            "{:<32} overlap saves {saved:.1} µs per batch of at most {best:.1} ({:.0}%): {}",
            "",
            100.0 * saved / best,
            if saved > 0.5 * best {
                "real overlap"
            } else {
                "no real overlap"
            }
        );
    }
    Ok(())
}

/// Spins for `WORK`: CPU work the core thread would do meanwhile.
fn work() {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < WORK {
        for i in 0..64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
}

/// Runs `mode` for `limit`. Returns µs per batch and, for the asynchronous
/// mode, the share of syncs already durable at the poll after the work.
fn run(dir: &Path, io: Box<dyn DiskIo>, mode: Mode, limit: Duration) -> Result<(f64, f64)> {
    let (mut log, _) = SegmentedLog::open_with_io(dir, LogOptions::default(), io)?;
    let mut index = 0;
    let mut records = Vec::with_capacity(BATCH + 1);
    let mut batches = 0u64;
    let mut at_poll = 0u64;
    let start = Instant::now();
    while start.elapsed() < limit {
        records.clear();
        for _ in 0..BATCH {
            index += 1;
            records.push(Record::Entry(Entry {
                term: 1,
                index,
                payload: Payload::Command(vec![index as u8; ENTRY_BYTES]),
            }));
        }
        records.push(Record::HardState(HardState {
            term: 1,
            vote: Some(1),
        }));
        log.append(&records)?;
        match mode {
            Mode::SyncOnly => {
                log.sync()?;
            }
            Mode::SyncThenWork => {
                log.sync()?;
                work();
            }
            Mode::AsyncWithWork => {
                let ticket = log.start_sync()?.expect("no sync in flight");
                work();
                if log.poll_sync()?.is_some() {
                    at_poll += 1;
                } else {
                    log.finish_sync(ticket)?;
                }
            }
        }
        batches += 1;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / batches as f64;
    Ok((us, at_poll as f64 / batches as f64))
}
