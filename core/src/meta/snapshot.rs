//! The snapshot format: a version byte, then the state's tables in a fixed
//! order, postcard-encoded. Decoding rebuilds the derived counters and checks
//! every invariant, so a snapshot that decodes is a namespace that holds.
//!
//! Layout (all postcard): `version: u8` ([`SNAPSHOT_VERSION`]), `root: Ino`,
//! `inodes: [(Ino, Inode)]` in number order, `entries: {key -> Ino}` (key =
//! parent big-endian ++ name), `extra_links: {(Ino, Ino) -> u32}`,
//! `symlinks: {Ino -> bytes}`, `xattrs: {Ino -> [(name, value)]}`,
//! `foreign: {Ino -> (ministry, parent, kind)}`, `roots: {Ino}` (attached
//! top-level roots), `exports: {transfer -> (parent, name, to, mounted,
//! SubtreeImage)}` (kept images), `finished: {transfer -> Finished}`,
//! `free: [(start, end)]`, `granted_to: u64`, `feed: ChangeFeed`.
//!
//! Version 2 added the foreign root's kind, `roots`, `exports` and
//! `finished` (moving subtrees between ministries); version 3 `chunks`:
//! `{Ino -> [ChunkPlace]}` after `xattrs`; version 4 `garbage`:
//! `{Ino -> Garbage}` after `chunks`; version 5 `left`:
//! `{(node, Ino, index) -> LeftCopy}` after `garbage`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::changes::ChangeFeed;
use super::chunks::ChunkPlace;
use super::garbage::{Garbage, LeftCopy};
use super::invariants::Corrupt;
use super::namespace::{Mount, Namespace, Xattr};
use super::table::InodeTable;
use super::transfer::{Export, Finished};
use super::types::Ino;
use crate::codec::{decode_exact, encode_into, DecodeError};
use crate::raft::NodeId;

/// First field of every snapshot: bumped when the encoding changes.
pub const SNAPSHOT_VERSION: u8 = 5;

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("snapshot does not decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("snapshot version {0}, expected {SNAPSHOT_VERSION}")]
    Version(u8),
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
}

#[derive(Serialize)]
struct Borrowed<'a> {
    version: u8,
    root: Ino,
    inodes: &'a InodeTable,
    entries: &'a BTreeMap<Box<[u8]>, Ino>,
    extra_links: &'a BTreeMap<(Ino, Ino), u32>,
    symlinks: &'a BTreeMap<Ino, Box<[u8]>>,
    xattrs: &'a BTreeMap<Ino, Vec<Xattr>>,
    chunks: &'a BTreeMap<Ino, Vec<ChunkPlace>>,
    garbage: &'a BTreeMap<Ino, Garbage>,
    left: &'a BTreeMap<(NodeId, Ino, u64), LeftCopy>,
    foreign: &'a BTreeMap<Ino, Mount>,
    roots: &'a BTreeSet<Ino>,
    exports: &'a BTreeMap<u64, Export>,
    finished: &'a BTreeMap<u64, Finished>,
    free: &'a VecDeque<(u64, u64)>,
    granted_to: u64,
    feed: &'a ChangeFeed,
}

#[derive(Deserialize)]
struct Owned {
    version: u8,
    root: Ino,
    inodes: InodeTable,
    entries: BTreeMap<Box<[u8]>, Ino>,
    extra_links: BTreeMap<(Ino, Ino), u32>,
    symlinks: BTreeMap<Ino, Box<[u8]>>,
    xattrs: BTreeMap<Ino, Vec<Xattr>>,
    chunks: BTreeMap<Ino, Vec<ChunkPlace>>,
    garbage: BTreeMap<Ino, Garbage>,
    left: BTreeMap<(NodeId, Ino, u64), LeftCopy>,
    foreign: BTreeMap<Ino, Mount>,
    roots: BTreeSet<Ino>,
    exports: BTreeMap<u64, Export>,
    finished: BTreeMap<u64, Finished>,
    free: VecDeque<(u64, u64)>,
    granted_to: u64,
    feed: ChangeFeed,
}

pub(crate) fn encode(ns: &Namespace) -> Vec<u8> {
    let mut out = Vec::new();
    let snapshot = Borrowed {
        version: SNAPSHOT_VERSION,
        root: ns.root,
        inodes: &ns.inodes,
        entries: &ns.entries,
        extra_links: &ns.extra_links,
        symlinks: &ns.symlinks,
        xattrs: &ns.xattrs,
        chunks: &ns.chunks,
        garbage: &ns.garbage,
        left: &ns.left,
        foreign: &ns.foreign,
        roots: &ns.roots,
        exports: &ns.exports,
        finished: &ns.finished,
        free: &ns.free,
        granted_to: ns.granted_to,
        feed: &ns.feed,
    };
    encode_into(&snapshot, &mut out);
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Namespace, RestoreError> {
    let s: Owned = decode_exact(bytes)?;
    if s.version != SNAPSHOT_VERSION {
        return Err(RestoreError::Version(s.version));
    }
    let free_count = s
        .free
        .iter()
        .try_fold(0u64, |n, &(start, end)| {
            n.checked_add(end.checked_sub(start)?)
        })
        .ok_or_else(|| Corrupt("free inode ranges overflow".into()))?;
    let total_bytes = s.inodes.iter().map(|(_, i)| u128::from(i.size)).sum();
    let ns = Namespace {
        root: s.root,
        inodes: s.inodes,
        entries: s.entries,
        extra_links: s.extra_links,
        symlinks: s.symlinks,
        xattrs: s.xattrs,
        chunks: s.chunks,
        garbage: s.garbage,
        left: s.left,
        foreign: s.foreign,
        roots: s.roots,
        exports: s.exports,
        finished: s.finished,
        free: s.free,
        granted_to: s.granted_to,
        feed: s.feed,
        free_count,
        total_bytes,
    };
    ns.check_invariants()?;
    Ok(ns)
}

impl Namespace {
    /// Decodes and checks a snapshot, with the reason when it is refused
    /// (`App::restore` only says "malformed").
    pub fn restore_checked(bytes: &[u8]) -> Result<Namespace, RestoreError> {
        decode(bytes)
    }
}
