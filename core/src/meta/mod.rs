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
//! Renames across ministries and subtree splits go through the president's
//! log and are not here.
//!
//! Not here either: atime on reads (reads do not go through the log, so
//! the namespace behaves as `noatime`), keeping an unlinked file alive while
//! it is open (leases, issue 5), and chunk maps (the data plane).

mod app;
pub mod changes;
mod create;
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
