//! Path resolution from this ministry's root, for clients and tools that
//! speak paths. Intermediate symlinks are followed (at most [`SYMLOOP_MAX`],
//! then ELOOP); an absolute target starts again at this ministry's root.
//! Every directory passed through needs search permission. A path that
//! enters another ministry's subtree answers with that subtree's root and
//! the rest of the path, for the client to ask there.

use super::name::{self, NameKind};
use super::namespace::{Namespace, Target};
use super::ops::Found;
use super::perm::{self, X_OK};
use super::types::{Credentials, Errno, FileType, Ino, MetaResult};

/// Symlinks one resolution follows (Linux's limit).
pub const SYMLOOP_MAX: u32 = 40;

impl Namespace {
    /// Resolves an absolute path; `follow` follows a symlink in the last
    /// component. A trailing '/' requires a directory (ENOTDIR).
    pub fn lookup_path(&self, creds: &Credentials, path: &[u8], follow: bool) -> MetaResult<Found> {
        self.lookup_path_at(creds, self.root, path, follow)
    }

    /// Resolves `path` (written absolute: "/" is `start` itself) from the
    /// local directory `start`, usually the root of a subtree attached from
    /// another ministry that a `Found::Foreign` named. ".." stops at
    /// `start`'s top-level root, and an absolute symlink target starts again
    /// at this ministry's root, as in [`Self::lookup_path`].
    pub fn lookup_path_at(
        &self,
        creds: &Credentials,
        start: Ino,
        path: &[u8],
        follow: bool,
    ) -> MetaResult<Found> {
        name::check_path(path)?;
        self.dir(start)?;
        let must_be_dir = path.len() > 1 && path.ends_with(b"/");
        // Components still to walk, last first.
        let mut pending: Vec<&[u8]> = name::components(path).rev().collect();
        let mut cur = start;
        let mut follows = 0;
        while let Some(component) = pending.pop() {
            let dir = self.dir(cur)?;
            perm::check(creds, dir, X_OK)?;
            let child = match name::classify(component)? {
                NameKind::Dot => continue,
                NameKind::DotDot => {
                    cur = dir.parent;
                    continue;
                }
                NameKind::Normal => self.child(cur, component).ok_or(Errno::ENOENT)?,
            };
            let inode = match self.object(child).expect("entries point at inodes") {
                Target::Foreign(_) => {
                    let mut rest = Vec::new();
                    for c in pending.iter().rev() {
                        rest.push(b'/');
                        rest.extend_from_slice(c);
                    }
                    return Ok(self.found(child, rest));
                }
                Target::Local(_, inode) => inode,
            };
            let last = pending.is_empty();
            if inode.kind == FileType::Symlink && (!last || follow || must_be_dir) {
                follows += 1;
                if follows > SYMLOOP_MAX {
                    return Err(Errno::ELOOP);
                }
                let target: &[u8] = &self.symlinks[&child];
                if target.starts_with(b"/") {
                    cur = self.root;
                }
                pending.extend(name::components(target).rev());
                continue;
            }
            cur = child;
        }
        if must_be_dir && self.inode(cur)?.kind != FileType::Dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(self.found(cur, Vec::new()))
    }

    /// Splits a path into its directory, resolved, and its last name (not
    /// checked: the operation that uses it checks it). "/" gives (root,
    /// "."). EREMOTE if the directory is in another ministry's subtree (ask
    /// [`Self::lookup_path`] where), ENOTDIR if it is not a directory.
    pub fn resolve_parent<'p>(
        &self,
        creds: &Credentials,
        path: &'p [u8],
    ) -> MetaResult<(Ino, &'p [u8])> {
        name::check_path(path)?;
        let trimmed = trim_trailing_slashes(path);
        let Some(cut) = trimmed.iter().rposition(|&b| b == b'/') else {
            return Err(Errno::EINVAL);
        };
        let last = &trimmed[cut + 1..];
        if last.is_empty() {
            return Ok((self.root, b"."));
        }
        let dir_path = if cut == 0 {
            &trimmed[..1]
        } else {
            &trimmed[..cut]
        };
        match self.lookup_path(creds, dir_path, true)? {
            Found::Local(attr) if attr.kind == FileType::Dir => Ok((attr.ino, last)),
            Found::Local(_) => Err(Errno::ENOTDIR),
            Found::Foreign { .. } => Err(Errno::EREMOTE),
        }
    }
}

fn trim_trailing_slashes(path: &[u8]) -> &[u8] {
    let end = path.iter().rposition(|&b| b != b'/').map_or(1, |i| i + 1);
    &path[..end]
}
