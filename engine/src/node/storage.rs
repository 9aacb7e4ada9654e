//! The logs one core thread owns: the president-group member's (on the
//! core that hosts it) and one per shard of the core.
//!
//! ```text
//! data/president/          SegmentedLog of the president group
//! data/shard-I/group       "idle" or the ministry id shard I serves
//! data/shard-I/...         SegmentedLog of that ministry (or only the term, when idle)
//! ```
//!
//! Joining or leaving a ministry replaces `data/shard-I` wholesale: the new
//! directory is built as `shard-I.new`, synced, then renamed over the old
//! one, so a crash leaves either the old log or the new one, never a mix.
//! Each log has its own io_uring (see `crate::io`); the core's event loop
//! watches their completion fds, so a finished sync wakes it.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use govfs_core::ids::ShardIndex;
use govfs_core::node::{Disk, LogOp, Recovered, RecoveredShard};
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
    #[error("no log for {0:?} on this core")]
    NotHere(Disk),
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

/// What a core recovers from: its logs, and the ministry each shard serves.
#[derive(Debug, Default)]
pub struct Recovery {
    pub president: Recovered,
    pub shards: BTreeMap<ShardIndex, RecoveredShard>,
}

/// One log and the sync it has in flight.
struct DiskLog {
    log: SegmentedLog,
    /// Snapshot index to compact the log to after the next sync.
    compact_after_sync: Option<Index>,
    in_flight: Option<SyncTicket>,
}

impl DiskLog {
    fn new(log: SegmentedLog) -> Self {
        DiskLog {
            log,
            compact_after_sync: None,
            in_flight: None,
        }
    }
}

pub struct CoreStorage {
    dir: PathBuf,
    opts: LogOptions,
    logs: BTreeMap<Disk, DiskLog>,
}

/// What [`CoreStorage::start_sync`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncStart {
    /// A write+fdatasync is on its way; [`CoreStorage::poll_sync`] says when it is durable.
    Started,
    /// One is already in flight; start again once it completes.
    Busy,
    /// Nothing was written since the last sync: all of it is durable already.
    Nothing,
}

fn shard_dir_name(index: ShardIndex) -> String {
    format!("shard-{index}")
}

impl CoreStorage {
    /// Open (or create) the logs of `disks` under `dir`.
    pub fn open(
        dir: &Path,
        disks: &[Disk],
        opts: LogOptions,
    ) -> Result<(Self, Recovery), StorageError> {
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let mut logs = BTreeMap::new();
        let mut recovery = Recovery::default();
        for &disk in disks {
            match disk {
                Disk::President => {
                    let (log, replay) = SegmentedLog::open(&dir.join("president"), opts.clone())?;
                    recovery.president = recovered(&log, replay)?;
                    logs.insert(disk, DiskLog::new(log));
                }
                Disk::Shard(i) => {
                    let name = shard_dir_name(i);
                    finish_shard_swap(dir, &name)?;
                    let shard_dir = dir.join(&name);
                    if !shard_dir.exists() {
                        build_shard_dir(&shard_dir, None, HardState::default(), &opts)?;
                        sync_dir(dir)?;
                    }
                    let group = read_group(&shard_dir.join("group"))?;
                    let (log, replay) = SegmentedLog::open(&shard_dir, opts.clone())?;
                    let rec = RecoveredShard {
                        group,
                        log: recovered(&log, replay)?,
                    };
                    recovery.shards.insert(i, rec);
                    logs.insert(disk, DiskLog::new(log));
                }
            }
        }
        let storage = CoreStorage {
            dir: dir.to_path_buf(),
            opts,
            logs,
        };
        Ok((storage, recovery))
    }

    fn log(&mut self, disk: Disk) -> Result<&mut DiskLog, StorageError> {
        self.logs.get_mut(&disk).ok_or(StorageError::NotHere(disk))
    }

    /// The fds that become readable when a log's io completes (io_uring
    /// backends only), so an event loop can sleep until a sync finishes.
    pub fn completion_fds(&self) -> Vec<(Disk, RawFd)> {
        self.logs
            .iter()
            .filter_map(|(d, l)| l.log.completion_fd().map(|fd| (*d, fd)))
            .collect()
    }

    /// Buffer `ops` for `disk`; durable after a sync. Joining and leaving
    /// are durable when this returns.
    pub fn write(&mut self, disk: Disk, ops: &[LogOp]) -> Result<(), StorageError> {
        let mut records = Vec::new();
        for op in ops {
            match op {
                LogOp::HardState(hs) => records.push(Record::HardState(*hs)),
                LogOp::Entries(es) => records.extend(es.iter().cloned().map(Record::Entry)),
                LogOp::Install(s) => {
                    self.flush(disk, &mut records)?;
                    self.log(disk)?.log.save_snapshot(s)?;
                    // The core dropped every entry on install: the disk must too.
                    records.push(Record::Truncate {
                        from: s.meta.index + 1,
                    });
                }
                LogOp::Compact(s) => {
                    self.flush(disk, &mut records)?;
                    let l = self.log(disk)?;
                    l.log.save_snapshot(s)?;
                    l.compact_after_sync = Some(s.meta.index);
                }
                LogOp::Join { group, hs } => {
                    records.clear();
                    self.replace_shard(disk, Some(*group), *hs)?;
                }
                LogOp::Leave { hs } => {
                    records.clear();
                    self.replace_shard(disk, None, *hs)?;
                }
            }
        }
        self.flush(disk, &mut records)
    }

    fn flush(&mut self, disk: Disk, records: &mut Vec<Record>) -> Result<(), StorageError> {
        if !records.is_empty() {
            self.log(disk)?.log.append(records)?;
            records.clear();
        }
        Ok(())
    }

    /// Start making everything written to `disk` durable (one write linked
    /// with one fdatasync) without waiting for it.
    pub fn start_sync(&mut self, disk: Disk) -> Result<SyncStart, StorageError> {
        let l = self.log(disk)?;
        if l.log.sync_in_flight() {
            return Ok(SyncStart::Busy);
        }
        match l.log.start_sync()? {
            Some(ticket) => {
                l.in_flight = Some(ticket);
                Ok(SyncStart::Started)
            }
            None => Ok(SyncStart::Nothing),
        }
    }

    /// Whether the sync started last on `disk` is durable now (never blocks).
    /// A log replaced by a join or leave finished its sync when it closed.
    pub fn poll_sync(&mut self, disk: Disk) -> Result<bool, StorageError> {
        let l = self.log(disk)?;
        let Some(ticket) = l.in_flight else {
            return Ok(true);
        };
        l.log.poll_sync()?;
        if l.log.durable_ticket() < Some(ticket) {
            return Ok(false);
        }
        l.in_flight = None;
        if let Some(index) = l.compact_after_sync.take() {
            l.log.compact(index)?;
        }
        Ok(true)
    }

    /// One fdatasync for everything written to `disk` since the last sync.
    pub fn sync(&mut self, disk: Disk) -> Result<(), StorageError> {
        let l = self.log(disk)?;
        l.log.sync()?;
        if let Some(index) = l.compact_after_sync.take() {
            l.log.compact(index)?;
        }
        Ok(())
    }

    /// Build the new shard directory beside the old one, then swap them.
    fn replace_shard(
        &mut self,
        disk: Disk,
        group: Option<GroupId>,
        hs: HardState,
    ) -> Result<(), StorageError> {
        let Disk::Shard(index) = disk else {
            return Err(StorageError::NotHere(disk));
        };
        let name = shard_dir_name(index);
        let new = self.dir.join(format!("{name}.new"));
        if new.exists() {
            fs::remove_dir_all(&new).map_err(io_err("remove", &new))?;
        }
        build_shard_dir(&new, group, hs, &self.opts)?;
        let cur = self.dir.join(&name);
        let old = self.dir.join(format!("{name}.old"));
        fs::rename(&cur, &old).map_err(io_err("rename", &cur))?;
        fs::rename(&new, &cur).map_err(io_err("rename", &new))?;
        sync_dir(&self.dir)?;
        fs::remove_dir_all(&old).map_err(io_err("remove", &old))?;
        let (log, _) = SegmentedLog::open(&cur, self.opts.clone())?;
        // Dropping the old log waits for its sync in flight.
        self.logs.insert(disk, DiskLog::new(log));
        Ok(())
    }
}

/// Finish or undo a shard swap a crash interrupted.
fn finish_shard_swap(dir: &Path, name: &str) -> Result<(), StorageError> {
    let (cur, new, old) = (
        dir.join(name),
        dir.join(format!("{name}.new")),
        dir.join(format!("{name}.old")),
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
