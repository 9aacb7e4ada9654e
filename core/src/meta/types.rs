//! The values the namespace hands out and takes in: inode numbers, attributes,
//! credentials and POSIX error codes.

use serde::{Deserialize, Serialize};

use crate::raft::{GroupId, Index};

/// An inode number. Numbers come from ranges the president grants each
/// ministry, so an inode keeps its number when its subtree moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ino(pub u64);

/// The root of a ministry that owns "/" (`Namespace::default`). Inode 0 is
/// never valid.
pub const ROOT: Ino = Ino(1);

/// A ministry, named by its Raft group.
pub type MinistryId = GroupId;

/// Nanoseconds since the Unix epoch, stamped into each command by the
/// minister (the state machine never reads a clock).
pub type Nanos = i64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FileType {
    File,
    Dir,
    Symlink,
}

/// Permission and special bits a mode may carry (no file-type bits: the type
/// is [`FileType`]).
pub const MODE_MASK: u32 = 0o7777;
pub const S_ISUID: u32 = 0o4000;
pub const S_ISGID: u32 = 0o2000;
pub const S_ISVTX: u32 = 0o1000;

/// How a file's data is cut and placed. A directory's layout is the default
/// for what is created in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Bytes per chunk: a power of two in [`Layout::MIN_CHUNK`, `Layout::MAX_CHUNK`].
    pub chunk_size: u32,
    /// Storage shards a file's chunks are striped over (at least 1).
    pub stripe_count: u16,
    /// Copies of each chunk (at least 1).
    pub replicas: u8,
}

impl Layout {
    pub const MIN_CHUNK: u32 = 4 << 10;
    pub const MAX_CHUNK: u32 = 1 << 30;

    pub fn is_valid(&self) -> bool {
        self.chunk_size.is_power_of_two()
            && (Self::MIN_CHUNK..=Self::MAX_CHUNK).contains(&self.chunk_size)
            && self.stripe_count >= 1
            && self.replicas >= 1
    }
}

impl Default for Layout {
    /// 4 MiB chunks, 3 replicas (DESIGN.md §5).
    fn default() -> Self {
        Layout {
            chunk_size: 4 << 20,
            stripe_count: 1,
            replicas: 3,
        }
    }
}

/// What `stat` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attr {
    pub ino: Ino,
    pub kind: FileType,
    /// Permission and special bits ([`MODE_MASK`]).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes for files, target length for symlinks, 0 for directories.
    pub size: u64,
    pub atime: Nanos,
    pub mtime: Nanos,
    pub ctime: Nanos,
    /// Names of a file; 2 + subdirectories for a directory.
    pub nlink: u32,
    pub layout: Layout,
    /// Log index of the last change to this inode's metadata.
    pub meta_seq: Index,
    /// Log index of the last change to its contents (size, or entries of a
    /// directory).
    pub data_seq: Index,
}

/// Who asks. uid 0 (root) passes every permission check except execute on a
/// file with no execute bit, as in POSIX.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Credentials {
    pub fn root() -> Self {
        Credentials {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
        }
    }

    pub fn user(uid: u32, gid: u32) -> Self {
        Credentials {
            uid,
            gid,
            groups: Vec::new(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// POSIX errors the namespace answers with; [`Errno::errno`] gives the Linux
/// number a FUSE or C layer passes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum Errno {
    #[error("operation not permitted (EPERM)")]
    EPERM,
    #[error("no such file or directory (ENOENT)")]
    ENOENT,
    #[error("extended attribute value too large (E2BIG)")]
    E2BIG,
    #[error("permission denied (EACCES)")]
    EACCES,
    #[error("mount point busy (EBUSY)")]
    EBUSY,
    #[error("file exists (EEXIST)")]
    EEXIST,
    #[error("cross-ministry link (EXDEV)")]
    EXDEV,
    #[error("not a directory (ENOTDIR)")]
    ENOTDIR,
    #[error("is a directory (EISDIR)")]
    EISDIR,
    #[error("invalid argument (EINVAL)")]
    EINVAL,
    #[error("file too large (EFBIG)")]
    EFBIG,
    #[error("no inode numbers or space left (ENOSPC)")]
    ENOSPC,
    #[error("too many links (EMLINK)")]
    EMLINK,
    #[error("result out of range (ERANGE)")]
    ERANGE,
    #[error("file name too long (ENAMETOOLONG)")]
    ENAMETOOLONG,
    #[error("directory not empty (ENOTEMPTY)")]
    ENOTEMPTY,
    #[error("too many levels of symbolic links (ELOOP)")]
    ELOOP,
    #[error("no such extended attribute (ENODATA)")]
    ENODATA,
    #[error("object is owned by another ministry (EREMOTE)")]
    EREMOTE,
}

impl Errno {
    /// The Linux errno value.
    pub fn errno(self) -> i32 {
        match self {
            Errno::EPERM => 1,
            Errno::ENOENT => 2,
            Errno::E2BIG => 7,
            Errno::EACCES => 13,
            Errno::EBUSY => 16,
            Errno::EEXIST => 17,
            Errno::EXDEV => 18,
            Errno::ENOTDIR => 20,
            Errno::EISDIR => 21,
            Errno::EINVAL => 22,
            Errno::EFBIG => 27,
            Errno::ENOSPC => 28,
            Errno::EMLINK => 31,
            Errno::ERANGE => 34,
            Errno::ENAMETOOLONG => 36,
            Errno::ENOTEMPTY => 39,
            Errno::ELOOP => 40,
            Errno::ENODATA => 61,
            Errno::EREMOTE => 66,
        }
    }
}

/// The result of every namespace operation.
pub type MetaResult<T> = Result<T, Errno>;

/// An entry that names a subtree owned by another ministry: its root inode
/// and owner. Clients redirect there (DESIGN.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignRoot {
    pub ino: Ino,
    pub ministry: MinistryId,
}
