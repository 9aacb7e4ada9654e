//! Errors of the log store, typed so callers can tell a dying disk from a
//! corrupt file from their own misuse.

use crate::io::DiskError;
use govfs_core::raft::Index;
use govfs_core::wal::{RecordTooLarge, ReplayError, TornReason};
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The disk backend failed on this file (or, at open, on the directory
    /// it probes). A failed write or sync poisons the log.
    #[error("{}: {source}", path.display())]
    Disk {
        path: PathBuf,
        #[source]
        source: DiskError,
    },
    /// A segment cannot be trusted; unlike a torn tail this is not the
    /// expected result of a crash, so nothing is cut or guessed.
    #[error("segment {} corrupt at offset {offset}: {reason}", segment.display())]
    Corrupt {
        segment: PathBuf,
        offset: u64,
        reason: Corruption,
    },
    #[error("snapshot file {} corrupt: {reason}", path.display())]
    CorruptSnapshot {
        path: PathBuf,
        reason: SnapshotCorruption,
    },
    /// The log relies on a snapshot (its entries were compacted away) that is not on disk.
    #[error(
        "the log marks a snapshot at {marker}, but the newest snapshot file is at {file} (0: none)"
    )]
    MissingSnapshot { marker: Index, file: Index },
    /// A record the caller appended would make the log unrecoverable.
    #[error("refused record: {0}")]
    Refused(#[from] ReplayError),
    #[error("snapshot marker at {index} appended before a snapshot file at or after it was saved")]
    SnapshotNotSaved { index: Index },
    #[error(transparent)]
    RecordTooLarge(#[from] RecordTooLarge),
    /// After a failed write or fsync the file's contents are unknown (the
    /// kernel may have dropped the dirty pages), so no later sync can be trusted.
    #[error("an earlier write or sync failed; reopen the log to learn what is durable")]
    Poisoned,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    #[error("bad frame in a segment that is not the last: {0}")]
    Torn(TornReason),
    /// Compaction deletes oldest first, so sequence numbers have no holes.
    #[error("segment file is missing")]
    MissingSegment,
    #[error("{bytes} zero bytes end a segment that is not the last")]
    Padding { bytes: usize },
    #[error("records do not form a log: {0}")]
    Replay(ReplayError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotCorruption {
    #[error("bad frame: {0}")]
    Frame(TornReason),
    #[error("file holds no frame")]
    Empty,
    #[error("{0} bytes after the data frame")]
    TrailingBytes(usize),
    #[error("file is named for index {named} but holds index {found}")]
    IndexMismatch { named: Index, found: Index },
}

/// Wraps a backend error with the path it concerns.
pub(crate) fn disk_err(path: &Path) -> impl FnOnce(DiskError) -> StoreError + '_ {
    move |source| StoreError::Disk {
        path: path.to_path_buf(),
        source,
    }
}

/// Wraps an `io::Error` with what was being done to which path.
pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}
