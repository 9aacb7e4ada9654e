//! Snapshot files: `[frame(SnapshotMeta)][frame(data)]`, framed as log records
//! are (see `govfs_core::wal`). The meta comes first so recovery can read it
//! without the data. A body is limited to `MAX_RECORD_LEN`, so for now is a snapshot.

use super::error::{io_err, SnapshotCorruption, StoreError};
use super::files::{self, SNAPSHOT, TEMP_SUFFIX};
use govfs_core::raft::{Index, Snapshot, SnapshotMeta};
use govfs_core::wal::{self, HEADER_LEN};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Writes `snap` so that a crash leaves either the old file or the whole new
/// one: temp file, fsync, rename, fsync dir. Then removes older snapshots.
pub(crate) fn save(dir: &Path, snap: &Snapshot) -> Result<(), StoreError> {
    let mut bytes = Vec::new();
    wal::encode_frame(&snap.meta, &mut bytes)?;
    wal::encode_frame(&snap.data, &mut bytes)?;
    let path = SNAPSHOT.path(dir, snap.meta.index);
    let mut temp = path.clone().into_os_string();
    temp.push(TEMP_SUFFIX);
    let temp = PathBuf::from(temp);
    let mut file = File::create(&temp).map_err(io_err("create", &temp))?;
    file.write_all(&bytes).map_err(io_err("write", &temp))?;
    file.sync_all().map_err(io_err("fsync", &temp))?;
    drop(file);
    fs::rename(&temp, &path).map_err(io_err("rename", &temp))?;
    // The new snapshot must be durable before the old ones can go.
    files::sync_dir(dir)?;
    remove_older(dir, snap.meta.index)
}

/// Removes snapshot files older than `index`, which must be durable already.
pub(crate) fn remove_older(dir: &Path, index: Index) -> Result<(), StoreError> {
    let older: Vec<_> = SNAPSHOT
        .list(dir)?
        .into_iter()
        .filter(|(i, _)| *i < index)
        .collect();
    for (_, old) in &older {
        files::remove(old)?;
    }
    if !older.is_empty() {
        files::sync_dir(dir)?;
    }
    Ok(())
}

/// The newest snapshot file in `dir`, as `(index, path)`.
pub(crate) fn newest(dir: &Path) -> Result<Option<(Index, PathBuf)>, StoreError> {
    Ok(SNAPSHOT.list(dir)?.pop())
}

/// Reads the whole snapshot at `path`, which is named for `index`.
pub(crate) fn load(index: Index, path: &Path) -> Result<Snapshot, StoreError> {
    let bytes = fs::read(path).map_err(io_err("read", path))?;
    let corrupt = |reason| StoreError::CorruptSnapshot {
        path: path.to_path_buf(),
        reason,
    };
    let (meta, used) = decode_meta(index, &bytes).map_err(corrupt)?;
    let (data, data_len) = match wal::decode_frame::<Vec<u8>>(&bytes[used..]) {
        Ok(Some(found)) => found,
        Ok(None) => return Err(corrupt(SnapshotCorruption::Empty)),
        Err(reason) => return Err(corrupt(SnapshotCorruption::Frame(reason))),
    };
    let trailing = bytes.len() - used - data_len;
    if trailing != 0 {
        return Err(corrupt(SnapshotCorruption::TrailingBytes(trailing)));
    }
    Ok(Snapshot { meta, data })
}

/// Reads only the meta of the snapshot at `path`, which is named for `index`.
pub(crate) fn load_meta(index: Index, path: &Path) -> Result<SnapshotMeta, StoreError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let mut bytes = Vec::new();
    let mut file = file.take(HEADER_LEN as u64);
    file.read_to_end(&mut bytes).map_err(io_err("read", path))?;
    if let Some(Ok(len)) = bytes.first_chunk::<HEADER_LEN>().map(wal::frame_len) {
        // Read the body too; a bad length is left for decode_meta to report.
        file.set_limit((len - HEADER_LEN) as u64);
        file.read_to_end(&mut bytes).map_err(io_err("read", path))?;
    }
    let corrupt = |reason| StoreError::CorruptSnapshot {
        path: path.to_path_buf(),
        reason,
    };
    decode_meta(index, &bytes)
        .map(|(meta, _)| meta)
        .map_err(corrupt)
}

fn decode_meta(index: Index, bytes: &[u8]) -> Result<(SnapshotMeta, usize), SnapshotCorruption> {
    match wal::decode_frame::<SnapshotMeta>(bytes) {
        Ok(Some((meta, _))) if meta.index != index => Err(SnapshotCorruption::IndexMismatch {
            named: index,
            found: meta.index,
        }),
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(SnapshotCorruption::Empty),
        Err(reason) => Err(SnapshotCorruption::Frame(reason)),
    }
}
