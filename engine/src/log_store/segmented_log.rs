//! [`SegmentedLog`]: the [`LogStore`] in segment files, written through a
//! [`DiskIo`] backend (io_uring with `O_DIRECT`, or blocking IO).
//!
//! `O_DIRECT` writes whole, aligned blocks, so the writer keeps the current
//! segment's last partial block in an aligned buffer (`tail`). A sync appends
//! the new records to it and writes from that block's start, zero-padded to
//! the next block boundary, linked to one `fdatasync`:
//!
//! ```text
//!  ...  block k-1    | block k                   | block k+1             |
//!  ...  old records  | old bytes | new records   | new records | 0 0 0 0 |
//!                    ^ the write starts here                   ^ file_len after
//! ```
//!
//! Rewriting the old bytes of block k is safe against a torn write: they are
//! written unchanged, so each sector holds the old or the new contents and
//! both have them. What a crash can leave after `file_len` (a torn new record,
//! blocks written out of order, zero padding) replay cuts as a torn or padded
//! tail of the last segment. Before a segment stops being the last, its
//! padding is cut off, since zeros at the end of a closed segment would mean
//! lost records.
//!
//! # Asynchronous sync
//!
//! Besides the blocking [`LogStore::sync`], a caller may start a sync and
//! learn later that it is durable: [`SegmentedLog::start_sync`] writes the
//! same bytes (submitting the last write, linked to its `fdatasync`, without
//! waiting), [`SegmentedLog::poll_sync`] reports its completion without
//! blocking, and [`SegmentedLog::finish_sync`] waits for it. At most one sync
//! is in flight per log. Meanwhile appends only encode into the in-memory
//! batch, so the padded `tail` block the kernel is reading is never touched:
//! it is cut back to the partial block when the sync completes. Everything
//! that does touch it (a blocking sync, a segment roll, compaction) first
//! waits for the sync in flight. Only io_uring overlaps the disk with the
//! caller's work; with the blocking backend `start_sync` does the write and
//! the `fdatasync` itself and `poll_sync` reports them done.

use super::error::{disk_err, io_err, Corruption, StoreError};
use super::files::{self, SEGMENT};
use super::segment::{self, SegmentInfo};
use super::{snapshot_file, LogOptions, LogStore};
use crate::io::{
    self, AlignedBuf, BackendChoice, Chosen, Completion, DiskError, DiskIo, IoFile, OpenMode,
    SubmissionId, BLOCK, WRITE_BUFFER_BYTES,
};
use govfs_core::raft::{HardState, Index, Snapshot, SnapshotMeta};
use govfs_core::wal::{encode_record, Record, Replay, ReplayError};
use std::fs;
use std::path::{Path, PathBuf};

/// A log in segment files under one directory. Appends are buffered in memory
/// and written by [`LogStore::sync`]; dropping the log loses what was not synced.
pub struct SegmentedLog {
    dir: PathBuf,
    opts: LogOptions,
    io: Box<dyn DiskIo>,
    chosen: Chosen,
    /// Oldest first; the last is the one appended to.
    segments: Vec<SegmentInfo>,
    /// The last segment, opened for writing.
    file: IoFile,
    /// Bytes of records in `file`; the file may be longer by block padding.
    file_len: u64,
    /// The bytes of `file`'s last partial block, from the block boundary
    /// before `file_len` to `file_len` (between syncs; during one, the write).
    tail: AlignedBuf,
    /// Encoded records not yet written.
    buf: Vec<u8>,
    /// Highest entry index in `buf` (0: none).
    buf_max_entry: Index,
    /// Hard state and snapshot as of what is written: the head of the next segment.
    written: Head,
    /// The same, counting `buf` too.
    appended: Head,
    /// Index of the newest snapshot file (0: none).
    saved_snapshot: Index,
    poisoned: bool,
    /// The asynchronous sync whose write+fdatasync is in flight, if any.
    in_flight: Option<InFlight>,
    /// Last ticket handed out by `start_sync` (0: none).
    issued: u64,
    /// Newest ticket known durable.
    durable: Option<SyncTicket>,
    /// Reused for `DiskIo::poll_completions`.
    completions: Vec<Completion>,
}

/// Names one [`SegmentedLog::start_sync`]. Tickets of a log are ordered: a
/// durable ticket means every record appended before its `start_sync` (and
/// so every earlier ticket's) is durable. Meaningless for another log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyncTicket(u64);

impl SyncTicket {
    /// The ticket's number: 1 for a log's first `start_sync` since it opened, then counting up.
    pub fn seq(self) -> u64 {
        self.0
    }
}

/// A started sync: which submission, and how long `tail` was before padding.
#[derive(Debug)]
struct InFlight {
    id: SubmissionId,
    ticket: SyncTicket,
    tail_len: usize,
}

/// What a segment starts with so that replay can begin there.
#[derive(Clone, Debug, Default)]
struct Head {
    hard_state: HardState,
    snapshot: Option<SnapshotMeta>,
}

impl Head {
    fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.index)
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        encode_record(&Record::HardState(self.hard_state), out)?;
        if let Some(meta) = &self.snapshot {
            encode_record(&Record::Snapshot(meta.clone()), out)?;
        }
        Ok(())
    }
}

impl SegmentedLog {
    /// Opens (creating if needed) the log in `dir` and recovers it: replays every
    /// segment in order, cuts a torn tail off the last one, and applies a
    /// snapshot file newer than the log's last marker (a crash between saving
    /// the file and syncing its marker leaves that). Writes go through io_uring
    /// where it can be set up, else through blocking IO ([`BackendChoice::Auto`]).
    pub fn open(dir: &Path, opts: LogOptions) -> Result<(Self, Replay), StoreError> {
        Self::open_with(dir, opts, BackendChoice::Auto)
    }

    /// [`SegmentedLog::open`] with the disk backend `choice`.
    /// [`BackendChoice::Uring`] fails where io_uring cannot be set up.
    pub fn open_with(
        dir: &Path,
        opts: LogOptions,
        choice: BackendChoice,
    ) -> Result<(Self, Replay), StoreError> {
        prepare_dir(dir)?;
        // After `prepare_dir`: the backend probes `O_DIRECT` in `dir`.
        let (io, _) = io::open_backend(choice, dir).map_err(disk_err(dir))?;
        Self::recover(dir, opts, io)
    }

    /// [`SegmentedLog::open`] on a backend the caller set up (tests, benchmarks).
    pub fn open_with_io(
        dir: &Path,
        opts: LogOptions,
        io: Box<dyn DiskIo>,
    ) -> Result<(Self, Replay), StoreError> {
        prepare_dir(dir)?;
        Self::recover(dir, opts, io)
    }

    fn recover(
        dir: &Path,
        opts: LogOptions,
        mut io: Box<dyn DiskIo>,
    ) -> Result<(Self, Replay), StoreError> {
        let (mut segments, mut replay, last) = recover_segments(dir)?;
        let (saved_snapshot, newer_file) = reconcile_snapshot(dir, &mut replay)?;
        if let Some(first) = segments.first() {
            let corrupt = |e| StoreError::Corrupt {
                segment: first.path.clone(),
                offset: 0,
                reason: Corruption::Replay(e),
            };
            replay.finish().map_err(corrupt)?;
        }
        let file = match segments.last() {
            Some(info) => io
                .open(&info.path, OpenMode::Existing)
                .map_err(disk_err(&info.path))?,
            None => {
                let (file, path) = create_segment(&mut *io, dir, 0)?;
                segments.push(SegmentInfo::new(0, path));
                file
            }
        };
        let file_len = last.len;
        let mut tail = io.buffer(WRITE_BUFFER_BYTES);
        tail.fill_from(&last.partial_block);
        let head = Head {
            hard_state: replay.hard_state,
            snapshot: replay.snapshot.clone(),
        };
        let mut buf = Vec::new();
        if file_len == 0 {
            // A fresh directory, or a crash right after a roll.
            head.encode(&mut buf)?;
        } else if let Some(meta) = newer_file {
            encode_record(&Record::Snapshot(meta), &mut buf)?;
        }
        let log = SegmentedLog {
            dir: dir.to_path_buf(),
            opts,
            chosen: io.chosen(),
            io,
            segments,
            file,
            file_len,
            tail,
            buf,
            buf_max_entry: 0,
            written: head.clone(),
            appended: head,
            saved_snapshot,
            poisoned: false,
            in_flight: None,
            issued: 0,
            durable: None,
            completions: Vec::new(),
        };
        Ok((log, replay))
    }

    /// The disk backend this log writes through.
    pub fn disk_io(&self) -> &Chosen {
        &self.chosen
    }

    /// Paths of the segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    fn usable(&self) -> Result<(), StoreError> {
        if self.poisoned {
            Err(StoreError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn last(&self) -> &SegmentInfo {
        self.segments.last().expect("a log always has a segment")
    }

    /// Refuses records that would make the log fail to replay, as far as can
    /// be told without keeping entries in memory. Replay checks the rest.
    fn check(&self, records: &[Record]) -> Result<(), StoreError> {
        let mut snapshot = self.appended.snapshot_index();
        let mut term = self.appended.hard_state.term;
        for rec in records {
            match rec {
                Record::Snapshot(meta) if meta.index > self.saved_snapshot => {
                    return Err(StoreError::SnapshotNotSaved { index: meta.index })
                }
                Record::Snapshot(meta) if meta.index < snapshot => {
                    return Err(ReplayError::SnapshotRegressed {
                        index: meta.index,
                        current: snapshot,
                    }
                    .into())
                }
                Record::Snapshot(meta) => snapshot = meta.index,
                Record::HardState(hs) if hs.term < term => {
                    return Err(ReplayError::TermRegressed {
                        term: hs.term,
                        current: term,
                    }
                    .into())
                }
                Record::HardState(hs) => term = hs.term,
                Record::Entry(e) if e.index <= snapshot => {
                    return Err(ReplayError::BelowSnapshot {
                        index: e.index,
                        snapshot,
                    }
                    .into())
                }
                Record::Truncate { from } if *from <= snapshot => {
                    return Err(ReplayError::BelowSnapshot {
                        index: *from,
                        snapshot,
                    }
                    .into())
                }
                Record::Entry(_) | Record::Truncate { .. } => {}
            }
        }
        Ok(())
    }

    /// Starts a new segment headed by the written hard state and snapshot, so
    /// that deleting older segments never loses the newest of either.
    fn roll(&mut self) -> Result<(), StoreError> {
        // A closed segment must end at its last record: replay reads zeros
        // there as lost data. Cut the block padding before the next segment
        // exists, so a crash never leaves a padded segment that is not last.
        if !self.file_len.is_multiple_of(BLOCK as u64) {
            self.io
                .truncate(&self.file, self.file_len)
                .map_err(disk_err(&self.last().path))?;
        }
        let seq = self.last().seq + 1;
        let mut head = Vec::new();
        self.written.encode(&mut head)?;
        let (file, path) = create_segment(&mut *self.io, &self.dir, seq)?;
        head.extend_from_slice(&self.buf);
        self.buf = head;
        self.segments.push(SegmentInfo::new(seq, path));
        self.file = file;
        self.file_len = 0;
        self.tail.clear();
        Ok(())
    }

    /// Copies `buf` into `tail` after the partial last block, writing each
    /// buffer-full (whole blocks) as it fills, unsynced. Returns the offset
    /// at which what is left in `tail` goes.
    fn fill_tail(&mut self) -> Result<u64, DiskError> {
        debug_assert_eq!(self.tail.len() as u64, self.file_len % BLOCK as u64);
        let mut offset = self.file_len - self.tail.len() as u64;
        let mut rest = &self.buf[..];
        loop {
            let taken = self.tail.fill_from(rest);
            rest = &rest[taken..];
            if rest.is_empty() {
                return Ok(offset);
            }
            // The buffer is full, so it holds whole blocks.
            self.io.write_at(&self.file, offset, &self.tail)?;
            offset += self.tail.len() as u64;
            self.tail.clear();
        }
    }

    /// After `tail` (`len` bytes, then padding) was written: keeps only the
    /// new partial last block.
    fn trim_tail(&mut self, len: usize) {
        self.tail.truncate(len);
        self.tail.consume_front(len - len % BLOCK);
    }

    /// Writes `buf` after `file_len` and makes it durable: from the start of
    /// the partial last block, whole blocks, the last zero-padded, with one
    /// `fdatasync` linked to the last write. A batch larger than the write
    /// buffer goes out in buffer-sized writes first.
    fn write_out(&mut self) -> Result<(), DiskError> {
        let offset = self.fill_tail()?;
        let len = self.tail.pad_to_block();
        self.io.write_at_and_sync(&self.file, offset, &self.tail)?;
        self.trim_tail(len);
        Ok(())
    }

    /// Rolls to a new segment if the last one is full, poisoning the log if
    /// that fails.
    fn roll_if_full(&mut self) -> Result<(), StoreError> {
        if self.file_len >= self.opts.segment_bytes {
            // A roll that failed half way (file created, directory not
            // synced) cannot be retried under the same name.
            if let Err(e) = self.roll() {
                self.poisoned = true;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Poisons the log after a failed write or sync of the last segment.
    fn disk_failed(&mut self, source: DiskError) -> StoreError {
        self.poisoned = true;
        StoreError::Disk {
            path: self.last().path.clone(),
            source,
        }
    }

    /// Moves the batch to the written side once its bytes are handed to the
    /// disk (durable or in flight). Returns its length.
    fn mark_written(&mut self) -> usize {
        let written = self.buf.len();
        self.file_len += written as u64;
        let max_entry = std::mem::take(&mut self.buf_max_entry);
        let last = self
            .segments
            .last_mut()
            .expect("a log always has a segment");
        last.max_entry = last.max_entry.max(max_entry);
        self.buf.clear();
        self.written = self.appended.clone();
        written
    }

    /// Starts making everything appended so far durable, without waiting for
    /// the disk: writes it like [`LogStore::sync`] but only submits the last
    /// write and its linked `fdatasync`. Returns the ticket to wait for, or
    /// `None` when there is nothing to sync or a sync is already in flight
    /// (see [`SegmentedLog::sync_in_flight`]; poll it, then start again).
    ///
    /// Appends go on being buffered while the sync is in flight. A batch
    /// larger than the write buffer (256 KiB) writes its leading full buffers
    /// before returning (unsynced, so without an `fdatasync`'s wait), and a
    /// segment roll happens here, before the submission. With the blocking
    /// backend this does the whole sync before returning.
    pub fn start_sync(&mut self) -> Result<Option<SyncTicket>, StoreError> {
        self.usable()?;
        if self.in_flight.is_some() || self.buf.is_empty() {
            return Ok(None);
        }
        self.roll_if_full()?;
        let submitted = self.fill_tail().and_then(|offset| {
            let len = self.tail.pad_to_block();
            let id = self
                .io
                .submit_write_and_sync(&self.file, offset, &self.tail)?;
            Ok((id, len))
        });
        let (id, tail_len) = submitted.map_err(|e| self.disk_failed(e))?;
        self.mark_written();
        self.issued += 1;
        let ticket = SyncTicket(self.issued);
        self.in_flight = Some(InFlight {
            id,
            ticket,
            tail_len,
        });
        Ok(Some(ticket))
    }

    /// Whether a sync started by [`SegmentedLog::start_sync`] has not been
    /// reaped yet (by `poll_sync`, `finish_sync`, or a blocking call).
    pub fn sync_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// See [`DiskIo::completion_fd`].
    pub fn completion_fd(&self) -> Option<std::os::fd::RawFd> {
        self.io.completion_fd()
    }

    /// The newest ticket known durable (`None`: none since the log opened).
    pub fn durable_ticket(&self) -> Option<SyncTicket> {
        self.durable
    }

    /// Without blocking, checks whether the sync in flight finished. Returns
    /// its ticket if it just became durable; `None` if it is still in flight
    /// or there is none. A failed write or sync poisons the log and is
    /// returned as the error.
    pub fn poll_sync(&mut self) -> Result<Option<SyncTicket>, StoreError> {
        self.usable()?;
        let Some(id) = self.in_flight.as_ref().map(|f| f.id) else {
            return Ok(None);
        };
        let mut completions = std::mem::take(&mut self.completions);
        self.io.poll_completions(&mut completions);
        // This log's backend carries nothing but this log's submissions, and
        // only one of those is ever in flight.
        let ours = completions
            .drain(..)
            .find_map(|(done, result)| (done == id).then_some(result));
        self.completions = completions;
        match ours {
            Some(result) => self.settle(result).map(Some),
            None => Ok(None),
        }
    }

    /// Blocks until `ticket` is durable (at once if it is already).
    ///
    /// # Panics
    ///
    /// If `ticket` was not issued by this log.
    pub fn finish_sync(&mut self, ticket: SyncTicket) -> Result<(), StoreError> {
        self.usable()?;
        if self.durable >= Some(ticket) {
            return Ok(());
        }
        self.wait_in_flight()?;
        assert!(
            self.durable >= Some(ticket),
            "sync ticket {} was not issued by this log",
            ticket.0
        );
        Ok(())
    }

    /// Waits for the sync in flight, if any. Returns its ticket.
    fn wait_in_flight(&mut self) -> Result<Option<SyncTicket>, StoreError> {
        let Some(id) = self.in_flight.as_ref().map(|f| f.id) else {
            return Ok(None);
        };
        let result = self.io.wait_completion(id);
        self.settle(result).map(Some)
    }

    /// Ends the sync in flight with its completion's `result`.
    fn settle(&mut self, result: Result<(), DiskError>) -> Result<SyncTicket, StoreError> {
        let flight = self.in_flight.take().expect("a sync is in flight");
        result.map_err(|e| self.disk_failed(e))?;
        self.trim_tail(flight.tail_len);
        debug_assert_eq!(self.tail.len() as u64, self.file_len % BLOCK as u64);
        self.durable = Some(flight.ticket);
        Ok(flight.ticket)
    }
}

impl LogStore for SegmentedLog {
    fn append(&mut self, records: &[Record]) -> Result<(), StoreError> {
        self.usable()?;
        self.check(records)?;
        let start = self.buf.len();
        for rec in records {
            if let Err(e) = encode_record(rec, &mut self.buf) {
                self.buf.truncate(start);
                return Err(e.into());
            }
        }
        for rec in records {
            match rec {
                Record::Entry(e) => self.buf_max_entry = self.buf_max_entry.max(e.index),
                Record::HardState(hs) => self.appended.hard_state = *hs,
                Record::Snapshot(meta) => self.appended.snapshot = Some(meta.clone()),
                Record::Truncate { .. } => {}
            }
        }
        Ok(())
    }

    /// Waits for an asynchronous sync in flight first, if any.
    fn sync(&mut self) -> Result<usize, StoreError> {
        self.usable()?;
        self.wait_in_flight()?;
        if self.buf.is_empty() {
            return Ok(0);
        }
        self.roll_if_full()?;
        if let Err(source) = self.write_out() {
            return Err(self.disk_failed(source));
        }
        let written = self.mark_written();
        debug_assert_eq!(self.tail.len() as u64, self.file_len % BLOCK as u64);
        Ok(written)
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.usable()?;
        let index = snapshot.meta.index;
        if index < self.saved_snapshot {
            return Err(ReplayError::SnapshotRegressed {
                index,
                current: self.saved_snapshot,
            }
            .into());
        }
        snapshot_file::save(&self.dir, snapshot)?;
        self.saved_snapshot = index;
        self.append(&[Record::Snapshot(snapshot.meta.clone())])
    }

    fn load_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        match snapshot_file::newest(&self.dir)? {
            Some((index, path)) => snapshot_file::load(index, &path).map(Some),
            None => Ok(None),
        }
    }

    /// Syncs (making the snapshot marker durable), then deletes the oldest
    /// segments while all their entries are at or below `upto`. The last
    /// segment stays: it or a later head holds the newest hard state and marker.
    fn compact(&mut self, upto: Index) -> Result<usize, StoreError> {
        self.usable()?;
        let upto = upto.min(self.appended.snapshot_index());
        self.sync()?;
        let closed = &self.segments[..self.segments.len() - 1];
        let covered = closed.iter().take_while(|s| s.max_entry <= upto).count();
        // Oldest first: after a crash part way, replay starts at a later
        // segment, which the marker's snapshot still covers.
        for _ in 0..covered {
            files::remove(&self.segments[0].path)?;
            self.segments.remove(0);
        }
        if covered > 0 {
            files::sync_dir(&self.dir)?;
        }
        Ok(covered)
    }
}

/// Creates `dir` if needed and removes temp files a crash left in it.
fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(io_err("create dir", dir))?;
    if files::remove_temp_files(dir)? {
        files::sync_dir(dir)?;
    }
    Ok(())
}

/// Replays every segment in order. Returns them, the replay (not yet
/// finished) and where the last one ends after cutting its torn tail.
fn recover_segments(dir: &Path) -> Result<(Vec<SegmentInfo>, Replay, segment::End), StoreError> {
    let listed = SEGMENT.list(dir)?;
    let mut replay = Replay::default();
    let mut segments = Vec::with_capacity(listed.len() + 1);
    let mut last = segment::End::default();
    for (i, (seq, path)) in listed.iter().enumerate() {
        if i > 0 && *seq != listed[i - 1].0 + 1 {
            let missing = SEGMENT.path(dir, listed[i - 1].0 + 1);
            return Err(StoreError::Corrupt {
                segment: missing,
                offset: 0,
                reason: Corruption::MissingSegment,
            });
        }
        let recovered = segment::recover(*seq, path, i + 1 == listed.len(), &mut replay)?;
        last = recovered.end;
        segments.push(recovered.info);
    }
    Ok((segments, replay, last))
}

/// Compares the newest snapshot file with the log's marker. Returns the file's
/// index (0: none) and its meta if it is newer than the marker, after applying
/// it to `replay`.
fn reconcile_snapshot(
    dir: &Path,
    replay: &mut Replay,
) -> Result<(Index, Option<SnapshotMeta>), StoreError> {
    let marker = replay.snapshot_index();
    let Some((saved, path)) = snapshot_file::newest(dir)? else {
        return match marker {
            0 => Ok((0, None)),
            _ => Err(StoreError::MissingSnapshot { marker, file: 0 }),
        };
    };
    snapshot_file::remove_older(dir, saved)?;
    if saved < marker {
        return Err(StoreError::MissingSnapshot {
            marker,
            file: saved,
        });
    }
    if saved == marker {
        return Ok((saved, None));
    }
    let meta = snapshot_file::load_meta(saved, &path)?;
    tracing::info!(
        index = saved,
        marker,
        "snapshot file is newer than the log's marker; applying it"
    );
    replay
        .apply(&Record::Snapshot(meta.clone()))
        .map_err(|e| StoreError::Corrupt {
            segment: path,
            offset: 0,
            reason: Corruption::Replay(e),
        })?;
    Ok((saved, Some(meta)))
}

fn create_segment(
    io: &mut dyn DiskIo,
    dir: &Path,
    seq: u64,
) -> Result<(IoFile, PathBuf), StoreError> {
    let path = SEGMENT.path(dir, seq);
    let file = io
        .open(&path, OpenMode::CreateNew)
        .map_err(disk_err(&path))?;
    files::sync_dir(dir)?;
    Ok((file, path))
}
