//! Commands a ministry's log carries and the answers they produce.
//!
//! Operations name their object by inode, and a new or removed entry by
//! (parent inode, name), as FUSE does: a path is resolved once
//! ([`MetaOp::LookupPath`] or `Namespace::resolve_parent`) and the change
//! does not depend on how it was reached. Reads are operations too, so they
//! can go through the log when a client wants a linearizable answer; clerks
//! answer them from their applied state with `Namespace`'s query methods.

use serde::{Deserialize, Serialize};

use super::changes::ChangePage;
use super::chunks::{ChunkPlace, DegradedPage};
use super::garbage::{GarbagePage, LeftPage};
use super::image::SubtreeImage;
use super::types::{Attr, Credentials, FileType, ForeignRoot, Ino, Layout, MinistryId, Nanos};
use crate::data::StorageNode;
use crate::raft::Index;
use crate::raft::NodeId;

/// One command of a ministry's log. The minister stamps `now` before it
/// proposes, so every member applies the same times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaRequest {
    pub op: MetaOp,
    pub creds: Credentials,
    pub now: Nanos,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaOp {
    // Ministry administration: root only (EPERM), proposed by the minister
    // from the president's orders.
    /// Adds `start..start+count` to the inode numbers this ministry may use.
    /// Ranges must come in increasing order (the president draws them from
    /// one counter), so overlap is impossible by construction (EINVAL).
    GrantInodes {
        start: u64,
        count: u64,
    },
    /// Hangs a subtree owned by another ministry at (parent, name).
    Mount {
        parent: Ino,
        name: Vec<u8>,
        root: ForeignRoot,
    },
    /// Removes a foreign subtree's entry (EINVAL if the entry is local).
    Unmount {
        parent: Ino,
        name: Vec<u8>,
    },

    // Moving subtrees between ministries (`transfer.rs`): root only (EPERM),
    // proposed from the president's transfer steps. Each is idempotent by
    // `transfer`, the president's id: a step resent after a crash answers
    // as the first one did and changes nothing more.
    /// Source: the entry (parent, name), with everything below it, leaves
    /// this namespace; a foreign root naming `to` and the same inode number
    /// takes its place, and its image is kept under `transfer` (and
    /// answered, `MetaReply::Detached`). EXDEV if a hard link reaches
    /// outside it, EBUSY if it is a foreign root or holds the foreign root
    /// of another transfer that may still be undone.
    Detach {
        transfer: u64,
        parent: Ino,
        name: Vec<u8>,
        to: MinistryId,
    },
    /// Target: adds a detached subtree with its inode numbers, as a new
    /// top-level root (`parent: None`, a split; the root must be a
    /// directory) or as the entry (parent, name) (a rename).
    Attach {
        transfer: u64,
        parent: Option<(Ino, Vec<u8>)>,
        image: SubtreeImage,
    },
    /// Source: removes the foreign root a detach left (a rename, once the
    /// target attached the subtree under its new name).
    UnmountExport {
        transfer: u64,
    },
    /// Source: drops the kept image (the target attached it).
    ForgetExport {
        transfer: u64,
    },
    /// Source: puts the kept image back in place of its foreign root (the
    /// target refused the attach). EINVAL if there is nothing to undo.
    Reattach {
        transfer: u64,
    },
    /// Removes an empty top-level root an attach made (ENOTEMPTY otherwise):
    /// the target's half of removing a directory another ministry holds.
    /// Done if no such inode exists (already dropped); EINVAL for a local
    /// inode that is not such a root.
    DropRoot {
        ino: Ino,
    },

    // Changes.
    Mkdir {
        parent: Ino,
        name: Vec<u8>,
        mode: u32,
    },
    /// Without `exclusive`, an existing file is answered as found (O_CREAT);
    /// with it, EEXIST (O_EXCL). `layout: None` takes the parent's.
    Create {
        parent: Ino,
        name: Vec<u8>,
        mode: u32,
        exclusive: bool,
        layout: Option<Layout>,
    },
    Symlink {
        parent: Ino,
        name: Vec<u8>,
        target: Vec<u8>,
    },
    Link {
        ino: Ino,
        new_parent: Ino,
        new_name: Vec<u8>,
    },
    Unlink {
        parent: Ino,
        name: Vec<u8>,
    },
    Rmdir {
        parent: Ino,
        name: Vec<u8>,
    },
    /// `noreplace` is RENAME_NOREPLACE: EEXIST if the target exists.
    Rename {
        parent: Ino,
        name: Vec<u8>,
        new_parent: Ino,
        new_name: Vec<u8>,
        noreplace: bool,
    },
    Setattr {
        ino: Ino,
        set: SetAttr,
    },
    SetXattr {
        ino: Ino,
        name: Vec<u8>,
        value: Vec<u8>,
        how: XattrHow,
    },
    RemoveXattr {
        ino: Ino,
        name: Vec<u8>,
    },
    /// Places chunks `first..first + count` (at most
    /// [`super::chunks::PLACE_MAX`]) of a file that have no place yet, over
    /// `candidates` (the minister sets them from the cluster map before
    /// proposing; a client sends them empty). W_OK on the file.
    PlaceChunks {
        ino: Ino,
        first: u64,
        count: u64,
        candidates: Vec<StorageNode>,
    },
    /// A new replica set for placed chunk `index`: without the nodes in
    /// `drop` (dead, or missing from the map), topped up to the file's
    /// replica count from `candidates` (set by the minister, as for
    /// `PlaceChunks`), at a new version. With `drop` empty the replicas stay
    /// and only the version moves (a rewrite repairs a corrupt copy). The
    /// caller then copies the data from a surviving replica. W_OK.
    Replace {
        ino: Ino,
        index: u64,
        drop: Vec<NodeId>,
        candidates: Vec<StorageNode>,
    },
    /// Data was written up to byte `end`: the size grows to it (never
    /// shrinks), mtime moves. W_OK on the file.
    Written {
        ino: Ino,
        end: u64,
    },

    // Reads.
    Lookup {
        parent: Ino,
        name: Vec<u8>,
    },
    /// An absolute path from this ministry's root; `follow` follows a
    /// symlink in the last component (intermediate ones are always followed).
    LookupPath {
        path: Vec<u8>,
        follow: bool,
    },
    /// [`MetaOp::LookupPath`] from a directory of this ministry, usually a
    /// subtree's root a `Found::Foreign` named (with its `rest`).
    LookupPathAt {
        start: Ino,
        path: Vec<u8>,
        follow: bool,
    },
    Stat {
        ino: Ino,
    },
    /// access(2): `mask` of `R_OK | W_OK | X_OK`.
    Access {
        ino: Ino,
        mask: u32,
    },
    /// Direct children in name order, after the name `after` (the last one
    /// of the previous page), at most `limit` (1 to [`READDIR_MAX`]).
    Readdir {
        dir: Ino,
        after: Option<Vec<u8>>,
        limit: u32,
    },
    Readlink {
        ino: Ino,
    },
    Statfs,
    GetXattr {
        ino: Ino,
        name: Vec<u8>,
    },
    ListXattr {
        ino: Ino,
    },
    /// The placed chunks among `first..first + count` of a file. R_OK.
    Chunks {
        ino: Ino,
        first: u64,
        count: u64,
    },
    /// Changes under `dir` (itself or any descendant at change time) with a
    /// log index above `since`, at most about `limit` (1 to
    /// [`CHANGES_MAX`]), never past what is applied (and so committed).
    /// Root only (EACCES): the feed shows names in subdirectories whose
    /// permissions it does not check.
    Changes {
        dir: Ino,
        since: Index,
        limit: u32,
    },
    /// Placed chunks that need repair, for the minister's re-replication:
    /// a replica on a node of `down`, or fewer replicas than the file's
    /// layout asks while `up` nodes could hold them. In (ino, index) order
    /// from `from` on, at most `limit` (1 to
    /// [`super::chunks::PLACE_MAX`]). Root only (EACCES).
    Degraded {
        down: Vec<NodeId>,
        up: u32,
        from: Option<(Ino, u64)>,
        limit: u32,
    },
    /// Files that are gone whose chunks are still to delete, from `from`
    /// on, at most `limit` files (1 to [`super::chunks::PLACE_MAX`]).
    /// Root only.
    Garbage {
        from: Option<Ino>,
        limit: u32,
    },
    /// Chunks `indexes` of gone file `ino` were deleted on every replica
    /// but those on the nodes in `left` (down too long), whose copies are
    /// recorded as left behind: forget them (a change). Root only.
    Collected {
        ino: Ino,
        indexes: Vec<u64>,
        left: Vec<NodeId>,
    },
    /// Copies of chunks left on `node` (dropped from a replica set, or
    /// garbage given up while it was down), from (file, index) `from` on,
    /// at most `limit` (1 to [`super::chunks::PLACE_MAX`]). Root only.
    LeftBehind {
        node: NodeId,
        from: Option<(Ino, u64)>,
        limit: u32,
    },
    /// The copies `entries` (file, index) on `node` are deleted, or the
    /// node holds a newer one: forget them (a change). Root only.
    ForgetLeft {
        node: NodeId,
        entries: Vec<(Ino, u64)>,
    },
}

/// Largest readdir page.
pub const READDIR_MAX: u32 = 1024;
/// Largest change-feed page.
pub const CHANGES_MAX: u32 = 4096;

/// What setattr changes; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAttr {
    /// chmod: permission and special bits only ([`super::types::MODE_MASK`]).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// truncate: files only.
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
}

/// utimensat's UTIME_NOW or an explicit time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeSet {
    Now,
    At(Nanos),
}

/// setxattr flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum XattrHow {
    /// Create or replace.
    Set,
    /// XATTR_CREATE: EEXIST if present.
    Create,
    /// XATTR_REPLACE: ENODATA if absent.
    Replace,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaReply {
    /// Unlink, rmdir, rename, access, xattr changes and administration.
    Done,
    /// Mkdir, symlink, link, stat, setattr: the inode afterwards.
    Attr(Attr),
    /// Create: the file, and whether this call made it.
    Created {
        attr: Attr,
        created: bool,
    },
    /// Lookup and lookup-path.
    Found(Found),
    Dir(DirPage),
    /// Readlink.
    Target(Vec<u8>),
    Statfs(Statfs),
    /// GetXattr.
    Value(Vec<u8>),
    /// ListXattr, in name order.
    Names(Vec<Vec<u8>>),
    Changes(ChangePage),
    /// Detach: the image of what left (also answered to a resent detach).
    Detached(SubtreeImage),
    /// PlaceChunks and Chunks, in index order.
    Chunks(Vec<ChunkPlace>),
    Degraded(DegradedPage),
    Garbage(GarbagePage),
    Left(LeftPage),
}

/// What a lookup found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Found {
    Local(Attr),
    /// The path enters a subtree another ministry owns: ask it for `rest`
    /// (empty when the foreign root itself was asked for) from its root.
    Foreign {
        root: ForeignRoot,
        rest: Vec<u8>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: Ino,
    pub kind: FileType,
    /// Set when the entry is the root of another ministry's subtree.
    pub foreign: Option<MinistryId>,
}

/// A readdir page. "." and ".." are not listed (the client adds them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirPage {
    pub entries: Vec<DirEntry>,
    /// More entries follow the last one.
    pub more: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statfs {
    /// Inodes in use (files, directories, symlinks).
    pub inodes: u64,
    /// Inode numbers granted and not used yet.
    pub free_inodes: u64,
    /// Sum of file and symlink sizes (saturating).
    pub bytes: u64,
    pub name_max: u32,
}
