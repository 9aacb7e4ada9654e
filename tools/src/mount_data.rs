//! File data and POSIX locks on the mount.
//!
//! Every open regular file has one [`OpenInode`], shared by all its open
//! handles: one client [`File`] (opened for reading; writes borrow a lease
//! per call), the writes' size not yet reported, and the POSIX locks
//! held on it (`mount_locks.rs`).
//!
//! Leases: all leases of the mount belong to one holder (one session), so
//! they never conflict with each other, only with other clients. A write
//! goes under the lease of a held write lock that covers it (so a process
//! that locked a range writes under that lock, as MPI-IO expects), and
//! otherwise under a write lease on the whole file taken on the first such
//! write and given back when the last handle is released. A lock is
//! first settled between the mount's own lock owners (a conflict: EAGAIN,
//! or wait for F_SETLKW), then backed by a region lease of its range:
//! F_WRLCK a write lease, F_RDLCK a read lease (or, when a clerk refuses
//! one because of the mount's own write leases, a write lease). Unlocking
//! part of a range splits it: the remaining parts get leases of their own
//! before the old one is given back. A lock owner's locks go when it
//! closes the file (flush), as POSIX says.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fuser::OpenFlags;
use govfs_client::{ClientError, File, FileSystem, FsError, LeaseOptions, OpenMode, RegionLease};
use govfs_core::lease::{Mode, Region};
use govfs_core::meta::{FileType, Ino, MetaOp};
use govfs_core::node::LeaseRefusal;
use govfs_core::raft::GroupId;
use tokio::sync::{Mutex as AsyncMutex, Notify};

use crate::mount_fs::{errno, lock, Errno, Inner};
use crate::mount_locks::{conflict, exclusive_end, inclusive_end, plan, HeldLock};

/// How long F_SETLK waits for a lease another client holds.
const TRY_LOCK: Duration = Duration::from_millis(300);
/// How long F_SETLKW (and a write's lease) waits for one.
const WAIT_LOCK: Duration = Duration::from_secs(120);
/// How long a read lock tries for a read lease before taking a write lease.
const READ_LEASE_TRY: Duration = Duration::from_millis(300);

/// One open regular file of the mount.
pub struct OpenInode {
    pub ino: u64,
    pub ministry: GroupId,
    /// An index of the ministry at which the file exists (for leases).
    seen: u64,
    /// Past the end of the furthest write not yet reported (0: none).
    pending: AtomicU64,
    /// Open handles.
    handles: AtomicUsize,
    pub state: AsyncMutex<InodeState>,
    /// Signalled whenever a lock goes or shrinks.
    unlocked: Notify,
}

pub struct InodeState {
    /// The path it was opened by (the client's `File` works by inode after).
    path: String,
    /// Opened on first use; dropped after a truncate.
    pub file: Option<File>,
    /// The whole-file write lease writes outside locks go under.
    data_lease: Option<RegionLease>,
    locks: Vec<HeldLock<RegionLease>>,
}

impl InodeState {
    /// Gives back the whole-file write lease (a truncate takes its own:
    /// holding this one would make it wait for a revocation).
    pub async fn release_data_lease(&mut self) {
        if let Some(l) = self.data_lease.take() {
            release_all([l]).await;
        }
    }
}

impl OpenInode {
    /// The size writes reached that the ministry has not been told yet.
    pub fn pending_size(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// Tells the ministry the size and mtime of the writes so far
    /// (`MetaOp::Written`), through the caller's namespace handle so that
    /// its later reads see it. A file removed meanwhile needs no report.
    pub async fn report(&self, fs: &AsyncMutex<FileSystem>, path: &str) -> Result<(), Errno> {
        let end = self.pending.swap(0, Ordering::AcqRel);
        if end == 0 {
            return Ok(());
        }
        let op = MetaOp::Written {
            ino: Ino(self.ino),
            end,
        };
        let r = fs.lock().await.call(self.ministry, op, path).await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.errno() == libc::ENOENT => Ok(()),
            Err(e) => {
                self.pending.fetch_max(end, Ordering::AcqRel);
                Err(errno(&e))
            }
        }
    }
}

/// Gives leases back, logging what fails (they expire anyway).
async fn release_all(leases: impl IntoIterator<Item = RegionLease>) {
    for l in leases {
        if let Err(e) = l.release().await {
            tracing::debug!("releasing a lease: {e}");
        }
    }
}

impl Inner {
    fn opened(&self, ino: u64) -> Result<Arc<OpenInode>, Errno> {
        lock(&self.open).get(&ino).cloned().ok_or(libc::EBADF)
    }

    /// open(2) of a regular file: a handle on its shared [`OpenInode`].
    pub async fn open(&self, ino: u64, flags: OpenFlags, uid: u32, gid: u32) -> Result<u64, Errno> {
        let path = self.path(ino)?;
        let fs = self.fs(uid, gid);
        if uid != 0 {
            let mask = match flags.acc_mode() {
                fuser::OpenAccMode::O_RDONLY => 4,
                fuser::OpenAccMode::O_WRONLY => 2,
                fuser::OpenAccMode::O_RDWR => 6,
            };
            let ok = fs.lock().await.access(&path, mask).await;
            ok.map_err(|e| errno(&e))?;
        }
        let existing = lock(&self.open).get(&ino).cloned();
        let candidate = match existing {
            Some(oi) => oi,
            None => {
                let mut fs = fs.lock().await;
                let (ministry, attr) = fs.locate(&path, true).await.map_err(|e| errno(&e))?;
                match attr.kind {
                    FileType::File => {}
                    FileType::Dir => return Err(libc::EISDIR),
                    FileType::Symlink => return Err(libc::ELOOP),
                }
                Arc::new(OpenInode {
                    ino,
                    ministry,
                    seen: fs.session().seen(ministry),
                    pending: AtomicU64::new(0),
                    handles: AtomicUsize::new(0),
                    state: AsyncMutex::new(InodeState {
                        path,
                        file: None,
                        data_lease: None,
                        locks: Vec::new(),
                    }),
                    unlocked: Notify::new(),
                })
            }
        };
        // Counted under the map's lock, so a release cannot drop it meanwhile.
        let fh = self.next_fh();
        {
            let mut open = lock(&self.open);
            let oi = open.entry(ino).or_insert(candidate);
            oi.handles.fetch_add(1, Ordering::AcqRel);
        }
        lock(&self.handles).insert(fh, ino);
        Ok(fh)
    }

    /// The client's `File` of an open inode, opened on first use.
    async fn file<'a>(
        &self,
        st: &'a mut InodeState,
        uid: u32,
        gid: u32,
    ) -> Result<&'a mut File, Errno> {
        if st.file.is_none() {
            let fs = self.fs(uid, gid);
            let f = fs.lock().await.open_file(&st.path, OpenMode::Read).await;
            st.file = Some(f.map_err(|e| errno(&e))?);
        }
        st.file.as_mut().ok_or(libc::EIO)
    }

    pub async fn read(
        &self,
        ino: u64,
        offset: u64,
        size: u32,
        uid: u32,
        gid: u32,
    ) -> Result<Vec<u8>, Errno> {
        let oi = self.opened(ino)?;
        let mut st = oi.state.lock().await;
        let file = self.file(&mut st, uid, gid).await?;
        file.read_at(offset, u64::from(size))
            .await
            .map_err(|e| errno(&e))
    }

    /// A lease of the mount's holder on `[start, end)` of `oi`.
    async fn acquire(
        &self,
        oi: &OpenInode,
        start: u64,
        end: u64,
        mode: Mode,
        wait: Duration,
    ) -> Result<RegionLease, Errno> {
        let region = Region::new(start, end).ok_or(libc::EINVAL)?;
        let opts = LeaseOptions {
            deadline: wait,
            ..LeaseOptions::default()
        };
        let mut session = self.leases.lock().await;
        // The holder waits for an index at which the file exists.
        session.saw_index(oi.ministry, oi.seen);
        match session
            .acquire_lease(oi.ministry, Ino(oi.ino), region, mode, &opts)
            .await
        {
            Ok(grant) => Ok(RegionLease::start(&session, grant, &opts)),
            Err(ClientError::LeaseTimeout { .. }) => Err(libc::EAGAIN),
            Err(ClientError::Lease {
                refusal: LeaseRefusal::Full(_),
                ..
            }) => Err(libc::ENOLCK),
            Err(e) => {
                tracing::warn!("lease on inode {} [{start}, {end}): {e}", oi.ino);
                Err(libc::EIO)
            }
        }
    }

    pub async fn write(
        &self,
        ino: u64,
        offset: u64,
        data: &[u8],
        uid: u32,
        gid: u32,
    ) -> Result<(), Errno> {
        let oi = self.opened(ino)?;
        let end = offset.checked_add(data.len() as u64).ok_or(libc::EFBIG)?;
        let mut st = oi.state.lock().await;
        self.file(&mut st, uid, gid).await?;
        for attempt in 0..2 {
            // Under a held write lock that covers the write, else under the
            // whole-file lease.
            let from_lock = st.locks.iter().position(|l| {
                l.write
                    && l.start <= offset
                    && end <= l.end
                    && l.backing.as_ref().is_some_and(|b| b.valid())
            });
            let lease = match from_lock {
                Some(i) => st.locks[i].backing.take(),
                None => {
                    if !st.data_lease.as_ref().is_some_and(|l| l.valid()) {
                        if let Some(old) = st.data_lease.take() {
                            release_all([old]).await;
                        }
                        let l = self
                            .acquire(&oi, 0, u64::MAX, Mode::Write, WAIT_LOCK)
                            .await?;
                        st.data_lease = Some(l);
                    }
                    st.data_lease.take()
                }
            };
            let file = st.file.as_mut().ok_or(libc::EIO)?;
            if let Err(wrong) = file.replace_lease(lease) {
                drop(wrong);
                return Err(libc::EIO);
            }
            let r = file.write_at(offset, data).await;
            let back = file.replace_lease(None).unwrap_or(None);
            match from_lock {
                Some(i) => st.locks[i].backing = back,
                None => st.data_lease = back,
            }
            match r {
                Ok(()) => {
                    oi.pending.fetch_max(end, Ordering::AcqRel);
                    return Ok(());
                }
                // The whole-file lease was revoked for another client: take it again.
                Err(FsError::LeaseLost { .. }) if from_lock.is_none() && attempt == 0 => {}
                Err(e) => {
                    tracing::warn!("write of inode {ino} at {offset}: {e}");
                    return Err(errno(&e));
                }
            }
        }
        Err(libc::EIO)
    }

    /// close(2) of one descriptor: the owner's locks go, the size is reported.
    pub async fn flush(&self, ino: u64, owner: u64, uid: u32, gid: u32) -> Result<(), Errno> {
        let oi = self.opened(ino)?;
        self.unlock_owner(&oi, Some(owner)).await;
        let path = oi.state.lock().await.path.clone();
        oi.report(&self.fs(uid, gid), &path).await
    }

    pub async fn fsync(&self, ino: u64, uid: u32, gid: u32) -> Result<(), Errno> {
        let oi = self.opened(ino)?;
        let path = oi.state.lock().await.path.clone();
        oi.report(&self.fs(uid, gid), &path).await
    }

    /// The last handle of a file gone: report, give back every lease.
    pub async fn release(&self, ino: u64, fh: u64, uid: u32, gid: u32) -> Result<(), Errno> {
        lock(&self.handles).remove(&fh);
        let last = {
            let mut open = lock(&self.open);
            match open.get(&ino) {
                Some(oi) if oi.handles.fetch_sub(1, Ordering::AcqRel) == 1 => open.remove(&ino),
                _ => None,
            }
        };
        let Some(oi) = last else { return Ok(()) };
        self.close_inode(&oi, uid, gid).await
    }

    async fn close_inode(&self, oi: &OpenInode, uid: u32, gid: u32) -> Result<(), Errno> {
        self.unlock_owner(oi, None).await;
        let (path, lease) = {
            let mut st = oi.state.lock().await;
            st.file = None;
            (st.path.clone(), st.data_lease.take())
        };
        let reported = oi.report(&self.fs(uid, gid), &path).await;
        release_all(lease).await;
        reported
    }

    /// Unmount: every open file reported and its leases given back.
    pub async fn close_all(&self) {
        let all: Vec<Arc<OpenInode>> = lock(&self.open).drain().map(|(_, oi)| oi).collect();
        for oi in all {
            if let Err(e) = self.close_inode(&oi, 0, 0).await {
                tracing::warn!("closing inode {} at unmount: errno {e}", oi.ino);
            }
        }
    }

    /// Drops the locks of `owner` (every owner: `None`) on `oi`.
    async fn unlock_owner(&self, oi: &OpenInode, owner: Option<u64>) {
        let gone: Vec<RegionLease> = {
            let mut st = oi.state.lock().await;
            let (gone, kept) = std::mem::take(&mut st.locks)
                .into_iter()
                .partition(|l| owner.is_none_or(|o| l.owner == o));
            st.locks = kept;
            gone.into_iter()
                .filter_map(|l: HeldLock<_>| l.backing)
                .collect()
        };
        if !gone.is_empty() || owner.is_none() {
            oi.unlocked.notify_waiters();
        }
        release_all(gone).await;
    }

    /// F_GETLK: the first lock of another owner of the mount in the way,
    /// as (start, inclusive end, type, pid), or F_UNLCK.
    pub async fn getlk(
        &self,
        ino: u64,
        owner: u64,
        start: u64,
        end: u64,
        typ: i32,
    ) -> Result<(u64, u64, i32, u32), Errno> {
        let oi = self.opened(ino)?;
        let st = oi.state.lock().await;
        let write = typ == libc::F_WRLCK;
        Ok(
            match conflict(&st.locks, owner, start, exclusive_end(end), write) {
                Some(l) => (
                    l.start,
                    inclusive_end(l.end),
                    if l.write {
                        libc::F_WRLCK
                    } else {
                        libc::F_RDLCK
                    },
                    l.pid,
                ),
                None => (start, end, libc::F_UNLCK, 0),
            },
        )
    }

    /// F_SETLK (`sleep`: F_SETLKW).
    #[allow(clippy::too_many_arguments)]
    pub async fn setlk(
        &self,
        ino: u64,
        owner: u64,
        pid: u32,
        start: u64,
        end: u64,
        typ: i32,
        sleep: bool,
    ) -> Result<(), Errno> {
        let oi = self.opened(ino)?;
        let kind = match typ {
            libc::F_UNLCK => None,
            libc::F_RDLCK => Some(false),
            libc::F_WRLCK => Some(true),
            _ => return Err(libc::EINVAL),
        };
        let end = exclusive_end(end);
        if end <= start {
            return Err(libc::EINVAL);
        }
        loop {
            let notified = oi.unlocked.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut st = oi.state.lock().await;
            if let Some(write) = kind {
                if conflict(&st.locks, owner, start, end, write).is_some() {
                    if !sleep {
                        return Err(libc::EAGAIN);
                    }
                    drop(st);
                    notified.await;
                    continue;
                }
            }
            let p = plan(&st.locks, owner, start, end, kind);
            if p.is_empty() {
                return Ok(());
            }
            let wait = if sleep { WAIT_LOCK } else { TRY_LOCK };
            let mut added = Vec::with_capacity(p.add.len());
            for r in &p.add {
                let backing = match self
                    .lock_lease(&oi, &st, r.start, r.end, r.write, wait)
                    .await
                {
                    Ok(l) => Some(l),
                    // What is left of a range after an unlock stays locked
                    // here even without a lease of its own.
                    Err(e) if kind.is_none() => {
                        tracing::warn!("inode {ino}: no lease for a split lock: errno {e}");
                        None
                    }
                    Err(e) => {
                        release_all(added.into_iter().filter_map(|l: HeldLock<_>| l.backing)).await;
                        return Err(e);
                    }
                };
                added.push(HeldLock {
                    owner,
                    pid,
                    start: r.start,
                    end: r.end,
                    write: r.write,
                    backing,
                });
            }
            let mut gone = Vec::with_capacity(p.remove.len());
            for &i in p.remove.iter().rev() {
                gone.push(st.locks.remove(i));
            }
            st.locks.extend(added);
            drop(st);
            oi.unlocked.notify_waiters();
            release_all(gone.into_iter().filter_map(|l| l.backing)).await;
            return Ok(());
        }
    }

    /// The lease backing a lock: a write lease for a write lock; for a
    /// read lock a read lease from a clerk, or a write lease when the
    /// clerks refuse one (they do while the mount itself writes the file).
    async fn lock_lease(
        &self,
        oi: &OpenInode,
        st: &InodeState,
        start: u64,
        end: u64,
        write: bool,
        wait: Duration,
    ) -> Result<RegionLease, Errno> {
        if !write {
            let writing = st.data_lease.is_some() || st.locks.iter().any(|l| l.write);
            if !writing {
                let wait_read = wait.min(READ_LEASE_TRY);
                if let Ok(l) = self.acquire(oi, start, end, Mode::Read, wait_read).await {
                    return Ok(l);
                }
            }
        }
        self.acquire(oi, start, end, Mode::Write, wait).await
    }
}
