//! The namespace a ministry owns, as a deterministic state machine
//! (DESIGN.md §3): inodes numbered from ranges the president grants,
//! directories, files, symlinks, attributes, extended attributes, POSIX
//! permission checks and errors, and a change feed keyed by log index.
//!
//! Sans-IO and clock-free: the minister stamps `now` into each
//! [`MetaRequest`] before proposing it, so every member that applies the log
//! reaches the same state. [`Namespace`] implements [`crate::node::App`];
//! exactly-once for client requests is the node's session table's job.
//!
//! | file | job |
//! |---|---|
//! | `types.rs` | `Ino`, `Attr`, `Layout`, `Credentials`, `Errno` |
//! | `ops.rs` | `MetaRequest`, `MetaOp`, `MetaReply` (the log's commands) |
//! | `name.rs` | checks on names, paths, symlink targets, xattr names |
//! | `perm.rs` | permission checks |
//! | `table.rs` | the inode table (pages of 64 inodes) |
//! | `namespace.rs` | the state and the helpers every operation shares |
//! | `links.rs` | which directories a file's names are in |
//! | `record.rs` | recording changes, with their ancestors, in the feed |
//! | `memory.rs` | heap estimates (`bytes_per_inode`) |
//! | `create.rs`, `remove.rs`, `rename.rs`, `setattr.rs`, `xattr.rs` | changes |
//! | `query.rs`, `path.rs` | reads, path resolution |
//! | `transfer.rs` | moving subtrees between ministries: detach, attach, unmount-export, forget-export, reattach, drop-root |
//! | `image.rs` | `SubtreeImage`: a detached subtree, cut out, checked, pasted in |
//! | `changes.rs` | the change feed |
//! | `invariants.rs` | the full invariant check |
//! | `app.rs` | dispatch, `App` |
//! | `snapshot.rs` | the snapshot format; restore checks every invariant |
//!
//! Other ministries' subtrees: an entry may name the root of a subtree
//! another ministry owns (`MetaOp::Mount`). Operations addressed to such a
//! root answer EREMOTE (the client redirects); lookups answer
//! `Found::Foreign`; link and rename between a local and a foreign directory
//! answer EXDEV, as POSIX does across file systems; removing, replacing or
//! moving the foreign root itself answers EBUSY, as for a mount point.
//!
//! Moving subtrees between ministries (`transfer.rs`): the president's log
//! drives the program (`crate::president::transfer`); these are the steps
//! each ministry applies, all root only and idempotent by the president's
//! transfer id, because a step may be resent after any crash:
//!
//! | op | where | what, and why |
//! |---|---|---|
//! | `Detach` | source | the entry's subtree leaves, its image kept under the transfer and answered; a foreign root with the same number takes its place, so paths keep resolving (one redirect) and an undo has its spot; EXDEV if a hard link reaches out, since a name and its inode live in one ministry |
//! | `Attach` | target | adds the image with its numbers (ranges never overlap, so numbers stay unique and clients' handles stay valid): as a new top-level root (a split) or under a name (a rename) |
//! | `UnmountExport` | source | removes the foreign root a detach left, once a rename's target holds the subtree under its new name |
//! | `ForgetExport` | source | drops the kept image once the target holds it, so images do not pile up |
//! | `Reattach` | source | puts the image back in place of its foreign root when the target refused the attach, so a failed transfer leaves the namespace as it was |
//! | `DropRoot` | target | removes an empty top-level root, the target's half of removing a directory whose subtree another ministry holds (ENOTEMPTY keeps rmdir's rule) |
//!
//! `MetaOp::LookupPathAt` resolves the `rest` a `Found::Foreign` answered
//! from the subtree's root in its ministry. A moved inode keeps its
//! attributes, including `meta_seq`/`data_seq`, which then name indexes of
//! the source's log until it changes again; the feeds record the move
//! (`ChangeKind::Detach`, `Attach`, `Reattach`, `DropRoot`), so a follower
//! walks the subtree it sees arrive.
//!
//! Not here either: atime on reads (reads do not go through the log, so
//! the namespace behaves as `noatime`), keeping an unlinked file alive while
//! it is open (leases, issue 5), and chunk maps (the data plane).

mod app;
pub mod changes;
pub mod chunks;
mod create;
pub mod garbage;
mod image;
mod invariants;
mod links;
mod memory;
pub mod name;
mod namespace;
pub mod ops;
mod path;
pub mod perm;
mod query;
mod record;
mod remove;
mod rename;
mod setattr;
mod snapshot;
mod table;
mod transfer;
pub mod types;
mod xattr;

#[cfg(test)]
mod tests;

pub use app::{decode_reply, encode_request};
pub use changes::{Change, ChangeFeed, ChangeKind, ChangePage, DEFAULT_FEED_CAP};
pub use chunks::{ChunkPlace, DegradedChunk, DegradedPage, DEGRADED_SCAN_MAX, PLACE_MAX};
pub use image::SubtreeImage;
pub use invariants::Corrupt;
pub use namespace::{Namespace, LINK_MAX};
pub use ops::{
    DirEntry, DirPage, Found, MetaOp, MetaReply, MetaRequest, SetAttr, Statfs, TimeSet, XattrHow,
};
pub use path::SYMLOOP_MAX;
pub use setattr::MAX_FILE_SIZE;
pub use snapshot::{RestoreError, SNAPSHOT_VERSION};
pub use types::{
    Attr, Credentials, Errno, FileType, ForeignRoot, Ino, Layout, MetaResult, MinistryId, Nanos,
    ROOT,
};
