//! Compares the log's disk backends: appends and syncs per second for 64-byte
//! entries in group commits of 1, 64 and 1024 entries, and the raw cost of
//! one 4 KiB write linked to an fdatasync.
//!
//! ```text
//! cargo run --release -p govfs-engine --example log_bench [DIR] [SECONDS_PER_CASE]
//! ```
//!
//! DIR (default: the temp dir) decides the filesystem and disk measured.

use govfs_core::raft::{Entry, HardState, Payload};
use govfs_core::wal::Record;
use govfs_engine::io::{
    self, AlignedBuf, BackendChoice, BlockingIo, DiskIo, OpenMode, UringIo, UringOptions, BLOCK,
};
use govfs_engine::log_store::{LogOptions, LogStore, SegmentedLog};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ENTRY_BYTES: usize = 64;
const BATCHES: [usize; 3] = [1, 64, 1024];

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
/// Sets up a backend for files in a directory.
type Make = fn(&Path) -> Result<Box<dyn DiskIo>>;

/// The backends compared, each made fresh for a directory.
fn backends() -> Vec<(&'static str, Make)> {
    vec![
        ("io_uring O_DIRECT, registered", |dir| {
            Ok(Box::new(UringIo::open(dir, UringOptions::default())?))
        }),
        ("io_uring O_DIRECT, unregistered", |dir| {
            let opts = UringOptions {
                registered_buffers: 0,
                ..UringOptions::default()
            };
            Ok(Box::new(UringIo::open(dir, opts)?))
        }),
        ("io_uring buffered, registered", |dir| {
            let opts = UringOptions {
                direct: false,
                ..UringOptions::default()
            };
            Ok(Box::new(UringIo::open(dir, opts)?))
        }),
        ("blocking pwrite+fdatasync", |_| {
            Ok(Box::new(BlockingIo::new(None)))
        }),
    ]
}

fn main() -> Result<()> {
    // The backends' log lines (which one runs, why buffers went unregistered).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let base = args.next().map_or_else(std::env::temp_dir, PathBuf::from);
    let seconds: f64 = args.next().map_or(Ok(2.0), |s| s.parse())?;
    let per_case = Duration::from_secs_f64(seconds);
    println!(
        "log_bench in {} ({seconds} s per case, {ENTRY_BYTES}-byte entries)",
        base.display()
    );
    let (_, auto) = io::open_backend(BackendChoice::Auto, &base)?;
    println!("a log opened here would use: {auto}");
    println!(
        "{:<34} {:>6} {:>12} {:>10} {:>12}",
        "backend", "batch", "appends/s", "syncs/s", "µs/sync"
    );
    for (name, make) in backends() {
        for batch in BATCHES {
            let dir = tempfile::tempdir_in(&base)?;
            let io = match make(dir.path()) {
                Ok(io) => io,
                Err(e) => {
                    println!("{name:<34} unavailable: {e}");
                    break;
                }
            };
            let (syncs, elapsed) = log_case(dir.path(), io, batch, per_case)?;
            let secs = elapsed.as_secs_f64();
            println!(
                "{name:<34} {batch:>6} {:>12.0} {:>10.0} {:>12.1}",
                (syncs * batch) as f64 / secs,
                syncs as f64 / secs,
                secs * 1e6 / syncs as f64
            );
        }
    }
    println!();
    println!(
        "{:<34} {:>16} {:>16}",
        "raw 4 KiB write+fdatasync", "append µs", "overwrite µs"
    );
    for (name, make) in backends() {
        let dir = tempfile::tempdir_in(&base)?;
        let Ok(io) = make(dir.path()) else { continue };
        let (append, overwrite) = raw_case(dir.path(), io, per_case)?;
        println!("{name:<34} {append:>16.1} {overwrite:>16.1}");
    }
    Ok(())
}

/// Appends `batch` entries and syncs, over and over for `limit`. Returns the
/// syncs done and the time taken.
fn log_case(
    dir: &Path,
    io: Box<dyn DiskIo>,
    batch: usize,
    limit: Duration,
) -> Result<(usize, Duration)> {
    let (mut log, _) = SegmentedLog::open_with_io(dir, LogOptions::default(), io)?;
    let mut index = 0;
    let mut records = Vec::with_capacity(batch + 1);
    let start = Instant::now();
    let mut syncs = 0;
    while start.elapsed() < limit {
        records.clear();
        for _ in 0..batch {
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
        log.sync()?;
        syncs += 1;
    }
    Ok((syncs, start.elapsed()))
}

/// Mean µs of one 4 KiB write linked to an fdatasync: appending (the file
/// grows, so its size is journaled too) and overwriting the first block.
fn raw_case(dir: &Path, mut io: Box<dyn DiskIo>, limit: Duration) -> Result<(f64, f64)> {
    let file = io.open(&dir.join("raw.dat"), OpenMode::CreateNew)?;
    let mut buf: AlignedBuf = io.buffer(BLOCK);
    buf.fill_from(&[0xA5; BLOCK]);
    let mut time = |append: bool| -> Result<f64> {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < limit / 2 {
            let offset = if append { n * BLOCK as u64 } else { 0 };
            io.write_at_and_sync(&file, offset, &buf)?;
            n += 1;
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
    };
    let append = time(true)?;
    let overwrite = time(false)?;
    Ok((append, overwrite))
}
