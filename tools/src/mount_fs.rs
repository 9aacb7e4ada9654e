//! The FUSE file system of `govfs mount`: the kernel's calls (fuser,
//! synchronous) handed to tokio tasks, each answering its reply when done,
//! so a slow call (a lease that waits) does not hold up the others.
//!
//! Namespace calls go to the client's [`FileSystem`] by path: the mount
//! keeps inode -> (parent, name) from lookups (`mount_inodes.rs`). One
//! `FileSystem` per (uid, gid) of the callers, so the ministry checks
//! permissions against who asked; calls of one credential are sequential
//! on it, which keeps them session-consistent (read-your-writes). File
//! data, writes' leases and POSIX locks are in `mount_data.rs`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, FileHandle, FileType as FuseType, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLock, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use govfs_client::{Client, FileSystem, FsError, FsOptions};
use govfs_core::meta::{Attr, Credentials, FileType, SetAttr, TimeSet, XattrHow};
use tokio::runtime::Handle;
use tokio::sync::Mutex as AsyncMutex;

use crate::mount_data::OpenInode;
use crate::mount_inodes::{join, Inodes};

/// How long the kernel may cache attributes and names.
const TTL: Duration = Duration::from_secs(1);
/// Credentials kept with a `FileSystem` each at most.
const MAX_CREDS: usize = 64;
/// Reported block size: large, so `cp` and friends move big pieces.
const BLKSIZE: u32 = 1 << 20;

pub type Errno = i32;

pub fn errno(e: &FsError) -> Errno {
    e.errno()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A namespace handle shared by the calls of one credential.
pub type SharedFs = Arc<AsyncMutex<FileSystem>>;
/// One entry of an open directory: inode, type, name.
type Listed = (u64, FuseType, String);

/// What the tasks share.
pub struct Inner {
    pub client: Client,
    pub inodes: Mutex<Inodes>,
    creds: Mutex<HashMap<(u32, u32), SharedFs>>,
    /// The mount's lease holder: every lease of the mount is this
    /// session's, so the mount's own leases never conflict with each other.
    pub leases: AsyncMutex<govfs_client::Session>,
    /// Open regular files, by inode.
    pub open: Mutex<HashMap<u64, Arc<OpenInode>>>,
    /// Open file handles: fh -> inode.
    pub handles: Mutex<HashMap<u64, u64>>,
    /// Open directories: fh -> entries (".", "..", then the listing).
    dirs: Mutex<HashMap<u64, Vec<Listed>>>,
    next_fh: AtomicU64,
}

impl Inner {
    pub fn new(client: Client) -> Inner {
        Inner {
            leases: AsyncMutex::new(client.session()),
            client,
            inodes: Mutex::new(Inodes::default()),
            creds: Mutex::new(HashMap::new()),
            open: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    /// The namespace handle of credential (uid, gid).
    pub fn fs(&self, uid: u32, gid: u32) -> Arc<AsyncMutex<FileSystem>> {
        let mut m = lock(&self.creds);
        if let Some(f) = m.get(&(uid, gid)) {
            return Arc::clone(f);
        }
        if m.len() >= MAX_CREDS {
            if let Some(k) = m.keys().next().copied() {
                m.remove(&k);
            }
        }
        let opts = FsOptions {
            creds: Credentials::user(uid, gid),
            ..FsOptions::default()
        };
        let f = Arc::new(AsyncMutex::new(FileSystem::new(self.client.clone(), opts)));
        m.insert((uid, gid), Arc::clone(&f));
        f
    }

    pub fn next_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    pub fn path(&self, ino: u64) -> Result<String, Errno> {
        lock(&self.inodes).path(ino).ok_or(libc::ENOENT)
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<(String, String), Errno> {
        let name = name.to_str().ok_or(libc::EINVAL)?.to_string();
        Ok((join(&self.path(parent)?, &name), name))
    }

    /// `attr` as the kernel gets it: with the size of writes not yet reported.
    pub fn file_attr(&self, attr: &Attr) -> fuser::FileAttr {
        let mut size = attr.size;
        if let Some(oi) = lock(&self.open).get(&attr.ino.0) {
            size = size.max(oi.pending_size());
        }
        fuser::FileAttr {
            ino: INodeNo(attr.ino.0),
            size,
            blocks: size.div_ceil(512),
            atime: time(attr.atime),
            mtime: time(attr.mtime),
            ctime: time(attr.ctime),
            crtime: time(attr.ctime),
            kind: match attr.kind {
                FileType::File => FuseType::RegularFile,
                FileType::Dir => FuseType::Directory,
                FileType::Symlink => FuseType::Symlink,
            },
            perm: (attr.mode & 0o7777) as u16,
            nlink: attr.nlink,
            uid: attr.uid,
            gid: attr.gid,
            rdev: 0,
            blksize: BLKSIZE,
            flags: 0,
        }
    }

    /// A lookup's answer: remembered, then the kernel's entry.
    fn entered(&self, parent: u64, name: &str, attr: &Attr) -> fuser::FileAttr {
        lock(&self.inodes).looked_up(parent, name, attr);
        self.file_attr(attr)
    }

    async fn getattr(&self, ino: u64, uid: u32, gid: u32) -> Result<fuser::FileAttr, Errno> {
        let path = match lock(&self.inodes).path(ino) {
            Some(p) => p,
            None => {
                // An open file whose name is gone: what we saw last.
                let last = lock(&self.inodes).last_attr(ino);
                return last.map(|a| self.file_attr(&a)).ok_or(libc::ENOENT);
            }
        };
        let fs = self.fs(uid, gid);
        let attr = fs.lock().await.lstat(&path).await.map_err(|e| errno(&e))?;
        lock(&self.inodes).seen(&attr);
        Ok(self.file_attr(&attr))
    }

    async fn lookup(
        &self,
        parent: u64,
        name: &OsStr,
        uid: u32,
        gid: u32,
    ) -> Result<fuser::FileAttr, Errno> {
        let (path, name) = self.child(parent, name)?;
        let fs = self.fs(uid, gid);
        let attr = fs.lock().await.lstat(&path).await.map_err(|e| errno(&e))?;
        Ok(self.entered(parent, &name, &attr))
    }

    #[allow(clippy::too_many_arguments)]
    async fn setattr(
        &self,
        ino: u64,
        set: SetAttr,
        uid: u32,
        gid: u32,
    ) -> Result<fuser::FileAttr, Errno> {
        let path = self.path(ino)?;
        let open = lock(&self.open).get(&ino).cloned();
        let fs = self.fs(uid, gid);
        let attr = match (set.size, open) {
            // A truncate of an open file: what was written is reported
            // first (a later report would grow it again), its whole-file lease
            // given back (the truncate takes its own), and the file's
            // cached size is dropped.
            (Some(_), Some(oi)) => {
                let mut st = oi.state.lock().await;
                oi.report(&fs, &path).await?;
                st.release_data_lease().await;
                let attr = fs.lock().await.setattr(&path, set).await;
                st.file = None;
                attr
            }
            _ => fs.lock().await.setattr(&path, set).await,
        }
        .map_err(|e| errno(&e))?;
        lock(&self.inodes).seen(&attr);
        Ok(self.file_attr(&attr))
    }

    async fn opendir(&self, ino: u64, uid: u32, gid: u32) -> Result<u64, Errno> {
        let path = self.path(ino)?;
        let fs = self.fs(uid, gid);
        let entries = fs
            .lock()
            .await
            .readdir(&path)
            .await
            .map_err(|e| errno(&e))?;
        let mut list = vec![
            (ino, FuseType::Directory, ".".to_string()),
            (ino, FuseType::Directory, "..".to_string()),
        ];
        for e in entries {
            let kind = match e.kind {
                FileType::File => FuseType::RegularFile,
                FileType::Dir => FuseType::Directory,
                FileType::Symlink => FuseType::Symlink,
            };
            list.push((e.ino.0, kind, String::from_utf8_lossy(&e.name).into_owned()));
        }
        let fh = self.next_fh();
        lock(&self.dirs).insert(fh, list);
        Ok(fh)
    }
}

/// Nanoseconds since the epoch as a time.
fn time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(at) => TimeSet::At(match at.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos().min(i64::MAX as u128) as i64,
            Err(e) => -(e.duration().as_nanos().min(i64::MAX as u128) as i64),
        }),
    }
}

fn no(e: Errno) -> fuser::Errno {
    fuser::Errno::from_i32(e)
}

/// The FUSE side: hands every call to a task on `rt`.
pub struct GovFuse {
    pub inner: Arc<Inner>,
    pub rt: Handle,
}

impl GovFuse {
    fn spawn<F>(&self, f: impl FnOnce(Arc<Inner>) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f(Arc::clone(&self.inner)));
    }
}

macro_rules! answer {
    ($reply:expr, $result:expr, |$v:ident| $ok:expr) => {
        match $result {
            Ok($v) => $ok,
            Err(e) => $reply.error(no(e)),
        }
    };
}

impl fuser::Filesystem for GovFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // POSIX locks come to us (setlk/getlk) instead of staying in the kernel.
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_POSIX_LOCKS) {
            tracing::warn!(
                "the kernel offers no POSIX lock support ({missing:?}): locks stay local"
            );
        }
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn destroy(&mut self) {
        let inner = Arc::clone(&self.inner);
        self.rt.block_on(async move { inner.close_all().await });
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (uid, gid, name) = (req.uid(), req.gid(), name.to_owned());
        self.spawn(|i| async move {
            answer!(reply, i.lookup(parent.0, &name, uid, gid).await, |a| reply
                .entry(&TTL, &a, Generation(0)))
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        lock(&self.inner.inodes).forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let (uid, gid) = (req.uid(), req.gid());
        self.spawn(|i| async move {
            answer!(reply, i.getattr(ino.0, uid, gid).await, |a| reply
                .attr(&TTL, &a))
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: atime.map(time_set),
            mtime: mtime.map(time_set),
        };
        let (ruid, rgid) = (req.uid(), req.gid());
        self.spawn(|i| async move {
            answer!(reply, i.setattr(ino.0, set, ruid, rgid).await, |a| reply
                .attr(&TTL, &a))
        });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let (uid, gid) = (req.uid(), req.gid());
        self.spawn(|i| async move {
            let r = async {
                let path = i.path(ino.0)?;
                let fs = i.fs(uid, gid);
                let t = fs.lock().await.readlink(&path).await;
                t.map_err(|e| errno(&e))
            };
            answer!(reply, r.await, |t| reply.data(&t))
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            reply.error(fuser::Errno::EPERM);
            return;
        }
        let (uid, gid, name) = (req.uid(), req.gid(), name.to_owned());
        self.spawn(|i| async move {
            let r = async {
                let (path, name) = i.child(parent.0, &name)?;
                let fs = i.fs(uid, gid);
                let made = fs
                    .lock()
                    .await
                    .create(&path, mode & !umask & 0o7777, true)
                    .await;
                let (attr, _) = made.map_err(|e| errno(&e))?;
                Ok(i.entered(parent.0, &name, &attr))
            };
            answer!(reply, r.await, |a| reply.entry(&TTL, &a, Generation(0)))
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let (uid, gid, name) = (req.uid(), req.gid(), name.to_owned());
        self.spawn(|i| async move {
            let r = async {
                let (path, name) = i.child(parent.0, &name)?;
                let fs = i.fs(uid, gid);
                let made = fs.lock().await.mkdir(&path, mode & !umask & 0o7777).await;
                let attr = made.map_err(|e| errno(&e))?;
                Ok(i.entered(parent.0, &name, &attr))
            };
            answer!(reply, r.await, |a| reply.entry(&TTL, &a, Generation(0)))
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (uid, gid, name) = (req.uid(), req.gid(), name.to_owned());
        self.spawn(|i| async move {
            let r = async {
                let (path, name) = i.child(parent.0, &name)?;
                let fs = i.fs(uid, gid);
                let done = fs.lock().await.unlink(&path).await;
                done.map_err(|e| errno(&e))?;
                lock(&i.inodes).removed(parent.0, &name);
                Ok(())
            };
            answer!(reply, r.await, |_v| reply.ok())
        });
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (uid, gid, name) = (req.uid(), req.gid(), name.to_owned());
        self.spawn(|i| async move {
            let r = async {
                let (path, name) = i.child(parent.0, &name)?;
                let fs = i.fs(uid, gid);
                let done = fs.lock().await.rmdir(&path).await;
                done.map_err(|e| errno(&e))?;
                lock(&i.inodes).removed(parent.0, &name);
                Ok(())
            };
            answer!(reply, r.await, |_v| reply.ok())
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (uid, gid, name) = (req.uid(), req.gid(), link_name.to_owned());
        let target = target.to_owned();
        self.spawn(|i| async move {
            let r = async {
                let (path, name) = i.child(parent.0, &name)?;
                let target = target.to_str().ok_or(libc::EINVAL)?;
                let fs = i.fs(uid, gid);
                let made = fs.lock().await.symlink(target, &path).await;
                let attr = made.map_err(|e| errno(&e))?;
                Ok(i.entered(parent.0, &name, &attr))
            };
            answer!(reply, r.await, |a| reply.entry(&TTL, &a, Generation(0)))
        });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE)
            || flags.contains(RenameFlags::RENAME_WHITEOUT)
        {
            reply.error(fuser::Errno::EINVAL);
            return;
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let (uid, gid) = (req.uid(), req.gid());
        let (name, newname) = (name.to_owned(), newname.to_owned());
        self.spawn(|i| async move {
            let r = async {
                let (from, name) = i.child(parent.0, &name)?;
                let (to, newname) = i.child(newparent.0, &newname)?;
                let fs = i.fs(uid, gid);
                let done = fs.lock().await.rename(&from, &to, noreplace).await;
                done.map_err(|e| errno(&e))?;
                lock(&i.inodes).renamed(parent.0, &name, newparent.0, &newname);
                Ok(())
            };
            answer!(reply, r.await, |_v| reply.ok())
        });
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let (uid, gid, newname) = (req.uid(), req.gid(), newname.to_owned());
        self.spawn(|i| async move {
            let r = async {
                let existing = i.path(ino.0)?;
                let (path, name) = i.child(newparent.0, &newname)?;
                let fs = i.fs(uid, gid);
                let made = fs.lock().await.link(&existing, &path).await;
                let attr = made.map_err(|e| errno(&e))?;
                Ok(i.entered(newparent.0, &name, &attr))
            };
            answer!(reply, r.await, |a| reply.entry(&TTL, &a, Generation(0)))
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (uid, gid) = (req.uid(), req.gid());
        self.spawn(|i| async move {
            answer!(reply, i.open(ino.0, flags, uid, gid).await, |fh| reply
                .opened(FileHandle(fh), FopenFlags::empty()))
        });
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let (uid, gid) = (req.uid(), req.gid());
        self.spawn(|i| async move {
            answer!(reply, i.read(ino.0, offset, size, uid, gid).await, |d| {
                reply.data(&d)
            })
        });
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let (uid, gid, data) = (req.uid(), req.gid(), data.to_vec());
        self.spawn(|i| async move {
            let n = data.len() as u32;
            answer!(reply, i.write(ino.0, offset, &data, uid, gid).await, |_v| {
                reply.written(n)
            })
        });
    }

    fn flush(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let (uid, gid) = (req.uid(), req.gid());
        self.spawn(|i| async move {
            answer!(reply, i.flush(ino.0, lock_owner.0, uid, gid).await, |_v| {
                reply.ok()
            })
        });
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let (uid, gid) = (req.uid(), req.gid());
        self.spawn(|i| async move {
            answer!(reply, i.release(ino.0, fh.0, uid, gid).await, |_v| reply
                .ok())
        });
    }

    fn fsync(&self, req: &Request, ino: INodeNo, _fh: FileHandle, _d: bool, reply: ReplyEmpty) {
        let (uid, gid) = (req.uid(), req.gid());
        self.spawn(
            |i| async move { answer!(reply, i.fsync(ino.0, uid, gid).await, |_v| reply.ok()) },
        );
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let (uid, gid) = (req.uid(), req.gid());
        self.spawn(|i| async move {
            answer!(reply, i.opendir(ino.0, uid, gid).await, |fh| reply
                .opened(FileHandle(fh), FopenFlags::empty()))
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let dirs = lock(&self.inner.dirs);
        let Some(list) = dirs.get(&fh.0) else {
            reply.error(fuser::Errno::EBADF);
            return;
        };
        for (k, (ino, kind, name)) in list.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), k as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.inner.dirs).remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let (uid, gid) = (req.uid(), req.gid());
        self.spawn(|i| async move {
            let fs = i.fs(uid, gid);
            let s = fs.lock().await.statfs("/").await;
            match s {
                Ok(s) => {
                    // Space is not accounted yet: a nominal 4 TiB free.
                    let free = 1u64 << 30;
                    let used = s.bytes.div_ceil(4096);
                    reply.statfs(
                        used + free,
                        free,
                        free,
                        s.inodes + s.free_inodes,
                        s.free_inodes,
                        4096,
                        s.name_max,
                        4096,
                    )
                }
                Err(e) => reply.error(no(errno(&e))),
            }
        });
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let how = if flags & libc::XATTR_CREATE != 0 {
            XattrHow::Create
        } else if flags & libc::XATTR_REPLACE != 0 {
            XattrHow::Replace
        } else {
            XattrHow::Set
        };
        let (uid, gid, name, value) = (req.uid(), req.gid(), name.to_owned(), value.to_vec());
        self.spawn(|i| async move {
            let r = async {
                let path = i.path(ino.0)?;
                let fs = i.fs(uid, gid);
                let name = name.as_encoded_bytes();
                let done = fs.lock().await.setxattr(&path, name, &value, how).await;
                done.map_err(|e| errno(&e))
            };
            answer!(reply, r.await, |_v| reply.ok())
        });
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let (uid, gid, name) = (req.uid(), req.gid(), name.to_owned());
        self.spawn(|i| async move {
            let r = async {
                let path = i.path(ino.0)?;
                let fs = i.fs(uid, gid);
                let v = fs
                    .lock()
                    .await
                    .getxattr(&path, name.as_encoded_bytes())
                    .await;
                v.map_err(|e| errno(&e))
            };
            answer!(reply, r.await, |v| xattr_reply(reply, &v, size))
        });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let (uid, gid) = (req.uid(), req.gid());
        self.spawn(|i| async move {
            let r = async {
                let path = i.path(ino.0)?;
                let fs = i.fs(uid, gid);
                let names = fs.lock().await.listxattr(&path).await;
                names.map_err(|e| errno(&e))
            };
            answer!(reply, r.await, |names| {
                let mut out = Vec::new();
                for n in names {
                    out.extend_from_slice(&n);
                    out.push(0);
                }
                xattr_reply(reply, &out, size)
            })
        });
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (uid, gid, name) = (req.uid(), req.gid(), name.to_owned());
        self.spawn(|i| async move {
            let r = async {
                let path = i.path(ino.0)?;
                let fs = i.fs(uid, gid);
                let done = fs
                    .lock()
                    .await
                    .removexattr(&path, name.as_encoded_bytes())
                    .await;
                done.map_err(|e| errno(&e))
            };
            answer!(reply, r.await, |_v| reply.ok())
        });
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let (uid, gid) = (req.uid(), req.gid());
        self.spawn(|i| async move {
            let r = async {
                let path = i.path(ino.0)?;
                let fs = i.fs(uid, gid);
                let done = fs.lock().await.access(&path, mask.bits() as u32).await;
                done.map_err(|e| errno(&e))
            };
            answer!(reply, r.await, |_v| reply.ok())
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (uid, gid, name) = (req.uid(), req.gid(), name.to_owned());
        self.spawn(|i| async move {
            let r = async {
                let (path, name) = i.child(parent.0, &name)?;
                let fs = i.fs(uid, gid);
                let exclusive = flags & libc::O_EXCL != 0;
                let made = fs
                    .lock()
                    .await
                    .create(&path, mode & !umask & 0o7777, exclusive)
                    .await;
                let (attr, _) = made.map_err(|e| errno(&e))?;
                let entry = i.entered(parent.0, &name, &attr);
                let fh = i.open(attr.ino.0, OpenFlags(flags), uid, gid).await?;
                Ok((entry, fh))
            };
            answer!(reply, r.await, |v| reply.created(
                &TTL,
                &v.0,
                Generation(0),
                FileHandle(v.1),
                FopenFlags::empty()
            ))
        });
    }

    fn getlk(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        self.spawn(|i| async move {
            answer!(
                reply,
                i.getlk(ino.0, lock_owner.0, start, end, typ).await,
                |l| { reply.locked(l.0, l.1, l.2, l.3) }
            )
        });
    }

    fn setlk(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        self.spawn(|i| async move {
            let r = i
                .setlk(ino.0, lock_owner.0, pid, start, end, typ, sleep)
                .await;
            answer!(reply, r, |_v| reply.ok())
        });
    }
}

fn xattr_reply(reply: ReplyXattr, value: &[u8], size: u32) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(fuser::Errno::ERANGE);
    } else {
        reply.data(value);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fuse_root_is_the_namespace_root() {
        assert_eq!(crate::mount_inodes::ROOT_INO, govfs_core::meta::ROOT.0);
    }
}
