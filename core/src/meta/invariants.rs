//! The namespace's invariants, checked in full after a restore and by the
//! tests after every operation (operations assert the local ones as they
//! go). O(n log n): not for the apply path of a large namespace.

use std::collections::BTreeMap;

use super::name::{self, NameKind, XATTR_TOTAL_MAX};
use super::namespace::{Mount, Namespace};
use super::types::{FileType, Ino, MODE_MASK};

/// A broken invariant: what and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("namespace invariant broken: {0}")]
pub struct Corrupt(pub String);

fn fail<T>(msg: impl Into<String>) -> Result<T, Corrupt> {
    Err(Corrupt(msg.into()))
}

impl Namespace {
    /// Checks every invariant: every entry points at an inode or a foreign
    /// root; nlink matches the entries (a directory: 2 + subdirectories);
    /// every directory but the root and the attached roots has exactly one
    /// entry, in its parent; the parent pointers lead to one of those roots
    /// (no cycles); side tables belong to live inodes of the right type;
    /// free numbers are unused; kept subtree images hold by themselves and
    /// their foreign roots are where the detach left them.
    pub fn check_invariants(&self) -> Result<(), Corrupt> {
        let root = match self.inodes.get(self.root) {
            Some(r) if r.kind == FileType::Dir && r.parent == self.root => r,
            _ => return fail("the root is missing or not a directory"),
        };
        let _ = root;
        let bytes: u128 = self.inodes.iter().map(|(_, i)| u128::from(i.size)).sum();
        if bytes != self.total_bytes {
            return fail("total bytes do not match the sizes");
        }
        // Per target: the directories of its names.
        let mut names: BTreeMap<Ino, Vec<Ino>> = BTreeMap::new();
        let mut subdirs: BTreeMap<Ino, u32> = BTreeMap::new();
        for (key, &child) in &self.entries {
            if key.len() < 9 {
                return fail("entry key without a name");
            }
            let mut parent = [0u8; 8];
            parent.copy_from_slice(&key[..8]);
            let parent = Ino(u64::from_be_bytes(parent));
            if name::classify(&key[8..]) != Ok(NameKind::Normal) {
                return fail(format!("invalid name in directory {parent:?}"));
            }
            match self.inodes.get(parent) {
                Some(p) if p.kind == FileType::Dir => {}
                _ => return fail(format!("entry in {parent:?}, which is not a directory")),
            }
            let is_dir = match (self.inodes.get(child), self.foreign.get(&child)) {
                (Some(c), _) => c.kind == FileType::Dir,
                (None, Some(m)) => m.kind == FileType::Dir,
                (None, None) => return fail(format!("entry points at missing {child:?}")),
            };
            if is_dir {
                *subdirs.entry(parent).or_default() += 1;
            }
            names.entry(child).or_default().push(parent);
        }
        for (ino, inode) in self.inodes.iter() {
            if ino.0 == 0 || inode.mode & !MODE_MASK != 0 || !inode.layout().is_valid() {
                return fail(format!("{ino:?} has an invalid number, mode or layout"));
            }
            let parents = names.remove(&ino).unwrap_or_default();
            match inode.kind {
                FileType::Dir => {
                    let top = ino == self.root || self.roots.contains(&ino);
                    if top != (inode.parent == ino) {
                        return fail(format!("{ino:?} is its own parent but no root, or not"));
                    }
                    let expected = if top { 0 } else { 1 };
                    if parents.len() != expected || (expected == 1 && parents[0] != inode.parent) {
                        return fail(format!("directory {ino:?} has {} names", parents.len()));
                    }
                    if inode.size != 0 {
                        return fail(format!("directory {ino:?} has a size"));
                    }
                    let want = 2 + subdirs.get(&ino).copied().unwrap_or(0);
                    if inode.nlink != want {
                        return fail(format!("directory {ino:?} nlink {} != {want}", inode.nlink));
                    }
                }
                FileType::File | FileType::Symlink => {
                    if parents.len() != inode.nlink as usize || parents.is_empty() {
                        return fail(format!(
                            "{ino:?} nlink {} but {} names",
                            inode.nlink,
                            parents.len()
                        ));
                    }
                    let mut recorded = vec![inode.parent];
                    for (&(_, p), &n) in
                        self.extra_links.range((ino, Ino(0))..=(ino, Ino(u64::MAX)))
                    {
                        if n == 0 {
                            return fail("zero extra-link count");
                        }
                        recorded.extend(std::iter::repeat_n(p, n as usize));
                    }
                    let mut actual = parents;
                    actual.sort();
                    recorded.sort();
                    if actual != recorded {
                        return fail(format!(
                            "{ino:?}'s recorded directories do not match its names"
                        ));
                    }
                }
            }
            let target = self.symlinks.get(&ino);
            match (inode.kind, target) {
                (FileType::Symlink, Some(t))
                    if name::check_target(t).is_ok() && t.len() as u64 == inode.size => {}
                (FileType::Symlink, _) => {
                    return fail(format!("symlink {ino:?} without a valid target"))
                }
                (_, Some(_)) => return fail(format!("{ino:?} has a target but is no symlink")),
                (_, None) => {}
            }
        }
        if let Some((ino, _)) = names
            .iter()
            .find(|(ino, _)| !self.foreign.contains_key(ino))
        {
            return fail(format!("entries point at missing {ino:?}"));
        }
        for (ino, mount) in &self.foreign {
            if names.get(ino).map(Vec::as_slice) != Some(&[mount.parent][..]) {
                return fail(format!(
                    "foreign root {ino:?} does not have exactly one name"
                ));
            }
        }
        for &(ino, _) in self.extra_links.keys() {
            if self.inodes.get(ino).is_none() {
                return fail(format!("extra links of missing {ino:?}"));
            }
        }
        self.check_tree()?;
        self.check_transfers()?;
        self.check_xattrs()?;
        self.check_chunks()?;
        self.check_free()?;
        self.feed.validate().map_err(|e| Corrupt(e.to_string()))
    }

    /// Attached roots are local directories; every kept image holds as a
    /// namespace of its own, and while its foreign root is mounted that
    /// root is where the detach left it.
    fn check_transfers(&self) -> Result<(), Corrupt> {
        for &ino in &self.roots {
            match self.inodes.get(ino) {
                Some(i) if i.kind == FileType::Dir && ino != self.root => {}
                _ => return fail(format!("attached root {ino:?} is no local directory")),
            }
        }
        for (id, e) in &self.exports {
            if self.finished.contains_key(id) {
                return fail(format!("transfer {id} both kept and finished"));
            }
            e.image.check()?;
            let root = e.image.root();
            if !e.mounted {
                continue;
            }
            let want = Mount {
                ministry: e.to,
                parent: e.parent,
                kind: e.image.kind(),
            };
            if self.foreign.get(&root) != Some(&want) || self.child(e.parent, &e.name) != Some(root)
            {
                return fail(format!(
                    "transfer {id}'s foreign root is not where it was left"
                ));
            }
        }
        Ok(())
    }

    /// Every directory's parent chain reaches the root or an attached root.
    fn check_tree(&self) -> Result<(), Corrupt> {
        let mut reaches_root: BTreeMap<Ino, ()> = BTreeMap::new();
        reaches_root.insert(self.root, ());
        for &ino in &self.roots {
            reaches_root.insert(ino, ());
        }
        for (ino, inode) in self.inodes.iter() {
            if inode.kind != FileType::Dir {
                continue;
            }
            let mut path = Vec::new();
            let mut cur = ino;
            while !reaches_root.contains_key(&cur) {
                if path.len() as u64 > self.inodes.len() {
                    return fail(format!("directory cycle through {ino:?}"));
                }
                path.push(cur);
                cur = match self.inodes.get(cur) {
                    Some(i) => i.parent,
                    None => return fail(format!("{cur:?}'s parent is missing")),
                };
            }
            for p in path {
                reaches_root.insert(p, ());
            }
        }
        Ok(())
    }

    fn check_xattrs(&self) -> Result<(), Corrupt> {
        for (ino, list) in &self.xattrs {
            if self.inodes.get(*ino).is_none() || list.is_empty() {
                return fail(format!("xattrs of missing {ino:?}"));
            }
            let sorted = list.windows(2).all(|w| w[0].0 < w[1].0);
            let total: usize = list.iter().map(|(n, v)| n.len() + v.len()).sum();
            let names_ok = list.iter().all(|(n, _)| name::check_xattr_name(n).is_ok());
            if !sorted || !names_ok || total > XATTR_TOTAL_MAX {
                return fail(format!("invalid xattrs on {ino:?}"));
            }
        }
        Ok(())
    }

    fn check_chunks(&self) -> Result<(), Corrupt> {
        for (ino, list) in &self.chunks {
            let file = self
                .inodes
                .get(*ino)
                .is_some_and(|i| i.kind == super::types::FileType::File);
            if !file || list.is_empty() {
                return fail(format!("chunks of {ino:?}, which is not a file"));
            }
            let sorted = list.windows(2).all(|w| w[0].index < w[1].index);
            if !sorted || list.iter().any(|c| c.replicas.is_empty()) {
                return fail(format!("invalid chunk list of {ino:?}"));
            }
        }
        for (ino, g) in &self.garbage {
            if self.inodes.get(*ino).is_some() {
                return fail(format!("garbage chunks of live inode {ino:?}"));
            }
            let sorted = g.chunks.windows(2).all(|w| w[0].index < w[1].index);
            if g.chunks.is_empty() || !sorted {
                return fail(format!("invalid garbage list of {ino:?}"));
            }
        }
        Ok(())
    }

    fn check_free(&self) -> Result<(), Corrupt> {
        let mut last_end = 0;
        let mut count = 0u64;
        for &(start, end) in &self.free {
            if start >= end
                || start < last_end
                || end > self.granted_to
                || self.number_used(start, end)
            {
                return fail("invalid free inode range");
            }
            last_end = end;
            count += end - start;
        }
        if count != self.free_count {
            return fail("free inode count does not match the ranges");
        }
        Ok(())
    }
}
