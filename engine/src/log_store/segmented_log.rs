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

use super::error::{disk_err, io_err, Corruption, StoreError};
use super::files::{self, SEGMENT};
use super::segment::{self, SegmentInfo};
use super::{snapshot_file, LogOptions, LogStore};
use crate::io::{
    self, AlignedBuf, BackendChoice, Chosen, DiskError, DiskIo, IoFile, OpenMode, BLOCK,
    WRITE_BUFFER_BYTES,
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

    /// Writes `buf` after `file_len` and makes it durable: from the start of
    /// the partial last block, whole blocks, the last zero-padded, with one
    /// `fdatasync` linked to the last write. A batch larger than the write
    /// buffer goes out in buffer-sized writes first.
    fn write_out(&mut self) -> Result<(), DiskError> {
        debug_assert_eq!(self.tail.len() as u64, self.file_len % BLOCK as u64);
        let mut offset = self.file_len - self.tail.len() as u64;
        let mut rest = &self.buf[..];
        loop {
            let taken = self.tail.fill_from(rest);
            rest = &rest[taken..];
            if rest.is_empty() {
                break;
            }
            // The buffer is full, so it holds whole blocks.
            self.io.write_at(&self.file, offset, &self.tail)?;
            offset += self.tail.len() as u64;
            self.tail.clear();
        }
        let len = self.tail.pad_to_block();
        self.io.write_at_and_sync(&self.file, offset, &self.tail)?;
        self.tail.truncate(len);
        self.tail.consume_front(len - len % BLOCK);
        Ok(())
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

    fn sync(&mut self) -> Result<usize, StoreError> {
        self.usable()?;
        if self.buf.is_empty() {
            return Ok(0);
        }
        if self.file_len >= self.opts.segment_bytes {
            // A roll that failed half way (file created, directory not
            // synced) cannot be retried under the same name.
            if let Err(e) = self.roll() {
                self.poisoned = true;
                return Err(e);
            }
        }
        if let Err(source) = self.write_out() {
            self.poisoned = true;
            return Err(StoreError::Disk {
                path: self.last().path.clone(),
                source,
            });
        }
        let written = self.buf.len();
        self.file_len += written as u64;
        debug_assert_eq!(self.tail.len() as u64, self.file_len % BLOCK as u64);
        let max_entry = std::mem::take(&mut self.buf_max_entry);
        let last = self
            .segments
            .last_mut()
            .expect("a log always has a segment");
        last.max_entry = last.max_entry.max(max_entry);
        self.buf.clear();
        self.written = self.appended.clone();
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
