//! The state a ministry owns: inodes, directory entries, symlink targets,
//! extended attributes, foreign subtrees, free inode numbers and the change
//! feed; and the helpers every operation shares.
//!
//! Each operation (in its own module) first checks everything that can fail,
//! reading only, and then changes the state with steps that cannot fail, so
//! an error never leaves a half-done change.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::changes::ChangeFeed;
use super::chunks::ChunkPlace;
use super::garbage::{Garbage, LeftCopy};
use super::name::NAME_MAX;
use super::table::{Inode, InodeTable};
use super::transfer::{Export, Finished};
use super::types::{
    Attr, Credentials, Errno, FileType, ForeignRoot, Ino, Layout, MetaResult, MinistryId, Nanos,
    ROOT,
};
use crate::raft::{Index, NodeId};

/// Most names one file may have (as ext4).
pub const LINK_MAX: u32 = 65_000;

/// Where a foreign subtree hangs, and what its root is (a directory for
/// `MetaOp::Mount`; a file when a detached file left it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Mount {
    pub ministry: MinistryId,
    pub parent: Ino,
    pub kind: FileType,
}

/// A ministry's namespace. See the module docs of [`crate::meta`]. Not
/// serde itself: snapshots go through `snapshot.rs`, whose decoding checks
/// every invariant.
pub struct Namespace {
    pub(crate) root: Ino,
    pub(crate) inodes: InodeTable,
    /// Key: the parent's number (big-endian) then the name, so a directory's
    /// entries are one range of the map, in name order.
    pub(crate) entries: BTreeMap<Box<[u8]>, Ino>,
    /// (inode, directory) -> names the inode has in that directory besides
    /// its primary one (`Inode::parent`). Only hard-linked files appear.
    pub(crate) extra_links: BTreeMap<(Ino, Ino), u32>,
    pub(crate) symlinks: BTreeMap<Ino, Box<[u8]>>,
    /// Per inode, (name, value) sorted by name.
    pub(crate) xattrs: BTreeMap<Ino, Vec<Xattr>>,
    /// Per file, its placed chunks in index order (`chunks.rs`).
    pub(crate) chunks: BTreeMap<Ino, Vec<ChunkPlace>>,
    /// Chunks of files that are gone, until deleted (`garbage.rs`).
    pub(crate) garbage: BTreeMap<Ino, Garbage>,
    /// Stale copies of chunks on nodes, by (node, file, index), until
    /// deleted (`garbage.rs`).
    pub(crate) left: BTreeMap<(NodeId, Ino, u64), LeftCopy>,
    /// Roots of subtrees other ministries own, hanging in this namespace.
    pub(crate) foreign: BTreeMap<Ino, Mount>,
    /// Top-level roots besides `root`: subtrees attached from another
    /// ministry (`MetaOp::Attach` without a parent). Each is a directory
    /// with no name here whose parent is itself.
    pub(crate) roots: BTreeSet<Ino>,
    /// Detached subtrees whose image is kept, by transfer id, until the
    /// target attached them (`ForgetExport`) or they are put back
    /// (`Reattach`).
    pub(crate) exports: BTreeMap<u64, Export>,
    /// Transfers this ministry finished its part of, so a resent step
    /// answers as the first one did.
    pub(crate) finished: BTreeMap<u64, Finished>,
    /// Granted, unused inode numbers: `[start, end)` ranges in grant order.
    pub(crate) free: VecDeque<(u64, u64)>,
    /// Every range granted so far ends at or below this.
    pub(crate) granted_to: u64,
    pub(crate) feed: ChangeFeed,
    /// Derived (rebuilt on restore): numbers left in `free`.
    pub(crate) free_count: u64,
    /// Derived: sum of file and symlink sizes.
    pub(crate) total_bytes: u128,
}

/// An extended attribute: (name, value).
pub(crate) type Xattr = (Box<[u8]>, Box<[u8]>);

/// Who asks, when, and at which log index: everything an operation needs
/// besides its arguments.
pub(crate) struct Ctx<'a> {
    pub index: Index,
    pub now: Nanos,
    pub creds: &'a Credentials,
}

/// What an entry points at.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target<'a> {
    Local(Ino, &'a Inode),
    Foreign(ForeignRoot),
}

impl Default for Namespace {
    /// A ministry owning "/": root is [`ROOT`], owned by root, mode 0755.
    fn default() -> Self {
        Namespace::new(ROOT, ChangeFeed::default())
    }
}

impl Namespace {
    /// An empty namespace whose root directory is `root` (owned by uid 0,
    /// mode 0755, time 0) with no inode numbers granted yet.
    pub fn new(root: Ino, feed: ChangeFeed) -> Self {
        assert!(root.0 != 0, "inode 0 is never valid");
        let mut inodes = InodeTable::default();
        inodes.insert(
            root,
            Inode {
                size: 0,
                atime: 0,
                mtime: 0,
                ctime: 0,
                meta_seq: 0,
                data_seq: 0,
                parent: root,
                mode: 0o755,
                uid: 0,
                gid: 0,
                nlink: 2,
                chunk_size: Layout::default().chunk_size,
                stripe_count: Layout::default().stripe_count,
                replicas: Layout::default().replicas,
                kind: FileType::Dir,
            },
        );
        Namespace {
            root,
            inodes,
            entries: BTreeMap::new(),
            extra_links: BTreeMap::new(),
            symlinks: BTreeMap::new(),
            xattrs: BTreeMap::new(),
            chunks: BTreeMap::new(),
            garbage: BTreeMap::new(),
            left: BTreeMap::new(),
            foreign: BTreeMap::new(),
            roots: BTreeSet::new(),
            exports: BTreeMap::new(),
            finished: BTreeMap::new(),
            free: VecDeque::new(),
            granted_to: root.0.saturating_add(1),
            feed,
            free_count: 0,
            total_bytes: 0,
        }
    }

    pub fn root(&self) -> Ino {
        self.root
    }

    /// Inodes in use.
    pub fn inode_count(&self) -> u64 {
        self.inodes.len()
    }

    pub fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    // ---- lookups shared by the operations ----

    /// A local inode; EREMOTE for a foreign subtree's root, ENOENT otherwise.
    pub(crate) fn inode(&self, ino: Ino) -> MetaResult<&Inode> {
        match self.inodes.get(ino) {
            Some(inode) => Ok(inode),
            None if self.foreign.contains_key(&ino) => Err(Errno::EREMOTE),
            None => Err(Errno::ENOENT),
        }
    }

    /// A local directory: [`Self::inode`] errors, or ENOTDIR.
    pub(crate) fn dir(&self, ino: Ino) -> MetaResult<&Inode> {
        let inode = self.inode(ino)?;
        if inode.kind != FileType::Dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(inode)
    }

    /// A local inode or a foreign root: ENOENT if neither.
    pub(crate) fn object(&self, ino: Ino) -> MetaResult<Target<'_>> {
        if let Some(inode) = self.inodes.get(ino) {
            return Ok(Target::Local(ino, inode));
        }
        match self.foreign.get(&ino) {
            Some(m) => Ok(Target::Foreign(ForeignRoot {
                ino,
                ministry: m.ministry,
            })),
            None => Err(Errno::ENOENT),
        }
    }

    /// The entry `name` of directory `parent`, if any (no checks on either).
    pub(crate) fn child(&self, parent: Ino, name: &[u8]) -> Option<Ino> {
        if name.len() > NAME_MAX {
            return None;
        }
        let mut key = [0u8; 8 + NAME_MAX];
        key[..8].copy_from_slice(&parent.0.to_be_bytes());
        key[8..8 + name.len()].copy_from_slice(name);
        self.entries.get(&key[..8 + name.len()]).copied()
    }

    pub(crate) fn child_target(&self, parent: Ino, name: &[u8]) -> Option<Target<'_>> {
        let ino = self.child(parent, name)?;
        Some(
            self.object(ino)
                .expect("every entry points at an inode or a foreign root"),
        )
    }

    /// Entries of `dir` after the name `after`, in name order.
    pub(crate) fn children(
        &self,
        dir: Ino,
        after: Option<&[u8]>,
    ) -> impl Iterator<Item = (&[u8], Ino)> + '_ {
        let lower = match after {
            Some(name) => Bound::Excluded(entry_key(dir, name)),
            None => Bound::Included(dir.0.to_be_bytes().to_vec()),
        };
        let upper = match dir.0.checked_add(1) {
            Some(next) => Bound::Excluded(next.to_be_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        let bounds = (
            lower.as_ref().map(Vec::as_slice),
            upper.as_ref().map(Vec::as_slice),
        );
        // The bounds are only read during this call; the iterator borrows
        // the map alone.
        self.entries
            .range::<[u8], _>(bounds)
            .map(|(key, &ino)| (&key[8..], ino))
    }

    pub(crate) fn is_empty_dir(&self, dir: Ino) -> bool {
        self.children(dir, None).next().is_none()
    }

    pub(crate) fn attr(&self, ino: Ino, inode: &Inode) -> Attr {
        Attr {
            ino,
            kind: inode.kind,
            mode: inode.mode,
            uid: inode.uid,
            gid: inode.gid,
            size: inode.size,
            atime: inode.atime,
            mtime: inode.mtime,
            ctime: inode.ctime,
            nlink: inode.nlink,
            layout: inode.layout(),
            meta_seq: inode.meta_seq,
            data_seq: inode.data_seq,
        }
    }

    pub(crate) fn attr_of(&self, ino: Ino) -> Attr {
        let inode = self.inodes.get(ino).expect("attr of a live inode");
        self.attr(ino, inode)
    }

    /// Whether `ancestor` is `dir` or above it.
    pub(crate) fn is_ancestor(&self, ancestor: Ino, dir: Ino) -> bool {
        self.ancestors(dir).contains(&ancestor)
    }

    /// `dir` and the directories above it up to its root (the root or an
    /// attached one, whose parent is itself), nearest first.
    pub(crate) fn ancestors(&self, dir: Ino) -> Vec<Ino> {
        let mut out = vec![dir];
        let mut cur = dir;
        while let Some(inode) = self.inodes.get(cur) {
            if inode.parent == cur {
                break;
            }
            cur = inode.parent;
            assert!(
                out.len() as u64 <= self.inodes.len(),
                "directory cycle above {dir:?}"
            );
            out.push(cur);
        }
        out
    }

    // ---- inode numbers ----

    /// The next free inode number, without taking it: ENOSPC when the
    /// granted ranges are used up.
    pub(crate) fn peek_free(&self) -> MetaResult<Ino> {
        self.free.front().map(|&(s, _)| Ino(s)).ok_or(Errno::ENOSPC)
    }

    /// Whether a number in `start..end` names a local inode or a foreign root.
    pub(crate) fn number_used(&self, start: u64, end: u64) -> bool {
        self.inodes.any_in(start, end)
            || (start < end && self.foreign.range(Ino(start)..Ino(end)).next().is_some())
    }

    pub(crate) fn is_free(&self, ino: Ino) -> bool {
        self.free.iter().any(|&(s, e)| (s..e).contains(&ino.0))
    }

    pub(crate) fn take_free(&mut self) -> Ino {
        let range = self.free.front_mut().expect("peek_free checked");
        let ino = Ino(range.0);
        range.0 += 1;
        if range.0 == range.1 {
            self.free.pop_front();
        }
        self.free_count -= 1;
        ino
    }

    // ---- changes that cannot fail ----

    pub(crate) fn insert_entry(&mut self, parent: Ino, name: &[u8], ino: Ino) {
        let old = self
            .entries
            .insert(entry_key(parent, name).into_boxed_slice(), ino);
        assert!(old.is_none(), "entry inserted over another");
    }

    pub(crate) fn remove_entry(&mut self, parent: Ino, name: &[u8]) -> Ino {
        self.entries
            .remove(entry_key(parent, name).as_slice())
            .expect("removed entry exists")
    }

    pub(crate) fn inode_mut(&mut self, ino: Ino) -> &mut Inode {
        self.inodes
            .get_mut(ino)
            .expect("inode checked before change")
    }

    /// A directory's entries changed.
    pub(crate) fn touch_dir(&mut self, dir: Ino, ctx: &Ctx) {
        let d = self.inode_mut(dir);
        d.mtime = ctx.now;
        d.ctime = ctx.now;
        d.meta_seq = ctx.index;
        d.data_seq = ctx.index;
    }

    /// An inode's metadata changed.
    pub(crate) fn touch_meta(&mut self, ino: Ino, ctx: &Ctx) {
        let i = self.inode_mut(ino);
        i.ctime = ctx.now;
        i.meta_seq = ctx.index;
    }

    /// A new inode with a first name; the caller makes the entry.
    pub(crate) fn new_inode(&mut self, ino: Ino, inode: Inode) {
        assert!(inode.mode & !super::types::MODE_MASK == 0);
        self.total_bytes += u128::from(inode.size);
        assert!(self.inodes.insert(ino, inode), "inode number reused");
    }

    /// Drops a file's or symlink's last name, or an (empty) directory.
    pub(crate) fn free_inode(&mut self, ino: Ino) {
        let inode = self.inodes.remove(ino).expect("freed inode exists");
        self.total_bytes -= u128::from(inode.size);
        self.symlinks.remove(&ino);
        self.xattrs.remove(&ino);
        // The chunks' data stays on the storage nodes until the minister's
        // agent deletes it.
        self.discard_chunks(ino, inode.chunk_size);
        debug_assert!(self
            .extra_links
            .range((ino, Ino(0))..=(ino, Ino(u64::MAX)))
            .next()
            .is_none());
    }
}

/// The entry map's key for (parent, name).
pub(crate) fn entry_key(parent: Ino, name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + name.len());
    key.extend_from_slice(&parent.0.to_be_bytes());
    key.extend_from_slice(name);
    key
}
