//! [`FileSystem`]: the namespace by path, over ministries that run it
//! (`govfs cluster up --app meta`).
//!
//! Every call resolves its path to the ministry that holds it (the cluster
//! map's subtrees take it there directly; a foreign root met on the way,
//! from a stale map, costs one redirect) and sends one `MetaRequest`.
//! Changes go through the ministry's log exactly once ([`Session::submit`]).
//! Reads follow [`ReadConsistency`]: by default any serving member answers
//! with session consistency (this handle reads its own writes and never
//! goes back in time); `Linearizable` orders them in the log. Moves between
//! ministries (a rename across them, removing a directory another ministry
//! holds, [`FileSystem::split`]) go through the president.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use govfs_core::lease::{Mode, Region};
use govfs_core::meta::ops::READDIR_MAX;
use govfs_core::meta::{
    decode_reply, encode_request, Attr, Change, ChangePage, Credentials, DirEntry, Errno, FileType,
    Found, Ino, Layout, MetaOp, MetaReply, MetaRequest, SetAttr, Statfs, TimeSet, XattrHow, ROOT,
};
use govfs_core::president::{ClusterMap, TransferKind, TransferRequest};
use govfs_core::raft::GroupId;

use crate::client::Client;
use crate::error::ClientError;
use crate::lease::{LeaseLost, LeaseOptions, RegionLease};
use crate::session::Session;

/// Ministries one path may cross before we call it a loop.
pub const MAX_REDIRECTS: usize = 8;
/// Longest path accepted (bytes), as Linux's PATH_MAX.
pub const PATH_MAX: usize = 4096;
/// How long a transfer (split, cross-ministry rename or removal) may take.
const TRANSFER_WAIT: Duration = Duration::from_secs(60);

/// How reads (stat, lookup, readdir, readlink, statfs, xattrs, changes)
/// are answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Any serving member, once it applied everything this handle saw:
    /// read-your-writes and monotonic reads, without the minister.
    #[default]
    Session,
    /// Through the ministry's log, like a change: linearizable.
    Linearizable,
}

/// Settings of a [`FileSystem`].
#[derive(Clone, Debug)]
pub struct FsOptions {
    /// The ministry that holds "/".
    pub root_ministry: GroupId,
    /// Who asks; the ministry checks permissions against these (trusted,
    /// as NFS AUTH_SYS: holding the cluster key is the trust boundary).
    pub creds: Credentials,
    pub reads: ReadConsistency,
    /// How long one call may take, resends included.
    pub deadline: Duration,
    /// Bytes a file handle reads ahead of a sequential reader (0: none).
    pub readahead: u64,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            root_ministry: 1,
            creds: Credentials::root(),
            reads: ReadConsistency::Session,
            deadline: Duration::from_secs(20),
            readahead: 8 << 20,
        }
    }
}

/// Why a [`FileSystem`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The namespace refused, as POSIX would.
    #[error("{path}: {errno}")]
    Errno { path: String, errno: Errno },
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Refused before anything was sent.
    #[error("{path:?}: {why}")]
    BadPath { path: String, why: &'static str },
    /// The path crosses more ministries than [`MAX_REDIRECTS`].
    #[error("{path}: crosses more than {MAX_REDIRECTS} ministries")]
    TooManyRedirects { path: String },
    /// A move between ministries failed at a step and was undone.
    #[error("{path}: the move between ministries was refused: {why}")]
    TransferRefused { path: String, why: String },
    /// A split of a directory another ministry holds already.
    #[error("{path} is already held by ministry {ministry}")]
    AlreadyHeld { path: String, ministry: GroupId },
    /// The change feed no longer holds changes that old.
    #[error("{path}: changes after {since} are no longer kept: walk the tree, then follow from {resync_from}")]
    ChangesTruncated {
        path: String,
        since: u64,
        resync_from: u64,
    },
    /// The ministry answered something this call does not expect.
    #[error("ministry {ministry}: unexpected answer: {what}")]
    Unexpected { ministry: GroupId, what: String },
    /// File data could not be read or written (no replica answered, a
    /// bad layout); nothing acknowledged was lost.
    #[error("{path}: {why}")]
    Data { path: String, why: String },
    /// The file's lease is not held any more: nothing more is written
    /// under it.
    #[error("{path}: {lost}")]
    LeaseLost { path: String, lost: LeaseLost },
    /// A write on a file opened for reading.
    #[error("{path}: not open for writing")]
    NotOpenForWriting { path: String },
}

impl FsError {
    /// The Linux errno value this failure maps to (for FUSE and the C
    /// API): the namespace's own, ENAMETOOLONG or EINVAL for a bad path,
    /// ETIMEDOUT when no answer came in time, EIO otherwise.
    pub fn errno(&self) -> i32 {
        const EIO: i32 = 5;
        const ETIMEDOUT: i32 = 110;
        const EBADF: i32 = 9;
        match self {
            FsError::Errno { errno, .. } => errno.errno(),
            FsError::BadPath { why, .. } if *why == TOO_LONG => Errno::ENAMETOOLONG.errno(),
            FsError::BadPath { .. } => Errno::EINVAL.errno(),
            FsError::TooManyRedirects { .. } => Errno::ELOOP.errno(),
            FsError::TransferRefused { .. } | FsError::AlreadyHeld { .. } => Errno::EBUSY.errno(),
            FsError::Client(ClientError::Timeout { .. } | ClientError::ReadTimeout { .. }) => {
                ETIMEDOUT
            }
            FsError::NotOpenForWriting { .. } => EBADF,
            _ => EIO,
        }
    }
}

const TOO_LONG: &str = "longer than PATH_MAX";

/// An entry as its directory holds it.
struct Entry {
    ministry: GroupId,
    parent: Ino,
    name: Vec<u8>,
    found: Found,
}

/// The namespace of a cluster, by path. Holds one [`Session`], so calls on
/// one handle are sequential (`&mut self`); give each task its own handle
/// ([`FileSystem::new`] is cheap: the connections are the client's).
pub struct FileSystem {
    client: Client,
    session: Session,
    opts: FsOptions,
    /// The cluster map's subtrees, fetched on first use and after a move.
    map: Option<ClusterMap>,
}

/// The caller's clock, nanoseconds since the epoch: the time a change
/// records (the minister applies it as given, so every member agrees).
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Checks an absolute path and returns it without trailing slashes
/// ("/" stays "/").
fn clean(path: &str) -> Result<&str, FsError> {
    let bad = |why| FsError::BadPath {
        path: path.to_string(),
        why,
    };
    if path.len() > PATH_MAX {
        return Err(bad(TOO_LONG));
    }
    if !path.starts_with('/') {
        return Err(bad("not an absolute path"));
    }
    if path.contains('\0') {
        return Err(bad("contains NUL"));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed })
}

/// Splits "/a/b/c" into ("/a/b", "c"); the name is checked by the ministry.
fn split(path: &str) -> Result<(&str, &str), FsError> {
    let path = clean(path)?;
    match path.rsplit_once('/') {
        Some((parent, name)) if !name.is_empty() => {
            Ok((if parent.is_empty() { "/" } else { parent }, name))
        }
        _ => Err(FsError::BadPath {
            path: path.to_string(),
            why: "names no entry below /",
        }),
    }
}

/// The rest of a path after a subtree's root ("/" for the root itself).
fn rest_or_root(rest: &[u8]) -> Vec<u8> {
    if rest.is_empty() {
        b"/".to_vec()
    } else {
        rest.to_vec()
    }
}

fn is_read(op: &MetaOp) -> bool {
    matches!(
        op,
        MetaOp::Lookup { .. }
            | MetaOp::LookupPath { .. }
            | MetaOp::LookupPathAt { .. }
            | MetaOp::Stat { .. }
            | MetaOp::Access { .. }
            | MetaOp::Readdir { .. }
            | MetaOp::Readlink { .. }
            | MetaOp::Statfs
            | MetaOp::GetXattr { .. }
            | MetaOp::ListXattr { .. }
            | MetaOp::Changes { .. }
            | MetaOp::Chunks { .. }
            | MetaOp::Degraded { .. }
            | MetaOp::Garbage { .. }
            | MetaOp::LeftBehind { .. }
    )
}

impl FileSystem {
    pub fn new(client: Client, opts: FsOptions) -> FileSystem {
        FileSystem {
            session: client.session(),
            client,
            opts,
            map: None,
        }
    }

    pub fn options(&self) -> &FsOptions {
        &self.opts
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The client this handle calls through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// This handle's reads wait for `index` of `ministry` (what another
    /// handle saw).
    pub fn saw(&mut self, ministry: GroupId, index: u64) {
        self.session.saw_index(ministry, index);
    }

    /// A lease on `region` of the file at `path` ([`Region::WHOLE`] for the
    /// whole file), with [`LeaseOptions::default`]: see
    /// [`open_region_with`](Self::open_region_with).
    pub async fn open_region(
        &mut self,
        path: &str,
        region: Region,
        mode: Mode,
    ) -> Result<RegionLease, FsError> {
        self.open_region_with(path, region, mode, &LeaseOptions::default())
            .await
    }

    /// Resolves `path`, then acquires a `mode` lease on `region` of it
    /// from its ministry (a write lease from the minister, a read lease
    /// from a clerk), retrying conflicts and redirects until
    /// `opts.deadline`. The handle is its own holder (a session of its
    /// own), renews itself in the background and is released on drop; its
    /// [`RegionLease::check`] fails once the lease is lost (expired,
    /// revoked, refused), never silently.
    pub async fn open_region_with(
        &mut self,
        path: &str,
        region: Region,
        mode: Mode,
        opts: &LeaseOptions,
    ) -> Result<RegionLease, FsError> {
        let (ministry, attr) = self.locate(path, true).await?;
        let mut holder = self.client.session();
        // The file exists at the index this handle saw it at.
        holder.saw_index(ministry, self.session.seen(ministry));
        let grant = holder
            .acquire_lease(ministry, attr.ino, region, mode, opts)
            .await?;
        Ok(RegionLease::start(&holder, grant, opts))
    }

    /// Runs `op` in `ministry`: a read as [`FsOptions::reads`] says, a
    /// change through the log (exactly once). `path` names the object in
    /// errors.
    pub async fn call(
        &mut self,
        ministry: GroupId,
        op: MetaOp,
        path: &str,
    ) -> Result<MetaReply, FsError> {
        let read = is_read(&op);
        let req = MetaRequest {
            op,
            creds: self.opts.creds.clone(),
            now: now(),
        };
        let command = encode_request(&req);
        let deadline = self.opts.deadline;
        let (_, out) = if read && self.opts.reads == ReadConsistency::Session {
            self.session.read(ministry, command, deadline).await?
        } else {
            self.session.submit(ministry, command, deadline).await?
        };
        let reply = decode_reply(&out).map_err(|e| FsError::Unexpected {
            ministry,
            what: format!("undecodable: {e}"),
        })?;
        reply.map_err(|errno| FsError::Errno {
            path: path.to_string(),
            errno,
        })
    }

    async fn map(&mut self, refresh: bool) -> Result<&ClusterMap, FsError> {
        if refresh || self.map.is_none() {
            self.map = Some(self.client.map().await?);
        }
        Ok(self.map.as_ref().expect("set above"))
    }

    /// Resolves `path` to the ministry that holds it and its attributes;
    /// `follow` follows a symlink in the last component.
    pub async fn locate(&mut self, path: &str, follow: bool) -> Result<(GroupId, Attr), FsError> {
        let path = clean(path)?;
        let root_ministry = self.opts.root_ministry;
        let (mut ministry, mut op) =
            match self.map(false).await?.transfers.subtree_of(path.as_bytes()) {
                Some((prefix, sub)) => (
                    sub.ministry,
                    MetaOp::LookupPathAt {
                        start: Ino(sub.root),
                        path: rest_or_root(&path.as_bytes()[prefix.len()..]),
                        follow,
                    },
                ),
                None => (
                    root_ministry,
                    MetaOp::LookupPath {
                        path: path.as_bytes().to_vec(),
                        follow,
                    },
                ),
            };
        for _ in 0..MAX_REDIRECTS {
            match self.call(ministry, op, path).await? {
                MetaReply::Found(Found::Local(attr)) => return Ok((ministry, attr)),
                MetaReply::Found(Found::Foreign { root, rest }) => {
                    ministry = root.ministry;
                    op = MetaOp::LookupPathAt {
                        start: root.ino,
                        path: rest_or_root(&rest),
                        follow,
                    };
                }
                other => return Err(unexpected(ministry, other)),
            }
        }
        Err(FsError::TooManyRedirects {
            path: path.to_string(),
        })
    }

    /// stat(2): follows a final symlink.
    pub async fn stat(&mut self, path: &str) -> Result<Attr, FsError> {
        Ok(self.locate(path, true).await?.1)
    }

    /// lstat(2): a final symlink itself.
    pub async fn lstat(&mut self, path: &str) -> Result<Attr, FsError> {
        Ok(self.locate(path, false).await?.1)
    }

    /// A directory: the ministry that holds it and its inode.
    async fn dir(&mut self, path: &str) -> Result<(GroupId, Ino), FsError> {
        if clean(path)? == "/" {
            return Ok((self.opts.root_ministry, ROOT));
        }
        let (ministry, attr) = self.locate(path, true).await?;
        Ok((ministry, attr.ino))
    }

    /// The entry at `path` as its directory sees it: local, or a foreign
    /// root another ministry holds.
    async fn entry(&mut self, path: &str) -> Result<Entry, FsError> {
        let (parent, name) = split(path)?;
        let (ministry, dir) = self.dir(parent).await?;
        let name = name.as_bytes().to_vec();
        let op = MetaOp::Lookup {
            parent: dir,
            name: name.clone(),
        };
        match self.call(ministry, op, path).await? {
            MetaReply::Found(found) => Ok(Entry {
                ministry,
                parent: dir,
                name,
                found,
            }),
            other => Err(unexpected(ministry, other)),
        }
    }

    /// The directory that will hold a new entry at `path`, and its name.
    async fn place(&mut self, path: &str) -> Result<(GroupId, Ino, Vec<u8>), FsError> {
        let (parent, name) = split(path)?;
        let (ministry, dir) = self.dir(parent).await?;
        Ok((ministry, dir, name.as_bytes().to_vec()))
    }

    async fn attr_reply(
        &mut self,
        ministry: GroupId,
        op: MetaOp,
        path: &str,
    ) -> Result<Attr, FsError> {
        match self.call(ministry, op, path).await? {
            MetaReply::Attr(attr) => Ok(attr),
            other => Err(unexpected(ministry, other)),
        }
    }

    async fn done_reply(
        &mut self,
        ministry: GroupId,
        op: MetaOp,
        path: &str,
    ) -> Result<(), FsError> {
        match self.call(ministry, op, path).await? {
            MetaReply::Done => Ok(()),
            other => Err(unexpected(ministry, other)),
        }
    }

    pub async fn mkdir(&mut self, path: &str, mode: u32) -> Result<Attr, FsError> {
        let (ministry, parent, name) = self.place(path).await?;
        self.attr_reply(ministry, MetaOp::Mkdir { parent, name, mode }, path)
            .await
    }

    /// mkdir -p: makes missing parents; an existing directory is fine.
    pub async fn mkdir_all(&mut self, path: &str, mode: u32) -> Result<(), FsError> {
        let mut prefix = String::new();
        for part in clean(path)?.split('/').filter(|p| !p.is_empty()) {
            prefix = format!("{prefix}/{part}");
            match self.mkdir(&prefix, mode).await {
                Ok(_) => {}
                Err(FsError::Errno {
                    errno: Errno::EEXIST,
                    ..
                }) => {
                    if self.stat(&prefix).await?.kind != FileType::Dir {
                        return Err(FsError::Errno {
                            path: prefix,
                            errno: Errno::ENOTDIR,
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// open(O_CREAT) (`exclusive`: O_EXCL): the file's attributes and
    /// whether this call made it.
    pub async fn create(
        &mut self,
        path: &str,
        mode: u32,
        exclusive: bool,
    ) -> Result<(Attr, bool), FsError> {
        self.create_with_layout(path, mode, exclusive, None).await
    }

    /// [`create`](Self::create) with the file's data layout (chunk size,
    /// stripes, replicas); `None` takes the directory's.
    pub async fn create_with_layout(
        &mut self,
        path: &str,
        mode: u32,
        exclusive: bool,
        layout: Option<Layout>,
    ) -> Result<(Attr, bool), FsError> {
        let (ministry, parent, name) = self.place(path).await?;
        let op = MetaOp::Create {
            parent,
            name,
            mode,
            exclusive,
            layout,
        };
        match self.call(ministry, op, path).await? {
            MetaReply::Created { attr, created } => Ok((attr, created)),
            other => Err(unexpected(ministry, other)),
        }
    }

    /// symlink(2): a link at `path` pointing at `target`.
    pub async fn symlink(&mut self, target: &str, path: &str) -> Result<Attr, FsError> {
        let (ministry, parent, name) = self.place(path).await?;
        let op = MetaOp::Symlink {
            parent,
            name,
            target: target.as_bytes().to_vec(),
        };
        self.attr_reply(ministry, op, path).await
    }

    pub async fn readlink(&mut self, path: &str) -> Result<Vec<u8>, FsError> {
        let (ministry, attr) = self.locate(path, false).await?;
        match self
            .call(ministry, MetaOp::Readlink { ino: attr.ino }, path)
            .await?
        {
            MetaReply::Target(t) => Ok(t),
            other => Err(unexpected(ministry, other)),
        }
    }

    /// link(2): a new name `new` for the file at `existing`. Hard links
    /// stay within a ministry (EXDEV otherwise).
    pub async fn link(&mut self, existing: &str, new: &str) -> Result<Attr, FsError> {
        let (from, attr) = self.locate(existing, false).await?;
        let (ministry, new_parent, new_name) = self.place(new).await?;
        if ministry != from {
            return Err(FsError::Errno {
                path: new.to_string(),
                errno: Errno::EXDEV,
            });
        }
        let op = MetaOp::Link {
            ino: attr.ino,
            new_parent,
            new_name,
        };
        self.attr_reply(ministry, op, new).await
    }

    /// unlink(2): a file or symlink.
    pub async fn unlink(&mut self, path: &str) -> Result<(), FsError> {
        let (ministry, parent, name) = self.place(path).await?;
        self.done_reply(ministry, MetaOp::Unlink { parent, name }, path)
            .await
    }

    /// rmdir(2): an empty directory of this ministry. One another ministry
    /// holds is removed with [`FileSystem::remove`].
    pub async fn rmdir(&mut self, path: &str) -> Result<(), FsError> {
        let (ministry, parent, name) = self.place(path).await?;
        self.done_reply(ministry, MetaOp::Rmdir { parent, name }, path)
            .await
    }

    /// Removes a file, a symlink or an empty directory, including a
    /// directory another ministry holds (through the president: its empty
    /// root there, then the entry here).
    pub async fn remove(&mut self, path: &str) -> Result<(), FsError> {
        let e = self.entry(path).await?;
        let op = match &e.found {
            Found::Foreign { root, .. } => {
                let request = request(
                    TransferKind::RemoveRoot { to: root.ministry },
                    &e,
                    root.ino.0,
                    path,
                );
                return self.transfer(request, path).await;
            }
            Found::Local(attr) if attr.kind == FileType::Dir => MetaOp::Rmdir {
                parent: e.parent,
                name: e.name,
            },
            Found::Local(_) => MetaOp::Unlink {
                parent: e.parent,
                name: e.name,
            },
        };
        self.done_reply(e.ministry, op, path).await
    }

    /// rename(2), replacing an existing target (`noreplace`:
    /// RENAME_NOREPLACE). Between ministries it goes through the president
    /// (detach here, attach there), which never replaces a target (EEXIST).
    pub async fn rename(&mut self, from: &str, to: &str, noreplace: bool) -> Result<(), FsError> {
        let e = self.entry(from).await?;
        let (to_ministry, new_parent, new_name) = self.place(to).await?;
        if to_ministry == e.ministry {
            let op = MetaOp::Rename {
                parent: e.parent,
                name: e.name,
                new_parent,
                new_name,
                noreplace,
            };
            return self.done_reply(e.ministry, op, from).await;
        }
        let ino = match &e.found {
            Found::Local(attr) => attr.ino.0,
            Found::Foreign { root, .. } => root.ino.0,
        };
        let kind = TransferKind::Rename {
            to: to_ministry,
            new_parent: new_parent.0,
            new_name,
        };
        let request = request(kind, &e, ino, from);
        self.transfer(request, from).await
    }

    /// chmod, chown, truncate and utimens in one: the inode afterwards.
    /// A size below a file's size cuts its data first
    /// ([`File::truncate`](crate::File::truncate), under a write lease from
    /// the cut chunk to the end), so that the bytes past the new size never
    /// come back if the file grows again.
    pub async fn setattr(&mut self, path: &str, set: SetAttr) -> Result<Attr, FsError> {
        let (ministry, attr) = self.locate(path, true).await?;
        let shrinks = set
            .size
            .filter(|&size| attr.kind == FileType::File && size < attr.size);
        if let Some(size) = shrinks {
            // Leases do not check permissions: nothing is cut for a
            // caller who may not write the file.
            let access = MetaOp::Access {
                ino: attr.ino,
                mask: govfs_core::meta::perm::W_OK,
            };
            self.done_reply(ministry, access, path).await?;
            let cs = u64::from(attr.layout.chunk_size.max(1));
            let region = Region::new(size / cs * cs, u64::MAX).unwrap_or(Region::WHOLE);
            let mut file = self.open_file_region(path, region).await?;
            let cut = file.truncate(size).await;
            // This handle must see what the file's handle did.
            self.saw(ministry, file.seen());
            let closed = file.close().await;
            let cut = cut?;
            closed?;
            let rest = SetAttr { size: None, ..set };
            if rest == SetAttr::default() {
                return Ok(cut);
            }
            return self
                .attr_reply(
                    ministry,
                    MetaOp::Setattr {
                        ino: attr.ino,
                        set: rest,
                    },
                    path,
                )
                .await;
        }
        self.attr_reply(ministry, MetaOp::Setattr { ino: attr.ino, set }, path)
            .await
    }

    pub async fn chmod(&mut self, path: &str, mode: u32) -> Result<Attr, FsError> {
        let set = SetAttr {
            mode: Some(mode),
            ..SetAttr::default()
        };
        self.setattr(path, set).await
    }

    pub async fn chown(
        &mut self,
        path: &str,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<Attr, FsError> {
        self.setattr(
            path,
            SetAttr {
                uid,
                gid,
                ..SetAttr::default()
            },
        )
        .await
    }

    pub async fn truncate(&mut self, path: &str, size: u64) -> Result<Attr, FsError> {
        let set = SetAttr {
            size: Some(size),
            ..SetAttr::default()
        };
        self.setattr(path, set).await
    }

    pub async fn utimens(
        &mut self,
        path: &str,
        atime: Option<TimeSet>,
        mtime: Option<TimeSet>,
    ) -> Result<Attr, FsError> {
        let set = SetAttr {
            atime,
            mtime,
            ..SetAttr::default()
        };
        self.setattr(path, set).await
    }

    /// access(2): `mask` of R_OK (4), W_OK (2), X_OK (1).
    pub async fn access(&mut self, path: &str, mask: u32) -> Result<(), FsError> {
        let (ministry, attr) = self.locate(path, true).await?;
        self.done_reply(
            ministry,
            MetaOp::Access {
                ino: attr.ino,
                mask,
            },
            path,
        )
        .await
    }

    /// One page of a directory: at most `limit` entries after the name
    /// `after`, and whether more follow. "." and ".." are not listed.
    pub async fn readdir_page(
        &mut self,
        path: &str,
        after: Option<Vec<u8>>,
        limit: u32,
    ) -> Result<(Vec<DirEntry>, bool), FsError> {
        let (ministry, dir) = self.dir(path).await?;
        match self
            .call(ministry, MetaOp::Readdir { dir, after, limit }, path)
            .await?
        {
            MetaReply::Dir(page) => Ok((page.entries, page.more)),
            other => Err(unexpected(ministry, other)),
        }
    }

    /// Every entry of a directory, in name order (page by page).
    pub async fn readdir(&mut self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let (ministry, dir) = self.dir(path).await?;
        let (mut out, mut after) = (Vec::new(), None);
        loop {
            let op = MetaOp::Readdir {
                dir,
                after: after.take(),
                limit: READDIR_MAX,
            };
            let page = match self.call(ministry, op, path).await? {
                MetaReply::Dir(page) => page,
                other => return Err(unexpected(ministry, other)),
            };
            let more = page.more;
            out.extend(page.entries);
            match out.last() {
                Some(last) if more => after = Some(last.name.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// statfs(2) of the ministry holding `path`.
    pub async fn statfs(&mut self, path: &str) -> Result<Statfs, FsError> {
        let (ministry, _) = self.dir(path).await?;
        match self.call(ministry, MetaOp::Statfs, path).await? {
            MetaReply::Statfs(s) => Ok(s),
            other => Err(unexpected(ministry, other)),
        }
    }

    pub async fn setxattr(
        &mut self,
        path: &str,
        name: &[u8],
        value: &[u8],
        how: XattrHow,
    ) -> Result<(), FsError> {
        let (ministry, attr) = self.locate(path, true).await?;
        let op = MetaOp::SetXattr {
            ino: attr.ino,
            name: name.to_vec(),
            value: value.to_vec(),
            how,
        };
        self.done_reply(ministry, op, path).await
    }

    pub async fn getxattr(&mut self, path: &str, name: &[u8]) -> Result<Vec<u8>, FsError> {
        let (ministry, attr) = self.locate(path, true).await?;
        let op = MetaOp::GetXattr {
            ino: attr.ino,
            name: name.to_vec(),
        };
        match self.call(ministry, op, path).await? {
            MetaReply::Value(v) => Ok(v),
            other => Err(unexpected(ministry, other)),
        }
    }

    pub async fn listxattr(&mut self, path: &str) -> Result<Vec<Vec<u8>>, FsError> {
        let (ministry, attr) = self.locate(path, true).await?;
        match self
            .call(ministry, MetaOp::ListXattr { ino: attr.ino }, path)
            .await?
        {
            MetaReply::Names(n) => Ok(n),
            other => Err(unexpected(ministry, other)),
        }
    }

    pub async fn removexattr(&mut self, path: &str, name: &[u8]) -> Result<(), FsError> {
        let (ministry, attr) = self.locate(path, true).await?;
        let op = MetaOp::RemoveXattr {
            ino: attr.ino,
            name: name.to_vec(),
        };
        self.done_reply(ministry, op, path).await
    }

    /// Every change under `path` after log index `since`, up to what is
    /// committed, page by page (root only).
    pub async fn changes(&mut self, path: &str, since: u64) -> Result<Vec<Change>, FsError> {
        let (ministry, dir) = self.dir(path).await?;
        let (mut next, mut all) = (since, Vec::new());
        loop {
            let op = MetaOp::Changes {
                dir,
                since: next,
                limit: 4096,
            };
            match self.call(ministry, op, path).await? {
                MetaReply::Changes(ChangePage::Page {
                    changes,
                    next: n,
                    more,
                }) => {
                    all.extend(changes);
                    if !more {
                        return Ok(all);
                    }
                    next = n;
                }
                MetaReply::Changes(ChangePage::Truncated { resync_from }) => {
                    return Err(FsError::ChangesTruncated {
                        path: path.to_string(),
                        since: next,
                        resync_from,
                    })
                }
                other => return Err(unexpected(ministry, other)),
            }
        }
    }

    /// Gives the directory at `path` to a new ministry formed from idle
    /// shards; the path keeps resolving through the cluster map. Returns
    /// the new ministry.
    pub async fn split(&mut self, path: &str) -> Result<GroupId, FsError> {
        let e = self.entry(path).await?;
        let ino = match &e.found {
            Found::Local(attr) if attr.kind == FileType::Dir => attr.ino.0,
            Found::Local(_) => {
                return Err(FsError::Errno {
                    path: path.to_string(),
                    errno: Errno::ENOTDIR,
                })
            }
            Found::Foreign { root, .. } => {
                return Err(FsError::AlreadyHeld {
                    path: path.to_string(),
                    ministry: root.ministry,
                })
            }
        };
        self.transfer(request(TransferKind::Split, &e, ino, path), path)
            .await?;
        let key = clean(path)?.as_bytes().to_vec();
        let map = self.map(true).await?;
        map.transfers
            .subtrees
            .get(&key)
            .map(|s| s.ministry)
            .ok_or_else(|| FsError::TransferRefused {
                path: path.to_string(),
                why: "it finished, but the map does not show the subtree".into(),
            })
    }

    async fn transfer(&mut self, request: TransferRequest, path: &str) -> Result<(), FsError> {
        let outcome = self.client.transfer(request, TRANSFER_WAIT).await?;
        // The namespace moved: the cached subtrees are stale.
        self.map = None;
        match outcome {
            None => Ok(()),
            Some(why) => Err(FsError::TransferRefused {
                path: path.to_string(),
                why,
            }),
        }
    }

    /// The directory tree under `path`, one line per entry, indented by
    /// depth ("/" after directories). Boxed: an async fn cannot recurse.
    pub fn tree<'a>(
        &'a mut self,
        path: &'a str,
        depth: usize,
        out: &'a mut String,
    ) -> Pin<Box<dyn Future<Output = Result<(), FsError>> + Send + 'a>> {
        Box::pin(async move {
            for e in self.readdir(path).await? {
                let name = String::from_utf8_lossy(&e.name).into_owned();
                let dir = e.kind == FileType::Dir;
                out.push_str(&format!(
                    "{}{name}{}\n",
                    "  ".repeat(depth),
                    if dir { "/" } else { "" }
                ));
                if dir {
                    let child = if clean(path)? == "/" {
                        format!("/{name}")
                    } else {
                        format!("{}/{name}", clean(path)?)
                    };
                    self.tree(&child, depth + 1, out).await?;
                }
            }
            Ok(())
        })
    }
}

fn request(kind: TransferKind, e: &Entry, ino: u64, path: &str) -> TransferRequest {
    TransferRequest {
        kind,
        from: e.ministry,
        parent: e.parent.0,
        name: e.name.clone(),
        ino,
        path: path.trim_end_matches('/').as_bytes().to_vec(),
        now: now(),
    }
}

fn unexpected(ministry: GroupId, reply: MetaReply) -> FsError {
    FsError::Unexpected {
        ministry,
        what: format!("{reply:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked_before_anything_is_sent() {
        assert_eq!(clean("/a/b/").unwrap(), "/a/b");
        assert_eq!(clean("///").unwrap(), "/");
        assert!(matches!(clean("a/b"), Err(FsError::BadPath { .. })));
        assert!(matches!(clean("/a\0b"), Err(FsError::BadPath { .. })));
        let long = format!("/{}", "a".repeat(PATH_MAX));
        let e = clean(&long).unwrap_err();
        assert_eq!(e.errno(), Errno::ENAMETOOLONG.errno());
        assert_eq!(split("/a/b").unwrap(), ("/a", "b"));
        assert_eq!(split("/a").unwrap(), ("/", "a"));
        assert!(matches!(split("/"), Err(FsError::BadPath { .. })));
        assert_eq!(split("/").unwrap_err().errno(), Errno::EINVAL.errno());
    }

    #[test]
    fn reads_and_changes_are_told_apart() {
        assert!(is_read(&MetaOp::Statfs));
        assert!(is_read(&MetaOp::Stat { ino: ROOT }));
        assert!(!is_read(&MetaOp::Mkdir {
            parent: ROOT,
            name: b"x".to_vec(),
            mode: 0o755
        }));
    }
}
