//! The asynchronous sync path: `DiskIo::submit_write_and_sync` and friends,
//! and `SegmentedLog::{start_sync, poll_sync, finish_sync}`. Every test runs
//! on io_uring (registered and unregistered buffers; skipped, saying so,
//! where io_uring is unavailable) and on the blocking backend, whose
//! "asynchronous" sync is done at submit time and reported at the next poll.

#[macro_use]
mod common;

use common::*;
use govfs_core::raft::{Entry, HardState};
use govfs_core::wal::Record;
use govfs_engine::io::{
    BlockingIo, DiskError, DiskIo, OpenMode, UringIo, UringOptions, BLOCK, WRITE_BUFFER_BYTES,
};
use govfs_engine::log_store::{LogStore, SegmentedLog, SyncTicket};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

fn backend(disk: Disk, dir: &Path) -> Box<dyn DiskIo> {
    match disk {
        Disk::Blocking => Box::new(BlockingIo::new(None)),
        Disk::Uring => Box::new(UringIo::open(dir, UringOptions::default()).unwrap()),
        Disk::UringUnregistered => {
            let opts = UringOptions {
                registered_buffers: 0,
                ..UringOptions::default()
            };
            Box::new(UringIo::open(dir, opts).unwrap())
        }
    }
}

/// Polls until `done` says so, failing the test after ten seconds.
fn until(mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no completion in 10 s"
        );
        std::thread::yield_now();
    }
}

/// Polls the log until its sync in flight is durable; returns the ticket.
fn poll_until_durable(log: &mut SegmentedLog) -> SyncTicket {
    let mut got = None;
    until(|| {
        got = log.poll_sync().unwrap();
        got.is_some()
    });
    got.unwrap()
}

/// `entries` and a hard state of their term, as one batch of records.
fn batch(entries: &[Entry]) -> Vec<Record> {
    let mut records: Vec<Record> = entries.iter().cloned().map(Record::Entry).collect();
    let term = entries.last().map_or(1, |e| e.term);
    records.push(Record::HardState(HardState {
        term,
        vote: Some(1),
    }));
    records
}

fn disk_io_submit_poll_and_wait(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    let mut io = backend(disk, dir.path());
    let path = dir.path().join("data");
    let file = io.open(&path, OpenMode::CreateNew).unwrap();
    let mut buf = io.buffer(WRITE_BUFFER_BYTES);
    buf.fill_from(&[0xA5; 2 * BLOCK]);

    let first = io.submit_write_and_sync(&file, 0, &buf).unwrap();
    assert_eq!(io.in_flight(), 1);
    let mut out = Vec::new();
    until(|| {
        io.poll_completions(&mut out);
        !out.is_empty()
    });
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, first);
    assert!(out[0].1.is_ok(), "{:?}", out[0].1);
    assert_eq!(io.in_flight(), 0);
    // Reaped once only.
    out.clear();
    io.poll_completions(&mut out);
    assert!(out.is_empty());
    assert!(matches!(
        io.wait_completion(first),
        Err(DiskError::UnknownSubmission { .. })
    ));

    // Waiting reaps a submission; a later poll does not report it again.
    let second = io
        .submit_write_and_sync(&file, 2 * BLOCK as u64, &buf)
        .unwrap();
    assert!(second > first);
    io.wait_completion(second).unwrap();
    io.poll_completions(&mut out);
    assert!(out.is_empty());
    assert_eq!(fs::read(&path).unwrap(), vec![0xA5; 4 * BLOCK]);

    // A blocking write while an asynchronous one is in flight leaves the
    // latter's completion for its own reaping.
    let mut other = io.buffer(BLOCK);
    other.fill_from(&[0x5A; BLOCK]);
    let fourth = io
        .submit_write_and_sync(&file, 4 * BLOCK as u64, &buf)
        .unwrap();
    io.write_at_and_sync(&file, 6 * BLOCK as u64, &other)
        .unwrap();
    io.wait_completion(fourth).unwrap();
    let mut expected = vec![0xA5; 6 * BLOCK];
    expected.extend([0x5A; BLOCK]);
    assert_eq!(fs::read(&path).unwrap(), expected);

    // An empty buffer is a bare fdatasync.
    let empty = io.buffer(BLOCK);
    let third = io.submit_write_and_sync(&file, 0, &empty).unwrap();
    io.wait_completion(third).unwrap();

    if file.direct() {
        let mut odd = io.buffer(BLOCK);
        odd.fill_from(&[1; 100]);
        assert!(matches!(
            io.submit_write_and_sync(&file, 0, &odd),
            Err(DiskError::Unaligned { .. })
        ));
        assert_eq!(io.in_flight(), 0);
    }
}

fn start_sync_reports_busy_and_nothing_to_do(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(disk, dir.path());
    // A fresh log's head (hard state) is buffered: the first sync writes it.
    let t0 = log.start_sync().unwrap().expect("the head is unsynced");
    log.finish_sync(t0).unwrap();
    assert_eq!(log.durable_ticket(), Some(t0));
    assert_eq!(log.start_sync().unwrap(), None, "nothing appended");
    assert_eq!(log.poll_sync().unwrap(), None, "nothing in flight");

    log.append(&batch(&entries(1, 1..=3))).unwrap();
    let t1 = log.start_sync().unwrap().unwrap();
    assert!(t1 > t0);
    assert!(log.sync_in_flight());
    log.append(&batch(&entries(1, 4..=6))).unwrap();
    assert_eq!(log.start_sync().unwrap(), None, "busy");
    assert_eq!(poll_until_durable(&mut log), t1);
    assert!(!log.sync_in_flight());
    log.finish_sync(t1).unwrap();

    // The blocking sync waits for the one in flight, then syncs the rest.
    let t2 = log.start_sync().unwrap().unwrap();
    log.append(&batch(&entries(1, 7..=9))).unwrap();
    assert!(log.sync().unwrap() > 0);
    assert!(!log.sync_in_flight());
    assert_eq!(log.durable_ticket(), Some(t2));
    // So does compaction (nothing to compact here).
    log.append(&batch(&entries(1, 10..=12))).unwrap();
    log.start_sync().unwrap().unwrap();
    assert_eq!(log.compact(0).unwrap(), 0);
    assert!(!log.sync_in_flight());
    drop(log);
    assert_eq!(open(disk, dir.path()).1.entries, entries(1, 1..=12));
}

/// Appends in batches, starting a sync whenever none is in flight and
/// polling between batches. After a reopen every entry a reaped ticket
/// covered is there; later ones may be.
fn reaped_syncs_survive_a_reopen(disk: Disk) {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for round in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let all = entries(1, 1..=300);
        let mut covered: BTreeMap<SyncTicket, usize> = BTreeMap::new();
        let mut durable = 0;
        let mut appended = 0;
        {
            let (mut log, _) = open(disk, dir.path());
            while appended < all.len() {
                let n = (1 + rng.below(12) as usize).min(all.len() - appended);
                log.append(&batch(&all[appended..appended + n])).unwrap();
                appended += n;
                if let Some(ticket) = log.start_sync().unwrap() {
                    covered.insert(ticket, appended);
                }
                // Some CPU work while the disk syncs.
                std::hint::black_box((0..rng.below(20_000)).sum::<u64>());
                if let Some(ticket) = log.poll_sync().unwrap() {
                    durable = covered[&ticket];
                }
            }
            if round % 2 == 0 {
                if log.sync_in_flight() {
                    durable = covered[&poll_until_durable(&mut log)];
                }
                // Appended but never synced: may be lost.
                log.append(&batch(&entries(1, 301..=310))).unwrap();
            }
            // Dropped with a sync possibly in flight and never reaped.
        }
        let (_, replay) = open(disk, dir.path());
        let mut everything = all.clone();
        everything.extend(entries(1, 301..=310));
        assert!(everything.starts_with(&replay.entries));
        assert!(
            replay.entries.len() >= durable,
            "round {round}: {} entries back, {durable} were durable",
            replay.entries.len()
        );
    }
}

/// Random batches with random interleavings of start, poll and finish end,
/// after a final finish, where syncing each batch synchronously ends: in the
/// same replay, live and after a reopen. Small segments, so rolls happen.
fn interleaved_async_equals_sync(disk: Disk) {
    for seed in [1u64, 0xDEAD_BEEF, 0x1234_5678_9ABC] {
        let mut rng = Rng(seed);
        let a_dir = tempfile::tempdir().unwrap();
        let b_dir = tempfile::tempdir().unwrap();
        let (mut a, _) = open(disk, a_dir.path());
        let (mut b, _) = open(disk, b_dir.path());
        let mut term = 1;
        let mut next = 1;
        let mut last_ticket = None;
        for _ in 0..150 {
            // Sometimes a new term overwrites the last few entries.
            if next > 4 && rng.below(10) == 0 {
                term += 1;
                next -= rng.below(3) + 1;
            }
            let max = if rng.below(8) == 0 { 60 } else { 6 };
            let n = 1 + rng.below(max);
            let records = batch(&entries(term, next..next + n));
            next += n;
            a.append(&records).unwrap();
            b.append(&records).unwrap();
            b.sync().unwrap();
            match rng.below(5) {
                0 | 1 => {
                    if let Some(t) = a.start_sync().unwrap() {
                        last_ticket = Some(t);
                    }
                }
                2 => {
                    a.poll_sync().unwrap();
                }
                3 => {
                    if let Some(t) = last_ticket {
                        a.finish_sync(t).unwrap();
                        assert!(!a.sync_in_flight());
                    }
                }
                _ => {}
            }
        }
        if let Some(t) = a.start_sync().unwrap() {
            a.finish_sync(t).unwrap();
        }
        if a.sync_in_flight() {
            a.finish_sync(last_ticket.unwrap()).unwrap();
            // Busy before: what it left is synced now.
            let t = a.start_sync().unwrap().unwrap();
            a.finish_sync(t).unwrap();
        }
        assert!(!a.sync_in_flight());
        assert_eq!(a.start_sync().unwrap(), None, "all synced");
        assert!(a.segment_paths().len() > 3, "rolled segments");
        drop((a, b));
        let (_, a_replay) = open(disk, a_dir.path());
        let (_, b_replay) = open(disk, b_dir.path());
        assert_eq!(a_replay, b_replay, "seed {seed}");
        assert_eq!(a_replay.last_index(), next - 1);
    }
}

/// A sync is started and never reaped; the log is dropped (a crash of the
/// process, as far as the log knows), and the segment is then cut at random
/// offsets (what a power loss may leave of the unsynced write). Reopening
/// recovers exactly what replaying the bytes left recovers: a prefix, with
/// everything durable before the cut point kept.
fn unreaped_sync_then_torn_recovers_a_prefix(disk: Disk) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let dir = tempfile::tempdir().unwrap();
    let all = entries(1, 1..=120);
    let (durable, durable_len) = {
        let (mut log, _) = try_open_with(disk, dir.path(), one_segment()).unwrap();
        let mut at = 0;
        let mut durable = (0, 0);
        while at < 100 {
            let n = 1 + rng.below(9) as usize;
            log.append(&batch(&all[at..at + n])).unwrap();
            at += n;
            let t = log.start_sync().unwrap().unwrap();
            log.finish_sync(t).unwrap();
            let path = segment_files(dir.path()).pop().unwrap();
            durable = (at, fs::metadata(&path).unwrap().len());
        }
        log.append(&batch(&all[at..])).unwrap();
        log.start_sync().unwrap().unwrap();
        assert!(log.sync_in_flight());
        durable
    };
    let path = segment_files(dir.path()).pop().unwrap();
    let full = fs::read(&path).unwrap();
    assert!(full.len() as u64 >= durable_len);
    for i in 0..40 {
        let cut = match i {
            0 => full.len(),
            1 => durable_len as usize,
            _ => rng.below(full.len() as u64 + 1) as usize,
        };
        fs::write(&path, &full[..cut]).unwrap();
        let (mut log, replay) = try_open_with(disk, dir.path(), one_segment()).unwrap();
        assert_eq!(
            replay,
            expected_replay(std::slice::from_ref(&path), &full[..cut])
        );
        assert!(all.starts_with(&replay.entries), "cut at {cut}");
        if cut as u64 >= durable_len {
            assert!(replay.entries.len() >= durable, "cut at {cut}");
        }
        if cut == full.len() {
            assert_eq!(replay.entries, all, "the unreaped sync completed");
        }
        // The recovered log takes asynchronous syncs again.
        let next = entry(1, replay.last_index() + 1);
        log.append(&[Record::Entry(next)]).unwrap();
        let t = log.start_sync().unwrap().unwrap();
        log.finish_sync(t).unwrap();
    }
}

/// A batch larger than the write buffer: the leading buffers are written
/// before `start_sync` returns, the last one is submitted.
fn a_large_batch_syncs_asynchronously(disk: Disk) {
    let dir = tempfile::tempdir().unwrap();
    let all = large_entries();
    {
        let (mut log, _) = try_open_with(disk, dir.path(), one_segment()).unwrap();
        log.append(&batch(&all[..1])).unwrap();
        let t = log.start_sync().unwrap().unwrap();
        log.append(&batch(&all[1..])).unwrap();
        poll_until_durable(&mut log);
        log.finish_sync(t).unwrap();
        let t = log.start_sync().unwrap().unwrap();
        poll_until_durable(&mut log);
        assert_eq!(log.durable_ticket(), Some(t));
    }
    let (_, replay) = try_open_with(disk, dir.path(), one_segment()).unwrap();
    assert_eq!(replay.entries, all);
}

on_every_disk!(
    disk_io_submit_poll_and_wait,
    start_sync_reports_busy_and_nothing_to_do,
    reaped_syncs_survive_a_reopen,
    interleaved_async_equals_sync,
    unreaped_sync_then_torn_recovers_a_prefix,
    a_large_batch_syncs_asynchronously,
);
