//! Which directories a file's names are in. A file or symlink records one
//! directory in its inode (`Inode::parent`) and any further names in
//! `Namespace::extra_links`, so the change feed can find every directory a
//! hard-linked file shows up under, and unlink can keep the record exact,
//! without a reverse map for the common single-name file.

use std::collections::BTreeMap;

use super::namespace::Namespace;
use super::table::Inode;
use super::types::{FileType, Ino};

impl Namespace {
    /// A file or symlink gains a name in `dir`.
    pub(crate) fn add_link(&mut self, ino: Ino, dir: Ino) {
        let inode = self.inode_mut(ino);
        assert!(inode.kind != FileType::Dir && inode.nlink >= 1);
        inode.nlink += 1;
        *self.extra_links.entry((ino, dir)).or_insert(0) += 1;
    }

    /// A file or symlink loses a name in `dir`; returns its remaining count.
    pub(crate) fn drop_link(&mut self, ino: Ino, dir: Ino) -> u32 {
        self.unlink_parent(ino, dir);
        let inode = self.inode_mut(ino);
        assert!(inode.kind != FileType::Dir && inode.nlink >= 1);
        inode.nlink -= 1;
        inode.nlink
    }

    /// A file or symlink's name moves from `from` to `to` (same count).
    pub(crate) fn move_link(&mut self, ino: Ino, from: Ino, to: Ino) {
        if from == to {
            return;
        }
        self.unlink_parent(ino, from);
        if self.inode_mut(ino).nlink == 1 {
            self.inode_mut(ino).parent = to;
        } else {
            *self.extra_links.entry((ino, to)).or_insert(0) += 1;
        }
    }

    /// Forgets one name of `ino` in `dir`: an extra one if there is one,
    /// else the primary, whose place an extra one then takes.
    fn unlink_parent(&mut self, ino: Ino, dir: Ino) {
        if take_one(&mut self.extra_links, (ino, dir)) {
            return;
        }
        assert_eq!(
            self.inode_mut(ino).parent,
            dir,
            "name not in this directory"
        );
        let next = self
            .extra_links
            .range((ino, Ino(0))..=(ino, Ino(u64::MAX)))
            .next()
            .map(|(&(_, p), _)| p);
        if let Some(p) = next {
            take_one(&mut self.extra_links, (ino, p));
            self.inode_mut(ino).parent = p;
        }
    }

    /// The directories a file's names are in (its primary first).
    pub(crate) fn parents(&self, ino: Ino, inode: &Inode) -> Vec<Ino> {
        // Extra links hold each directory once; only the primary may repeat.
        let mut out = vec![inode.parent];
        let extra = self.extra_links.range((ino, Ino(0))..=(ino, Ino(u64::MAX)));
        out.extend(extra.map(|(&(_, p), _)| p).filter(|&p| p != inode.parent));
        out
    }
}

/// Decrements a count, removing it at zero; false if absent.
fn take_one(map: &mut BTreeMap<(Ino, Ino), u32>, key: (Ino, Ino)) -> bool {
    match map.get_mut(&key) {
        Some(n) if *n > 1 => {
            *n -= 1;
            true
        }
        Some(_) => {
            map.remove(&key);
            true
        }
        None => false,
    }
}
