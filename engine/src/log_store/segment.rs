//! One segment file: what recovery reads from it and what compaction needs
//! to know about it.

use super::error::{io_err, Corruption, StoreError};
use crate::io::BLOCK;
use govfs_core::raft::Index;
use govfs_core::wal::{self, Record, Replay, Tail};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

/// What the log remembers of each segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    pub seq: u64,
    pub path: PathBuf,
    /// Highest entry index written to this segment (0 if none).
    pub max_entry: Index,
}

impl SegmentInfo {
    pub(crate) fn new(seq: u64, path: PathBuf) -> Self {
        SegmentInfo {
            seq,
            path,
            max_entry: 0,
        }
    }

    /// Folds the indices of `records`, written to this segment, into `max_entry`.
    pub(crate) fn note(&mut self, records: &[Record]) {
        for rec in records {
            if let Record::Entry(e) = rec {
                self.max_entry = self.max_entry.max(e.index);
            }
        }
    }
}

/// Bytes recovery found in a segment.
pub(crate) struct Recovered {
    pub info: SegmentInfo,
    pub end: End,
}

/// Where a segment's records end, as the writer needs to know to append.
#[derive(Default)]
pub(crate) struct End {
    /// Length of the valid prefix; the file is this long after recovery.
    pub len: u64,
    /// The valid bytes of the last, partial block (`len % BLOCK` of them):
    /// the writer rewrites that block whole at its next sync.
    pub partial_block: Vec<u8>,
}

/// Scans the segment at `path` and folds its records into `replay`. In the
/// last segment a bad tail is what a crash leaves: it is cut off. Anywhere
/// else it is corruption.
pub(crate) fn recover(
    seq: u64,
    path: &Path,
    last: bool,
    replay: &mut Replay,
) -> Result<Recovered, StoreError> {
    let bytes = fs::read(path).map_err(io_err("read", path))?;
    let scan = wal::scan(&bytes);
    let corrupt = |offset: usize, reason| StoreError::Corrupt {
        segment: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    match (&scan.tail, last) {
        (Tail::Torn { offset, reason }, false) => {
            return Err(corrupt(*offset, Corruption::Torn(reason.clone())))
        }
        (Tail::Torn { reason, .. }, true) => {
            tracing::warn!(segment = %path.display(), cut = bytes.len() - scan.valid_len, %reason,
                "cutting torn tail of the log");
            truncate(path, scan.valid_len as u64)?;
        }
        // Zero padding (a preallocated file) may end the last segment only: a
        // closed segment ends at its last record, so zeros there mean lost data.
        (Tail::Clean, false) if scan.valid_len < bytes.len() => {
            return Err(corrupt(
                scan.valid_len,
                Corruption::Padding {
                    bytes: bytes.len() - scan.valid_len,
                },
            ));
        }
        (Tail::Clean, true) if scan.valid_len < bytes.len() => {
            let cut = bytes.len() - scan.valid_len;
            // The writer pads its last block with zeros (O_DIRECT writes whole
            // blocks), so that much is what every clean stop leaves.
            if bytes.len().is_multiple_of(BLOCK) && cut < BLOCK {
                tracing::debug!(segment = %path.display(), cut, "cutting block padding after the log");
            } else {
                tracing::info!(segment = %path.display(), cut, "cutting zero padding after the log");
            }
            truncate(path, scan.valid_len as u64)?;
        }
        (Tail::Clean, _) => {}
    }
    let mut info = SegmentInfo::new(seq, path.to_path_buf());
    info.note(&scan.records);
    for (rec, offset) in scan.records.iter().zip(&scan.offsets) {
        replay
            .apply(rec)
            .map_err(|e| corrupt(*offset, Corruption::Replay(e)))?;
    }
    let block_start = scan.valid_len - scan.valid_len % BLOCK;
    Ok(Recovered {
        info,
        end: End {
            len: scan.valid_len as u64,
            partial_block: bytes[block_start..scan.valid_len].to_vec(),
        },
    })
}

fn truncate(path: &Path, len: u64) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("open", path))?;
    file.set_len(len).map_err(io_err("truncate", path))?;
    file.sync_data().map_err(io_err("fsync", path))
}
