//! Helpers shared by the log store tests.
#![allow(dead_code)] // each test binary uses a different subset

use govfs_core::raft::{Entry, HardState, Index, Membership, Payload, SnapshotMeta, Term};
use govfs_core::wal::{self, Record, Replay};
use govfs_engine::log_store::{LogOptions, LogStore, SegmentedLog};
use std::fs;
use std::path::{Path, PathBuf};

/// Small segments, so a few dozen entries span several files.
pub fn opts() -> LogOptions {
    LogOptions { segment_bytes: 512 }
}

pub fn open(dir: &Path) -> (SegmentedLog, Replay) {
    SegmentedLog::open(dir, opts()).expect("open log")
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
