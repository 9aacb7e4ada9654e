//! Snapshot files and compaction of the segmented log.

#[macro_use]
mod common;

use common::*;
use govfs_core::raft::Snapshot;
use govfs_core::wal::{self, Record, TornReason};
use govfs_engine::log_store::{LogStore, SnapshotCorruption, StoreError};
use std::fs;

fn snapshot(index: u64, term: u64) -> Snapshot {
    Snapshot {
        meta: meta(index, term),
        data: format!("state up to {index}").repeat(20).into_bytes(),
    }
}

fn snapshot_round_trips_and_only_the_newest_is_kept(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(disk, dir.path());
    assert_eq!(log.load_snapshot().unwrap(), None);
    write(&mut log, &entries(1, 1..=20), 5);
    log.save_snapshot(&snapshot(10, 1)).unwrap();
    log.save_snapshot(&snapshot(15, 1)).unwrap();
    assert_eq!(log.load_snapshot().unwrap(), Some(snapshot(15, 1)));
    assert_eq!(snapshot_files(dir.path()).len(), 1);
    assert!(matches!(
        log.save_snapshot(&snapshot(12, 1)),
        Err(StoreError::Refused(_))
    ));
    log.sync().unwrap();
    drop(log);
    let (log, replay) = open(disk, dir.path());
    assert_eq!(replay.snapshot, Some(meta(15, 1)));
    assert_eq!(replay.entries, entries(1, 16..=20));
    assert_eq!(log.load_snapshot().unwrap(), Some(snapshot(15, 1)));
}

fn corrupt_snapshot_is_detected(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(disk, dir.path());
    log.save_snapshot(&snapshot(5, 1)).unwrap();
    let path = snapshot_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&path).unwrap().len() as usize;
    flip_byte(&path, len - 3);
    assert!(matches!(
        log.load_snapshot(),
        Err(StoreError::CorruptSnapshot {
            reason: SnapshotCorruption::Frame(TornReason::CrcMismatch { .. }),
            ..
        })
    ));
    flip_byte(&path, len - 3);
    fs::write(&path, &fs::read(&path).unwrap()[..len - 1]).unwrap();
    assert!(matches!(
        log.load_snapshot(),
        Err(StoreError::CorruptSnapshot {
            reason: SnapshotCorruption::Frame(TornReason::ShortBody { .. }),
            ..
        })
    ));
    // A file named for another index than it holds.
    fs::rename(
        &path,
        path.with_file_name(format!("snapshot-{:020}.snap", 6)),
    )
    .unwrap();
    assert!(matches!(
        log.load_snapshot(),
        Err(StoreError::CorruptSnapshot {
            reason: SnapshotCorruption::IndexMismatch { named: 6, found: 5 },
            ..
        })
    ));
}

fn snapshot_saved_but_marker_not_synced_is_applied_on_open(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = open(disk, dir.path());
        write(&mut log, &entries(1, 1..=20), 5);
        // Crash before the marker is synced.
        log.save_snapshot(&snapshot(12, 1)).unwrap();
    }
    let (_, replay) = open(disk, dir.path());
    assert_eq!(replay.snapshot, Some(meta(12, 1)));
    assert_eq!(replay.entries, entries(1, 13..=20));
    // Open appended the missing marker; once synced, the log says it itself.
    let (mut log, _) = open(disk, dir.path());
    log.sync().unwrap();
    assert_eq!(open(disk, dir.path()).1.snapshot, Some(meta(12, 1)));
}

fn a_snapshot_that_disagrees_with_the_log_replaces_it(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = open(disk, dir.path());
        write(&mut log, &entries(1, 1..=20), 5);
        // A leader's snapshot at 15 from term 2: this follower's entry 15 is stale.
        log.save_snapshot(&snapshot(15, 2)).unwrap();
        log.sync().unwrap();
    }
    let (_, replay) = open(disk, dir.path());
    assert_eq!(
        (replay.snapshot, replay.entries),
        (Some(meta(15, 2)), vec![])
    );
}

fn missing_snapshot_file_is_an_error(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = open(disk, dir.path());
        write(&mut log, &entries(1, 1..=10), 5);
        log.save_snapshot(&snapshot(8, 1)).unwrap();
        log.sync().unwrap();
    }
    fs::remove_file(snapshot_files(dir.path()).pop().unwrap()).unwrap();
    assert!(matches!(
        try_open(disk, dir.path()),
        Err(StoreError::MissingSnapshot { marker: 8, file: 0 })
    ));
}

fn compact_deletes_covered_segments_and_reopen_agrees(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(disk, dir.path());
    write(&mut log, &entries(1, 1..=100), 3);
    let before = segment_files(dir.path());
    assert!(before.len() >= 5);
    // Nothing is covered before a snapshot exists.
    assert_eq!(log.compact(100).unwrap(), 0);
    log.save_snapshot(&snapshot(60, 1)).unwrap();
    // Keep a trailing log: only segments with entries at or below 30 may go.
    let deleted = log.compact(30).unwrap();
    assert!(deleted > 0);
    let after = segment_files(dir.path());
    assert_eq!(after, log.segment_paths());
    assert_eq!(after[0], before[deleted]);
    // Deletion went as far as it could: the oldest survivor holds an entry above 30.
    let survivor = wal::scan(&fs::read(&after[0]).unwrap()).records;
    assert!(survivor
        .iter()
        .any(|r| matches!(r, Record::Entry(e) if e.index > 30)));
    drop(log);
    let (mut log, replay) = open(disk, dir.path());
    assert_eq!(replay.snapshot, Some(meta(60, 1)));
    assert_eq!(replay.entries, entries(1, 61..=100));
    // Compacting beyond the snapshot stops at the snapshot.
    let deleted = log.compact(1000).unwrap();
    assert!(deleted > 0);
    write(&mut log, &entries(1, 101..=110), 5);
    drop(log);
    let (log, replay) = open(disk, dir.path());
    assert_eq!(replay.entries, entries(1, 61..=110));
    assert_eq!(replay.hard_state.term, 1);
    assert_eq!(log.load_snapshot().unwrap(), Some(snapshot(60, 1)));
}

fn compact_after_snapshot_beyond_the_log_empties_it(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(disk, dir.path());
    write(&mut log, &entries(1, 1..=50), 5);
    // Installed from a leader far ahead.
    log.save_snapshot(&snapshot(500, 3)).unwrap();
    log.compact(500).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    log.append(&[Record::Entry(entry(3, 501))]).unwrap();
    log.sync().unwrap();
    drop(log);
    let (_, replay) = open(disk, dir.path());
    assert_eq!(replay.snapshot, Some(meta(500, 3)));
    assert_eq!(replay.entries, vec![entry(3, 501)]);
}

on_every_disk!(
    snapshot_round_trips_and_only_the_newest_is_kept,
    corrupt_snapshot_is_detected,
    snapshot_saved_but_marker_not_synced_is_applied_on_open,
    a_snapshot_that_disagrees_with_the_log_replaces_it,
    missing_snapshot_file_is_an_error,
    compact_deletes_covered_segments_and_reopen_agrees,
    compact_after_snapshot_beyond_the_log_empties_it,
);
