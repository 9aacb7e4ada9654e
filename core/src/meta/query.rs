//! Reads. Clerks answer them from their applied state with these methods;
//! the same methods answer the read operations that go through the log.

use super::changes::ChangePage;
use super::name::{self, NameKind, NAME_MAX};
use super::namespace::{Namespace, Target};
use super::ops::{DirEntry, DirPage, Found, Statfs, CHANGES_MAX, READDIR_MAX};
use super::perm::{self, R_OK, X_OK};
use super::types::{Attr, Credentials, Errno, FileType, Ino, MetaResult};
use crate::raft::Index;

impl Namespace {
    /// The entry `name` of directory `parent` ("." and ".." too). Needs
    /// search permission on `parent`.
    pub fn lookup(&self, creds: &Credentials, parent: Ino, name: &[u8]) -> MetaResult<Found> {
        let kind = name::classify(name)?;
        let dir = self.dir(parent)?;
        perm::check(creds, dir, X_OK)?;
        let ino = match kind {
            NameKind::Dot => parent,
            NameKind::DotDot => dir.parent,
            NameKind::Normal => self.child(parent, name).ok_or(Errno::ENOENT)?,
        };
        Ok(self.found(ino, Vec::new()))
    }

    pub(crate) fn found(&self, ino: Ino, rest: Vec<u8>) -> Found {
        match self.object(ino).expect("found inodes exist") {
            Target::Local(ino, inode) => Found::Local(self.attr(ino, inode)),
            Target::Foreign(root) => Found::Foreign { root, rest },
        }
    }

    pub fn stat(&self, ino: Ino) -> MetaResult<Attr> {
        Ok(self.attr(ino, self.inode(ino)?))
    }

    /// access(2): EINVAL for bits outside `R_OK | W_OK | X_OK`.
    pub fn access(&self, creds: &Credentials, ino: Ino, mask: u32) -> MetaResult<()> {
        if mask & !0o7 != 0 {
            return Err(Errno::EINVAL);
        }
        perm::check(creds, self.inode(ino)?, mask)
    }

    /// One page of a directory's entries after `after`, in name order. Needs
    /// read permission on the directory.
    pub fn readdir(
        &self,
        creds: &Credentials,
        dir: Ino,
        after: Option<&[u8]>,
        limit: u32,
    ) -> MetaResult<DirPage> {
        if limit == 0 || limit > READDIR_MAX {
            return Err(Errno::EINVAL);
        }
        if let Some(after) = after {
            name::classify(after)?;
        }
        perm::check(creds, self.dir(dir)?, R_OK)?;
        let mut entries = Vec::new();
        let mut more = false;
        for (name, ino) in self.children(dir, after) {
            if entries.len() == limit as usize {
                more = true;
                break;
            }
            let (kind, foreign) = match self.object(ino).expect("entries point at inodes") {
                Target::Local(_, inode) => (inode.kind, None),
                Target::Foreign(root) => (self.foreign[&ino].kind, Some(root.ministry)),
            };
            entries.push(DirEntry {
                name: name.to_vec(),
                ino,
                kind,
                foreign,
            });
        }
        Ok(DirPage { entries, more })
    }

    /// A symlink's target (EINVAL if `ino` is not a symlink).
    pub fn readlink(&self, ino: Ino) -> MetaResult<Vec<u8>> {
        if self.inode(ino)?.kind != FileType::Symlink {
            return Err(Errno::EINVAL);
        }
        Ok(self.symlinks[&ino].to_vec())
    }

    pub fn statfs(&self) -> Statfs {
        Statfs {
            inodes: self.inodes.len(),
            free_inodes: self.free_count,
            bytes: u64::try_from(self.total_bytes).unwrap_or(u64::MAX),
            name_max: NAME_MAX as u32,
        }
    }

    /// Changes under `dir` (the inode itself, or anything whose directory
    /// was below it when it changed) with `since < index <= upto`. `upto`
    /// must be at most the caller's applied index, which never passes the
    /// commit index. Root only: the feed lists names in subdirectories
    /// whose permissions it does not check.
    pub fn changes(
        &self,
        creds: &Credentials,
        dir: Ino,
        since: Index,
        upto: Index,
        limit: u32,
    ) -> MetaResult<ChangePage> {
        if limit == 0 || limit > CHANGES_MAX {
            return Err(Errno::EINVAL);
        }
        self.inode(dir)?;
        if !creds.is_root() {
            return Err(Errno::EACCES);
        }
        Ok(self.feed.since(dir, since, upto, limit))
    }
}
