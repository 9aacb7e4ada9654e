//! File names in a log directory and the directory operations around them.
//!
//! Names embed a zero-padded number so that lexical and numeric order agree:
//! `log-{seq:020}.seg` for segments, `snapshot-{index:020}.snap` for snapshots.

use super::error::{io_err, StoreError};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

pub(crate) const SEGMENT: Kind = Kind {
    prefix: "log-",
    suffix: ".seg",
};
pub(crate) const SNAPSHOT: Kind = Kind {
    prefix: "snapshot-",
    suffix: ".snap",
};
/// Suffix of a snapshot being written; one left by a crash is garbage.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

#[derive(Clone, Copy)]
pub(crate) struct Kind {
    prefix: &'static str,
    suffix: &'static str,
}

impl Kind {
    pub(crate) fn path(self, dir: &Path, number: u64) -> PathBuf {
        dir.join(format!("{}{number:020}{}", self.prefix, self.suffix))
    }

    fn parse(self, name: &str) -> Option<u64> {
        let digits = name.strip_prefix(self.prefix)?.strip_suffix(self.suffix)?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// Files of this kind in `dir`, by ascending number.
    pub(crate) fn list(self, dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
        let mut found = Vec::new();
        for item in fs::read_dir(dir).map_err(io_err("list", dir))? {
            let item = item.map_err(io_err("list", dir))?;
            if let Some(n) = item.file_name().to_str().and_then(|name| self.parse(name)) {
                found.push((n, item.path()));
            }
        }
        found.sort_unstable();
        Ok(found)
    }
}

/// Makes creations, renames and deletions in `dir` durable: without this a
/// crash can lose a file whose contents were fsynced.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync dir", dir))
}

pub(crate) fn remove(path: &Path) -> Result<(), StoreError> {
    fs::remove_file(path).map_err(io_err("remove", path))
}

/// Removes temp files a crash left behind. Returns whether any were found.
pub(crate) fn remove_temp_files(dir: &Path) -> Result<bool, StoreError> {
    let mut any = false;
    for item in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let path = item.map_err(io_err("list", dir))?.path();
        if path.to_str().is_some_and(|p| p.ends_with(TEMP_SUFFIX)) {
            remove(&path)?;
            any = true;
        }
    }
    Ok(any)
}
