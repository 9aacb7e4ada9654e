//! A node's two logs on disk: its president-group member's and its shard's.
//!
//! ```text
//! data/president/        SegmentedLog of the president group
//! data/shard/group       "idle" or the ministry id the shard serves
//! data/shard/...         SegmentedLog of that ministry (or only the term, when idle)
//! ```
//!
//! Joining or leaving a ministry replaces `data/shard` wholesale: the new
//! directory is built as `shard.new`, synced, then renamed over the old one,
//! so a crash leaves either the old log or the new one, never a mix.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use govfs_core::node::{Disk, LogOp, Recovered};
use govfs_core::raft::{GroupId, HardState, Index, Snapshot};
use govfs_core::wal::{Record, Replay};

use crate::log_store::{LogOptions, LogStore, SegmentedLog, StoreError, SyncTicket};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Log(#[from] StoreError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a ministry id or \"idle\": {found:?}")]
    BadGroupFile { path: PathBuf, found: String },
}

fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What the node recovers from: both logs, and the ministry the shard serves.
#[derive(Debug, Default)]
pub struct Recovery {
    pub president: Recovered,
    pub shard_group: Option<GroupId>,
    pub shard: Recovered,
}

pub struct NodeStorage {
    dir: PathBuf,
    opts: LogOptions,
    president: SegmentedLog,
    shard: SegmentedLog,
    /// Snapshot indexes to compact the logs to after the next sync.
    compact_after_sync: [Option<Index>; 2],
    /// The asynchronous sync each log has in flight.
    in_flight: [Option<SyncTicket>; 2],
}

/// What [`NodeStorage::start_sync`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncStart {
    /// A write+fdatasync is on its way; [`NodeStorage::poll_sync`] says when it is durable.
    Started,
    /// One is already in flight; start again once it completes.
    Busy,
    /// Nothing was written since the last sync: all of it is durable already.
    Nothing,
}

fn slot(disk: Disk) -> usize {
    match disk {
        Disk::President => 0,
        Disk::Shard => 1,
    }
}

impl NodeStorage {
    pub fn open(dir: &Path, opts: LogOptions) -> Result<(Self, Recovery), StorageError> {
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        finish_shard_swap(dir)?;
        let (president, pres_replay) = SegmentedLog::open(&dir.join("president"), opts.clone())?;
        let shard_dir = dir.join("shard");
        if !shard_dir.exists() {
            build_shard_dir(&shard_dir, None, HardState::default(), &opts)?;
            sync_dir(dir)?;
        }
        let shard_group = read_group(&shard_dir.join("group"))?;
        let (shard, shard_replay) = SegmentedLog::open(&shard_dir, opts.clone())?;
        let recovery = Recovery {
            president: recovered(&president, pres_replay)?,
            shard_group,
            shard: recovered(&shard, shard_replay)?,
        };
        let storage = NodeStorage {
            dir: dir.to_path_buf(),
            opts,
            president,
            shard,
            compact_after_sync: [None; 2],
            in_flight: [None; 2],
        };
        Ok((storage, recovery))
    }

    fn log(&mut self, disk: Disk) -> &mut SegmentedLog {
        match disk {
            Disk::President => &mut self.president,
            Disk::Shard => &mut self.shard,
        }
    }

    /// Buffer `ops` for `disk`; durable after [`NodeStorage::sync`]. Joining
    /// and leaving are durable when this returns.
    pub fn write(&mut self, disk: Disk, ops: &[LogOp]) -> Result<(), StorageError> {
        let mut records = Vec::new();
        for op in ops {
            match op {
                LogOp::HardState(hs) => records.push(Record::HardState(*hs)),
                LogOp::Entries(es) => records.extend(es.iter().cloned().map(Record::Entry)),
                LogOp::Install(s) => {
                    self.flush(disk, &mut records)?;
                    self.log(disk).save_snapshot(s)?;
                    // The core dropped every entry on install: the disk must too.
                    records.push(Record::Truncate {
                        from: s.meta.index + 1,
                    });
                }
                LogOp::Compact(s) => {
                    self.flush(disk, &mut records)?;
                    self.log(disk).save_snapshot(s)?;
                    self.compact_after_sync[slot(disk)] = Some(s.meta.index);
                }
                LogOp::Join { group, hs } => {
                    records.clear();
                    self.replace_shard(Some(*group), *hs)?;
                }
                LogOp::Leave { hs } => {
                    records.clear();
                    self.replace_shard(None, *hs)?;
                }
            }
        }
        self.flush(disk, &mut records)
    }

    fn flush(&mut self, disk: Disk, records: &mut Vec<Record>) -> Result<(), StorageError> {
        if !records.is_empty() {
            self.log(disk).append(records)?;
            records.clear();
        }
        Ok(())
    }

    /// Start making everything written to `disk` durable (one write linked
    /// with one fdatasync) without waiting for it.
    pub fn start_sync(&mut self, disk: Disk) -> Result<SyncStart, StorageError> {
        let log = self.log(disk);
        if log.sync_in_flight() {
            return Ok(SyncStart::Busy);
        }
        match log.start_sync()? {
            Some(ticket) => {
                self.in_flight[slot(disk)] = Some(ticket);
                Ok(SyncStart::Started)
            }
            None => Ok(SyncStart::Nothing),
        }
    }

    /// Whether the sync started last on `disk` is durable now (never blocks).
    /// A log replaced by a join or leave finished its sync when it closed.
    pub fn poll_sync(&mut self, disk: Disk) -> Result<bool, StorageError> {
        let Some(ticket) = self.in_flight[slot(disk)] else {
            return Ok(true);
        };
        let log = self.log(disk);
        log.poll_sync()?;
        if log.durable_ticket() < Some(ticket) {
            return Ok(false);
        }
        self.in_flight[slot(disk)] = None;
        if let Some(index) = self.compact_after_sync[slot(disk)].take() {
            self.log(disk).compact(index)?;
        }
        Ok(true)
    }

    /// One fdatasync for everything written to `disk` since the last sync.
    pub fn sync(&mut self, disk: Disk) -> Result<(), StorageError> {
        self.log(disk).sync()?;
        if let Some(index) = self.compact_after_sync[slot(disk)].take() {
            self.log(disk).compact(index)?;
        }
        Ok(())
    }

    /// Build the new shard directory beside the old one, then swap them.
    fn replace_shard(&mut self, group: Option<GroupId>, hs: HardState) -> Result<(), StorageError> {
        let new = self.dir.join("shard.new");
        if new.exists() {
            fs::remove_dir_all(&new).map_err(io_err("remove", &new))?;
        }
        build_shard_dir(&new, group, hs, &self.opts)?;
        let cur = self.dir.join("shard");
        let old = self.dir.join("shard.old");
        fs::rename(&cur, &old).map_err(io_err("rename", &cur))?;
        fs::rename(&new, &cur).map_err(io_err("rename", &new))?;
        sync_dir(&self.dir)?;
        fs::remove_dir_all(&old).map_err(io_err("remove", &old))?;
        let (shard, _) = SegmentedLog::open(&cur, self.opts.clone())?;
        // Dropping the old log waits for its sync in flight.
        self.shard = shard;
        self.in_flight[slot(Disk::Shard)] = None;
        Ok(())
    }
}

/// Finish or undo a shard swap a crash interrupted.
fn finish_shard_swap(dir: &Path) -> Result<(), StorageError> {
    let (cur, new, old) = (
        dir.join("shard"),
        dir.join("shard.new"),
        dir.join("shard.old"),
    );
    if new.exists() {
        if cur.exists() {
            // Crashed while building the new directory: the old one stands.
            fs::remove_dir_all(&new).map_err(io_err("remove", &new))?;
        } else {
            // Crashed between the two renames: the new one is complete.
            fs::rename(&new, &cur).map_err(io_err("rename", &new))?;
        }
        sync_dir(dir)?;
    }
    if old.exists() {
        fs::remove_dir_all(&old).map_err(io_err("remove", &old))?;
        sync_dir(dir)?;
    }
    Ok(())
}

fn build_shard_dir(
    path: &Path,
    group: Option<GroupId>,
    hs: HardState,
    opts: &LogOptions,
) -> Result<(), StorageError> {
    fs::create_dir_all(path).map_err(io_err("create", path))?;
    let group_file = path.join("group");
    let text = group.map_or_else(|| "idle".to_string(), |g| g.to_string());
    let mut f = fs::File::create(&group_file).map_err(io_err("create", &group_file))?;
    f.write_all(text.as_bytes())
        .map_err(io_err("write", &group_file))?;
    f.sync_all().map_err(io_err("sync", &group_file))?;
    let (mut log, _) = SegmentedLog::open(path, opts.clone())?;
    log.append(&[Record::HardState(hs)])?;
    log.sync()?;
    sync_dir(path)
}

fn read_group(path: &Path) -> Result<Option<GroupId>, StorageError> {
    let text = fs::read_to_string(path).map_err(io_err("read", path))?;
    let text = text.trim();
    if text == "idle" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| StorageError::BadGroupFile {
            path: path.to_path_buf(),
            found: text.to_string(),
        })
}

fn recovered(log: &SegmentedLog, replay: Replay) -> Result<Recovered, StorageError> {
    let snapshot: Option<Snapshot> = match replay.snapshot {
        Some(_) => log.load_snapshot()?,
        None => None,
    };
    Ok(Recovered {
        hs: replay.hard_state,
        snapshot,
        entries: replay.entries,
    })
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let f = fs::File::open(dir).map_err(io_err("open", dir))?;
    f.sync_all().map_err(io_err("sync", dir))
}
