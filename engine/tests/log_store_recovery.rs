//! Recovery of the segmented log: reopening, torn tails, corruption, overwrites.

#[macro_use]
mod common;

use common::*;
use govfs_core::raft::HardState;
use govfs_core::wal::{self, Record};
use govfs_engine::log_store::{Corruption, LogStore, StoreError};
use std::fs;

fn reopen_recovers_entries_across_segments(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    let all = entries(1, 1..=60);
    {
        let (mut log, replay) = open(disk, dir.path());
        assert!(replay.entries.is_empty());
        write(&mut log, &all[..40], 3);
    }
    assert!(
        segment_files(dir.path()).len() >= 3,
        "small segments should roll"
    );
    {
        let (mut log, replay) = open(disk, dir.path());
        assert_eq!(replay.entries, all[..40]);
        write(&mut log, &all[40..], 7);
    }
    let (_, replay) = open(disk, dir.path());
    assert_eq!(replay.entries, all);
    assert_eq!(
        replay.hard_state,
        HardState {
            term: 1,
            vote: Some(1)
        }
    );
    assert_eq!(replay.snapshot, None);
}

fn unsynced_appends_are_not_recovered(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = open(disk, dir.path());
        write(&mut log, &entries(1, 1..=5), 5);
        log.append(&[Record::Entry(entry(1, 6))]).unwrap();
    }
    assert_eq!(open(disk, dir.path()).1.entries, entries(1, 1..=5));
}

fn cut_last_segment_anywhere_recovers_a_prefix(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    let all = entries(2, 1..=30);
    write(&mut open(disk, dir.path()).0, &all, 2);
    let files = segment_files(dir.path());
    let last = files.last().unwrap().clone();
    let pristine = fs::read(&last).unwrap();
    let scan = wal::scan(&pristine);
    let from = scan.offsets[scan.offsets.len().saturating_sub(4)];
    // The file ends in block padding; a few cuts into it are as good as all.
    let to = pristine.len().min(scan.valid_len + 2 * wal::HEADER_LEN);
    for cut in (from..=to).chain([pristine.len()]) {
        fs::write(&last, &pristine[..cut]).unwrap();
        let expected = expected_replay(&files, &pristine[..cut]);
        let valid_len = wal::scan(&pristine[..cut]).valid_len;
        let (log, replay) = open(disk, dir.path());
        assert_eq!(replay, expected, "cut at {cut}");
        assert!(all.starts_with(&replay.entries));
        assert_eq!(
            fs::metadata(&last).unwrap().len(),
            valid_len as u64,
            "cut at {cut}"
        );
        drop(log);
    }
}

fn log_keeps_working_after_a_torn_tail(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    write(&mut open(disk, dir.path()).0, &entries(1, 1..=10), 1);
    let last = segment_files(dir.path()).pop().unwrap();
    let bytes = fs::read(&last).unwrap();
    let scan = wal::scan(&bytes);
    let (_, entry_at) = scan
        .records
        .iter()
        .zip(&scan.offsets)
        .rfind(|(r, _)| matches!(r, Record::Entry(_)))
        .unwrap();
    fs::write(&last, &bytes[..entry_at + 5]).unwrap();
    let (mut log, replay) = open(disk, dir.path());
    let recovered = replay.entries.len() as u64;
    assert!(recovered < 10);
    write(&mut log, &entries(1, recovered + 1..=12), 1);
    drop(log);
    assert_eq!(open(disk, dir.path()).1.entries, entries(1, 1..=12));
}

fn flipped_byte_in_last_record_is_cut(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    write(&mut open(disk, dir.path()).0, &entries(1, 1..=20), 1);
    let last = segment_files(dir.path()).pop().unwrap();
    let bytes = fs::read(&last).unwrap();
    let start = *wal::scan(&bytes).offsets.last().unwrap();
    flip_byte(&last, start + wal::HEADER_LEN + 1);
    let (_, replay) = open(disk, dir.path());
    // The last record is the hard state of the last batch; its entry survives.
    assert_eq!(replay.entries, entries(1, 1..=20));
    assert_eq!(fs::metadata(&last).unwrap().len(), start as u64);
}

fn flipped_byte_in_a_middle_segment_is_corruption(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    write(&mut open(disk, dir.path()).0, &entries(1, 1..=40), 1);
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    let middle = &files[1];
    let bytes = fs::read(middle).unwrap();
    let offsets = wal::scan(&bytes).offsets;
    let target = offsets[offsets.len() / 2];
    flip_byte(middle, target + wal::HEADER_LEN);
    match try_open(disk, dir.path()) {
        Err(StoreError::Corrupt {
            segment,
            offset,
            reason: Corruption::Torn(_),
        }) => {
            assert_eq!((&segment, offset), (middle, target as u64));
        }
        other => panic!("expected corruption, got {:?}", other.map(|(_, r)| r)),
    }
    // Nothing was cut.
    assert_eq!(fs::read(middle).unwrap().len(), bytes.len());
}

fn zero_padding_ends_only_the_last_segment(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    write(&mut open(disk, dir.path()).0, &entries(1, 1..=40), 1);
    let files = segment_files(dir.path());
    let pad = |path: &std::path::Path| {
        let mut bytes = fs::read(path).unwrap();
        bytes.extend_from_slice(&[0; 100]);
        fs::write(path, bytes).unwrap();
    };
    let last = files.last().unwrap();
    // The writer's own block padding and the extra zeros are cut alike.
    let len = wal::scan(&fs::read(last).unwrap()).valid_len;
    pad(last);
    assert_eq!(open(disk, dir.path()).1.entries, entries(1, 1..=40));
    assert_eq!(fs::metadata(last).unwrap().len(), len as u64);
    pad(&files[0]);
    assert!(matches!(
        try_open(disk, dir.path()),
        Err(StoreError::Corrupt {
            reason: Corruption::Padding { bytes: 100 },
            ..
        })
    ));
}

fn overwrites_and_truncations_survive_reopen(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = open(disk, dir.path());
        write(&mut log, &entries(1, 1..=30), 4);
        // A new leader replaces the suffix from 12 on, across segment boundaries.
        write(&mut log, &entries(2, 12..=20), 2);
    }
    let mut expected = entries(1, 1..=11);
    expected.extend(entries(2, 12..=20));
    {
        let (mut log, replay) = open(disk, dir.path());
        assert_eq!(replay.entries, expected);
        assert_eq!(replay.hard_state.term, 2);
        log.append(&[Record::Truncate { from: 15 }]).unwrap();
        log.sync().unwrap();
    }
    expected.truncate(14);
    assert_eq!(open(disk, dir.path()).1.entries, expected);
}

fn an_empty_segment_left_by_a_crashed_roll_is_reused(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    write(&mut open(disk, dir.path()).0, &entries(1, 1..=20), 2);
    let files = segment_files(dir.path());
    let last = files.last().unwrap();
    // A roll first cuts the block padding off the segment it closes.
    let valid_len = wal::scan(&fs::read(last).unwrap()).valid_len;
    fs::File::options()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(valid_len as u64)
        .unwrap();
    let next = last.with_file_name(format!("log-{:020}.seg", files.len()));
    fs::write(&next, []).unwrap();
    {
        let (mut log, replay) = open(disk, dir.path());
        assert_eq!(replay.entries, entries(1, 1..=20));
        write(&mut log, &entries(1, 21..=22), 2);
    }
    assert_eq!(open(disk, dir.path()).1.entries, entries(1, 1..=22));
    assert_eq!(segment_files(dir.path()).len(), files.len() + 1);
}

fn records_that_would_break_replay_are_refused(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(disk, dir.path());
    write(&mut log, &entries(3, 1..=3), 3);
    let refused = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Refused(_)));
    assert!(refused(log.append(&[Record::HardState(HardState {
        term: 2,
        vote: None
    })])));
    assert!(matches!(
        log.append(&[Record::Snapshot(meta(2, 3))]),
        Err(StoreError::SnapshotNotSaved { index: 2 })
    ));
    // A refused batch leaves nothing behind.
    assert_eq!(log.sync().unwrap(), 0);
}

on_every_disk!(
    reopen_recovers_entries_across_segments,
    unsynced_appends_are_not_recovered,
    cut_last_segment_anywhere_recovers_a_prefix,
    log_keeps_working_after_a_torn_tail,
    flipped_byte_in_last_record_is_cut,
    flipped_byte_in_a_middle_segment_is_corruption,
    zero_padding_ends_only_the_last_segment,
    overwrites_and_truncations_survive_reopen,
    an_empty_segment_left_by_a_crashed_roll_is_reused,
    records_that_would_break_replay_are_refused,
);
