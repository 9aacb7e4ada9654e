//! Crash consistency of the block-aligned writer. A sync rewrites the
//! segment's partial last block and appends whole, zero-padded blocks; a
//! crash may leave any mix of old and new sectors of that write, with the file
//! extended or not. Reopening must recover every record synced before, a
//! prefix of the rest, and exactly what replaying the bytes left recovers.

#[macro_use]
mod common;

use common::*;
use govfs_core::raft::Entry;
use govfs_core::wal::{self, Record};
use govfs_engine::io::{BLOCK, WRITE_BUFFER_BYTES};
use govfs_engine::log_store::LogStore;
use std::fs;
use std::path::{Path, PathBuf};

/// The unit a disk writes atomically, at the least.
const SECTOR: usize = 512;

/// Writes `before` in syncs of three, then `last` in one sync. Returns the
/// segment and its bytes before and after the last sync.
fn before_and_after(
    disk: Disk,
    dir: &Path,
    before: &[Entry],
    last: &[Entry],
) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let (mut log, _) = try_open_with(disk, dir, one_segment()).unwrap();
    write(&mut log, before, 3);
    let path = segment_files(dir).pop().unwrap();
    let old = fs::read(&path).unwrap();
    write(&mut log, last, last.len());
    let new = fs::read(&path).unwrap();
    assert_eq!(segment_files(dir).len(), 1);
    (path, old, new)
}

/// Reopens after the segment at `path` was left as `bytes`, checks what
/// came back, and that the log still takes writes. Returns the entries.
fn reopen_and_check(
    disk: Disk,
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    all: &[Entry],
) -> Vec<Entry> {
    fs::write(path, bytes).unwrap();
    let (mut log, replay) = try_open_with(disk, dir, one_segment()).unwrap();
    assert_eq!(replay, expected_replay(&[path.to_path_buf()], bytes));
    assert!(all.starts_with(&replay.entries));
    let next = entry(1, replay.last_index() + 1);
    log.append(&[Record::Entry(next.clone())]).unwrap();
    log.sync().unwrap();
    drop(log);
    let (_, again) = try_open_with(disk, dir, one_segment()).unwrap();
    let mut expected = replay.entries.clone();
    expected.push(next);
    assert_eq!(again.entries, expected);
    replay.entries
}

fn torn_sectors_keep_what_was_synced_before(disk: Disk) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // The last sync: within the partial block, across a few blocks from it,
    // and many blocks from near a block's end.
    for (n_before, n_last) in [(7, 1), (7, 40), (60, 300)] {
        let dir = tempfile::tempdir().unwrap();
        let all = entries(1, 1..=n_before + n_last);
        let (before, last) = all.split_at(n_before as usize);
        let (path, old, new) = before_and_after(disk, dir.path(), before, last);
        assert_eq!(new.len() % BLOCK, 0, "the writer pads to whole blocks");
        assert!(old.len() <= new.len());
        for _ in 0..24 {
            // Each sector of the write is old or new; the size change may be lost.
            let len = if rng.coin() { new.len() } else { old.len() };
            let torn: Vec<u8> = (0..len)
                .step_by(SECTOR)
                .flat_map(|at| {
                    let end = (at + SECTOR).min(len);
                    if rng.coin() {
                        new[at..end].to_vec()
                    } else {
                        let mut sector = old.get(at..end.min(old.len())).unwrap_or(&[]).to_vec();
                        sector.resize(end - at, 0);
                        sector
                    }
                })
                .collect();
            let got = reopen_and_check(disk, dir.path(), &path, &torn, &all);
            assert!(
                got.starts_with(before),
                "lost entries synced before the torn write"
            );
        }
    }
}

fn cut_or_zeroed_blocks_recover_a_prefix(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    let all = entries(1, 1..=200);
    let (before, last) = all.split_at(150);
    let (path, old, new) = before_and_after(disk, dir.path(), before, last);
    let first_block = old.len().saturating_sub(BLOCK);
    for at in (first_block..new.len()).step_by(BLOCK) {
        reopen_and_check(disk, dir.path(), &path, &new[..at], &all);
        let mut zeroed = new.clone();
        zeroed[at..at + BLOCK].fill(0);
        reopen_and_check(disk, dir.path(), &path, &zeroed, &all);
    }
}

fn closed_segments_carry_no_padding(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(disk, dir.path());
    write(&mut log, &entries(1, 1..=80), 3);
    let files = segment_files(dir.path());
    assert!(files.len() >= 4);
    let (last, closed) = files.split_last().unwrap();
    for path in closed {
        let bytes = fs::read(path).unwrap();
        assert_eq!(
            wal::scan(&bytes).valid_len,
            bytes.len(),
            "{}",
            path.display()
        );
    }
    assert_eq!(fs::metadata(last).unwrap().len() % BLOCK as u64, 0);
    drop(log);
    assert_eq!(open(disk, dir.path()).1.entries, entries(1, 1..=80));
}

fn a_batch_larger_than_the_write_buffer_is_written_in_parts(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    let all = large_entries();
    {
        let (mut log, _) = try_open_with(disk, dir.path(), one_segment()).unwrap();
        write(&mut log, &all[..1], 1);
        let records: Vec<Record> = all[1..].iter().cloned().map(Record::Entry).collect();
        log.append(&records).unwrap();
        let written = log.sync().unwrap();
        assert!(written > 3 * WRITE_BUFFER_BYTES);
    }
    let (_, replay) = try_open_with(disk, dir.path(), one_segment()).unwrap();
    assert_eq!(replay.entries, all);
}

on_every_disk!(
    torn_sectors_keep_what_was_synced_before,
    cut_or_zeroed_blocks_recover_a_prefix,
    closed_segments_carry_no_padding,
    a_batch_larger_than_the_write_buffer_is_written_in_parts,
);
