//! Helpers shared by the log store tests.
#![allow(dead_code)] // each test binary uses a different subset

use govfs_core::raft::{Entry, HardState, Index, Membership, Payload, SnapshotMeta, Term};
use govfs_core::wal::{self, Record, Replay};
use govfs_engine::io::{BackendChoice, UringIo, UringOptions};
use govfs_engine::log_store::{LogOptions, LogStore, SegmentedLog, StoreError};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The disk backends every log store test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disk {
    /// io_uring, O_DIRECT where the filesystem takes it, a registered buffer.
    Uring,
    /// io_uring writing from unregistered buffers (as when RLIMIT_MEMLOCK is too low).
    UringUnregistered,
    /// pwrite + fdatasync.
    Blocking,
}

/// Generates, for each named `fn name(disk: Disk)`, one `#[test]` per
/// backend: `uring::name`, `uring_unregistered::name` and `blocking::name`.
/// The io_uring ones skip, saying so, where io_uring is unavailable.
#[allow(unused_macros)] // not every test binary runs on every disk
macro_rules! on_every_disk {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $(#[test]
            fn $name() {
                if $crate::common::uring_or_skip(stringify!($name)) {
                    super::$name($crate::common::Disk::Uring)
                }
            })*
        }
        mod uring_unregistered {
            $(#[test]
            fn $name() {
                if $crate::common::uring_or_skip(stringify!($name)) {
                    super::$name($crate::common::Disk::UringUnregistered)
                }
            })*
        }
        mod blocking {
            $(#[test]
            fn $name() {
                super::$name($crate::common::Disk::Blocking)
            })*
        }
    };
}

/// Why io_uring cannot be set up on this machine (`None`: it can).
pub fn uring_unavailable() -> Option<&'static str> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            UringIo::open(dir.path(), UringOptions::default())
                .err()
                .map(|e| e.to_string())
        })
        .as_deref()
}

/// Whether a test needing io_uring can run; if not, says so on stderr
/// (written directly, so the test harness does not swallow it).
pub fn uring_or_skip(test: &str) -> bool {
    match uring_unavailable() {
        None => true,
        Some(why) => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: io_uring cannot be used on this machine ({why})"
            );
            false
        }
    }
}

/// Small segments, so a few dozen entries span several files.
pub fn opts() -> LogOptions {
    LogOptions { segment_bytes: 512 }
}

pub fn try_open_with(
    disk: Disk,
    dir: &Path,
    opts: LogOptions,
) -> Result<(SegmentedLog, Replay), StoreError> {
    match disk {
        Disk::Uring => SegmentedLog::open_with(dir, opts, BackendChoice::Uring),
        Disk::Blocking => SegmentedLog::open_with(dir, opts, BackendChoice::Blocking),
        Disk::UringUnregistered => {
            fs::create_dir_all(dir).expect("create log dir");
            let no_buffers = UringOptions {
                registered_buffers: 0,
                ..UringOptions::default()
            };
            let io = UringIo::open(dir, no_buffers).expect("io_uring was available");
            SegmentedLog::open_with_io(dir, opts, Box::new(io))
        }
    }
}

pub fn try_open(disk: Disk, dir: &Path) -> Result<(SegmentedLog, Replay), StoreError> {
    try_open_with(disk, dir, opts())
}

pub fn open(disk: Disk, dir: &Path) -> (SegmentedLog, Replay) {
    try_open(disk, dir).expect("open log")
}

pub fn entry(term: Term, index: Index) -> Entry {
    Entry {
        term,
        index,
        payload: Payload::Command(format!("command {index} of term {term}").into_bytes()),
    }
}

pub fn entries(term: Term, indices: impl IntoIterator<Item = Index>) -> Vec<Entry> {
    indices.into_iter().map(|i| entry(term, i)).collect()
}

pub fn meta(index: Index, term: Term) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term,
        membership: Membership::new(vec![1, 2, 3], vec![]),
    }
}

/// Appends `entries` in batches of `batch`, each with a hard state, syncing each batch.
pub fn write(log: &mut SegmentedLog, entries: &[Entry], batch: usize) {
    for chunk in entries.chunks(batch) {
        let mut records: Vec<Record> = chunk.iter().cloned().map(Record::Entry).collect();
        let term = chunk.last().map_or(0, |e| e.term);
        records.push(Record::HardState(HardState {
            term,
            vote: Some(1),
        }));
        log.append(&records).expect("append");
        log.sync().expect("sync");
    }
}

/// Segment files in `dir`, oldest first.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    files_ending(dir, ".seg")
}

pub fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    files_ending(dir, ".snap")
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(suffix)))
        .collect();
    found.sort();
    found
}

/// What replaying `files` (with the last cut to `last`) must recover: the
/// model the store is checked against.
pub fn expected_replay(files: &[PathBuf], last: &[u8]) -> Replay {
    let mut replay = Replay::default();
    let (init, _) = files.split_at(files.len() - 1);
    for path in init {
        let bytes = fs::read(path).expect("read segment");
        for rec in wal::scan(&bytes).records {
            replay.apply(&rec).expect("valid log");
        }
    }
    for rec in wal::scan(last).records {
        replay.apply(&rec).expect("valid log");
    }
    replay
}

pub fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).expect("read");
    bytes[offset] ^= 0x5A;
    fs::write(path, bytes).expect("write");
}

/// One segment for everything, so a crash's damage (or a sync's write) is all in one file.
pub fn one_segment() -> LogOptions {
    LogOptions {
        segment_bytes: 64 << 20,
    }
}

/// A small deterministic generator: tests replay exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

/// 100 entries of 10 kB each: one batch larger than the log's write buffer.
pub fn large_entries() -> Vec<Entry> {
    (1..=100)
        .map(|index| Entry {
            term: 1,
            index,
            payload: Payload::Command(vec![index as u8; 10_000]),
        })
        .collect()
}
