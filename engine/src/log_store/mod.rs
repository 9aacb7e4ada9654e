//! The durable Raft log: records from `govfs_core::wal` in segment files,
//! plus snapshot files, in one directory.
//!
//! ```text
//! dir/log-00000000000000000007.seg        segments by ascending sequence number;
//! dir/log-00000000000000000008.seg        the last one is being appended to
//! dir/snapshot-00000000000000004096.snap  the newest snapshot, by log index
//! ```
//!
//! Each segment starts with a `HardState` record and, once there is one, the
//! `Snapshot` marker in force, so deleting older segments never loses the
//! newest of either. Compaction deletes the oldest segments whose entries a
//! snapshot covers; replay then begins mid-log (see `govfs_core::wal::Replay`).
//! Only the last segment may end torn (a crash mid-write); it is cut back to
//! its last whole record. Anywhere else a bad record is corruption.
//!
//! Segments are written through a [`crate::io::DiskIo`] backend (io_uring
//! with `O_DIRECT`, or blocking IO) in whole blocks; `segmented_log.rs` shows
//! how the last partial block is rewritten and padded, and how a sync can be
//! started and reaped later ([`SegmentedLog::start_sync`]) so the caller works
//! while the disk syncs.

mod error;
mod files;
mod segment;
mod segmented_log;
mod snapshot_file;

pub use error::{Corruption, SnapshotCorruption, StoreError};
pub use segmented_log::{SegmentedLog, SyncTicket};

use govfs_core::raft::{Index, Snapshot};
use govfs_core::wal::Record;

/// Where a Raft group's log and snapshots live. Recovery is the backend's
/// constructor (see [`SegmentedLog::open`]), which returns the
/// `govfs_core::wal::Replay` of what survived.
pub trait LogStore {
    /// Buffers records (hard state, entries, truncations) in log order.
    /// Nothing is durable until [`LogStore::sync`]. Snapshot markers come from
    /// [`LogStore::save_snapshot`]; an appended one must not be newer than the saved file.
    fn append(&mut self, records: &[Record]) -> Result<(), StoreError>;
    /// Makes everything appended so far durable with one data sync (group
    /// commit). Returns the bytes written.
    fn sync(&mut self) -> Result<usize, StoreError>;
    /// Durably stores `snapshot` as the only snapshot file, then appends its
    /// marker (durable at the next sync).
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError>;
    /// The newest saved snapshot, if any.
    fn load_snapshot(&self) -> Result<Option<Snapshot>, StoreError>;
    /// Syncs, then deletes the oldest segments whose entries are all at or
    /// below `upto` (clamped to the newest snapshot marker, so nothing a
    /// snapshot does not cover is lost). Returns how many were deleted.
    fn compact(&mut self, upto: Index) -> Result<usize, StoreError>;
}

#[derive(Clone, Debug)]
pub struct LogOptions {
    /// A segment is closed once it holds at least this many bytes.
    pub segment_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 64 << 20,
        }
    }
}
