//! A subtree as it travels between ministries: every inode below an entry
//! (attributes, directory entries, extra hard links, symlink targets,
//! extended attributes) and the foreign roots hanging in it, with their
//! inode numbers. `MetaOp::Detach` cuts one out of a namespace,
//! `MetaOp::Attach` and `MetaOp::Reattach` put one in.
//!
//! Why the numbers travel unchanged: ranges never overlap between
//! ministries, so a moved inode keeps the number clients and chunk maps
//! know it by, and no ministry hands it out again (it is never in a free
//! range: its owner took it, and grants only add numbers no one uses).
//!
//! An image that arrives is checked as a namespace of its own (a holder
//! directory with one entry naming the image's root) with the same
//! invariant check a snapshot passes, so a malformed image is refused
//! (EINVAL) instead of breaking the namespace it would enter.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::changes::ChangeFeed;
use super::chunks::ChunkPlace;
use super::invariants::Corrupt;
use super::namespace::{entry_key, Mount, Namespace, Xattr};
use super::table::Inode;
use super::types::{Errno, FileType, Ino, MetaResult};

/// A detached subtree. Built and read by the namespace only; travels
/// through the president's log between `Detach` and `Attach`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtreeImage {
    pub(crate) root: Ino,
    /// In number order. The root's parent is itself (it has no name here).
    pub(crate) inodes: Vec<(Ino, Inode)>,
    /// Entry keys (parent big-endian ++ name) below the root, in key order.
    pub(crate) entries: Vec<(Box<[u8]>, Ino)>,
    pub(crate) extra_links: Vec<((Ino, Ino), u32)>,
    pub(crate) symlinks: Vec<(Ino, Box<[u8]>)>,
    pub(crate) xattrs: Vec<(Ino, Vec<Xattr>)>,
    /// Placed chunks of the files in it.
    pub(crate) chunks: Vec<(Ino, Vec<ChunkPlace>)>,
    /// Foreign roots hanging below the root.
    pub(crate) foreign: Vec<(Ino, Mount)>,
}

impl SubtreeImage {
    /// The subtree's root: the detached entry's inode.
    pub fn root(&self) -> Ino {
        self.root
    }

    /// The root's type.
    pub fn kind(&self) -> FileType {
        self.root_inode().kind
    }

    /// Inodes in the image (foreign roots not counted).
    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }

    /// Every number the image uses: its inodes and its foreign roots.
    pub(crate) fn numbers(&self) -> impl Iterator<Item = Ino> + '_ {
        let inodes = self.inodes.iter().map(|&(ino, _)| ino);
        inodes.chain(self.foreign.iter().map(|&(ino, _)| ino))
    }

    /// Estimated heap bytes (vectors at their length, boxed names and
    /// values as malloc rounds them).
    pub(crate) fn heap_bytes(&self) -> usize {
        use super::memory::malloc_size;
        let boxed = |b: &[u8]| malloc_size(b.len());
        let entries: usize = self.entries.iter().map(|(k, _)| 24 + boxed(k)).sum();
        let symlinks: usize = self.symlinks.iter().map(|(_, t)| 24 + boxed(t)).sum();
        let xattrs: usize = (self.xattrs.iter())
            .map(|(_, l)| {
                32 + l
                    .iter()
                    .map(|(n, v)| 32 + boxed(n) + boxed(v))
                    .sum::<usize>()
            })
            .sum();
        self.inodes.len() * (8 + std::mem::size_of::<Inode>())
            + entries
            + self.extra_links.len() * 24
            + symlinks
            + xattrs
            + self.foreign.len() * (8 + std::mem::size_of::<Mount>())
    }

    fn root_inode(&self) -> &Inode {
        let i = self
            .inodes
            .binary_search_by_key(&self.root, |&(ino, _)| ino)
            .expect("checked images hold their root");
        &self.inodes[i].1
    }

    /// Checks the image as a namespace of its own: a holder directory
    /// whose one entry names the root, under every invariant a namespace
    /// keeps; and that each table is strictly ordered (no duplicates).
    pub(crate) fn check(&self) -> Result<(), Corrupt> {
        let bad = |m: &str| Err(Corrupt(format!("subtree image: {m}")));
        let increasing = |keys: &mut dyn Iterator<Item = Vec<u8>>| {
            let keys: Vec<Vec<u8>> = keys.collect();
            keys.windows(2).all(|w| w[0] < w[1])
        };
        if !self.inodes.windows(2).all(|w| w[0].0 < w[1].0)
            || !increasing(&mut self.entries.iter().map(|(k, _)| k.to_vec()))
            || !self.extra_links.windows(2).all(|w| w[0].0 < w[1].0)
            || !self.symlinks.windows(2).all(|w| w[0].0 < w[1].0)
            || !self.xattrs.windows(2).all(|w| w[0].0 < w[1].0)
            || !self.chunks.windows(2).all(|w| w[0].0 < w[1].0)
            || !self.foreign.windows(2).all(|w| w[0].0 < w[1].0)
        {
            return bad("tables out of order");
        }
        let Ok(at) = self
            .inodes
            .binary_search_by_key(&self.root, |&(ino, _)| ino)
        else {
            return bad("no root inode");
        };
        if self.inodes[at].1.parent != self.root {
            return bad("the root has a parent");
        }
        let used: BTreeSet<Ino> = self.numbers().collect();
        // A holder directory number the image does not use (there are at
        // most `used.len()` taken among the candidates).
        let holder = (0..=used.len() as u64)
            .map(|i| Ino(u64::MAX - i))
            .find(|ino| !used.contains(ino))
            .expect("a free candidate");
        let mut ns = Namespace::new(holder, ChangeFeed::new(1));
        let root_kind = self.inodes[at].1.kind;
        for &(ino, mut inode) in &self.inodes {
            if ino == self.root {
                inode.parent = holder;
            }
            if !ns.inodes.insert(ino, inode) {
                return bad("inode number repeated");
            }
            ns.total_bytes += u128::from(inode.size);
        }
        if root_kind == FileType::Dir {
            ns.inode_mut(holder).nlink += 1;
        }
        ns.entries = self.entries.iter().cloned().collect();
        ns.insert_entry(holder, b"r", self.root);
        ns.extra_links = self.extra_links.iter().copied().collect();
        ns.symlinks = self.symlinks.iter().cloned().collect();
        ns.xattrs = self.xattrs.iter().cloned().collect();
        ns.chunks = self.chunks.iter().cloned().collect();
        ns.foreign = self.foreign.iter().copied().collect();
        ns.check_invariants()
            .map_err(|e| Corrupt(format!("subtree image: {}", e.0)))
    }
}

impl Namespace {
    /// The image of the local inode `root` (the entry being detached) and
    /// everything below it. EXDEV if a file in it has a name outside it;
    /// EBUSY if it holds the foreign root of a detach that may still be
    /// undone (the undo would have nowhere to go). Reads only.
    pub(crate) fn image_of(&self, root: Ino) -> MetaResult<SubtreeImage> {
        let top = *self.inodes.get(root).expect("image of a local inode");
        let mut inodes = BTreeMap::new();
        let mut top_copy = top;
        top_copy.parent = root;
        inodes.insert(root, top_copy);
        let mut entries = Vec::new();
        let mut foreign = Vec::new();
        // Names each file has inside the subtree.
        let mut names: BTreeMap<Ino, u32> = BTreeMap::new();
        if top.kind == FileType::Dir {
            let mut dirs = vec![root];
            while let Some(dir) = dirs.pop() {
                for (name, child) in self.children(dir, None) {
                    entries.push((entry_key(dir, name).into_boxed_slice(), child));
                    if let Some(&mount) = self.foreign.get(&child) {
                        if self
                            .exports
                            .values()
                            .any(|e| e.mounted && e.image.root == child)
                        {
                            return Err(Errno::EBUSY);
                        }
                        foreign.push((child, mount));
                        continue;
                    }
                    let inode = *self.inodes.get(child).expect("entries point at inodes");
                    if inode.kind == FileType::Dir {
                        dirs.push(child);
                    } else {
                        *names.entry(child).or_default() += 1;
                    }
                    inodes.insert(child, inode);
                }
            }
        } else {
            names.insert(root, 1);
        }
        for (&ino, &count) in &names {
            if inodes[&ino].nlink != count {
                return Err(Errno::EXDEV);
            }
        }
        entries.sort();
        foreign.sort_by_key(|&(ino, _)| ino);
        let mut extra_links = Vec::new();
        for &ino in names.keys() {
            let links = self.extra_links.range((ino, Ino(0))..=(ino, Ino(u64::MAX)));
            extra_links.extend(links.map(|(&k, &n)| (k, n)));
        }
        let symlinks = inodes
            .keys()
            .filter_map(|ino| Some((*ino, self.symlinks.get(ino)?.clone())))
            .collect();
        let xattrs = inodes
            .keys()
            .filter_map(|ino| Some((*ino, self.xattrs.get(ino)?.clone())))
            .collect();
        let chunks = inodes
            .keys()
            .filter_map(|ino| Some((*ino, self.chunks.get(ino)?.clone())))
            .collect();
        Ok(SubtreeImage {
            root,
            inodes: inodes.into_iter().collect(),
            entries,
            extra_links,
            symlinks,
            xattrs,
            chunks,
            foreign,
        })
    }

    /// Whether every number of `image` is unused here: no local inode, no
    /// foreign root (but `except`, the one a reattach replaces), not free.
    pub(crate) fn image_fits(&self, image: &SubtreeImage, except: Option<Ino>) -> bool {
        image.numbers().all(|ino| {
            Some(ino) == except
                || !(self.inodes.get(ino).is_some()
                    || self.foreign.contains_key(&ino)
                    || self.is_free(ino))
        })
    }

    /// Takes the image's inodes, entries and side tables out (the root's
    /// own entry stays: the caller turns it into a foreign root).
    pub(crate) fn cut(&mut self, image: &SubtreeImage) {
        for (key, _) in &image.entries {
            self.entries.remove(key).expect("cut entries exist");
        }
        for (key, _) in &image.extra_links {
            self.extra_links.remove(key);
        }
        for &(ino, _) in &image.foreign {
            self.foreign.remove(&ino);
        }
        for &(ino, _) in &image.inodes {
            let inode = self.inodes.remove(ino).expect("cut inodes exist");
            self.total_bytes -= u128::from(inode.size);
            self.symlinks.remove(&ino);
            self.xattrs.remove(&ino);
            self.chunks.remove(&ino);
        }
    }

    /// Puts the image's inodes, entries and side tables in, its root's
    /// parent being `parent` (itself for a top-level root); the caller
    /// makes the root's entry. [`Self::image_fits`] checked.
    pub(crate) fn paste(&mut self, image: &SubtreeImage, parent: Ino) {
        for &(ino, mut inode) in &image.inodes {
            if ino == image.root {
                inode.parent = parent;
            }
            self.total_bytes += u128::from(inode.size);
            assert!(self.inodes.insert(ino, inode), "pasted over a used number");
        }
        for (key, ino) in &image.entries {
            assert!(self.entries.insert(key.clone(), *ino).is_none());
        }
        self.extra_links.extend(image.extra_links.iter().copied());
        self.symlinks.extend(image.symlinks.iter().cloned());
        self.xattrs.extend(image.xattrs.iter().cloned());
        self.chunks.extend(image.chunks.iter().cloned());
        for &(ino, mount) in &image.foreign {
            assert!(self.foreign.insert(ino, mount).is_none());
        }
    }
}
