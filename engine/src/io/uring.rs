//! The optimized backend: one io_uring per instance, files opened with
//! `O_DIRECT` (no page-cache copy, no writeback of our own data later), write
//! buffers registered with the ring (the kernel pins them once instead of on
//! every write), and a write linked (`IOSQE_IO_LINK`) to its `fdatasync`, so a
//! group commit is one `io_uring_enter` rather than two syscalls.
//!
//! Registered memory counts against `RLIMIT_MEMLOCK` (8 MiB by default)
//! unless the process has `CAP_IPC_LOCK`. When registering fails for lack of
//! it the soft limit is raised; if that is not enough either, writes go from
//! unregistered buffers (`Write` instead of `WriteFixed`) with a warning.
//!
//! Asynchronous write+sync ([`DiskIo::submit_write_and_sync`]) pushes the
//! same linked pair, calls `io_uring_enter` without waiting and returns; the
//! completions are peeked from the completion queue later. An asynchronous
//! read ([`DiskIo::submit_read`]) is one entry, handled alike. `user_data`
//! tells them apart from the blocking calls' entries (`RUN | k`, bit 63
//! set): `id << 1 | kind`, id >= 1.

use super::aligned_buf::{Allocation, Registration};
use super::{
    AlignedBuf, Chosen, Completion, DiskError, DiskIo, IoFile, OpenMode, SubmissionId, Unavailable,
    BLOCK, WRITE_BUFFER_BYTES,
};
use io_uring::{opcode, squeue, types, IoUring, Probe};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Submission queue size (every call submits what it pushes at once). The
/// completion queue, twice that, has room for one blocking call's entries
/// (`RUN_MAX`) plus `MAX_IN_FLIGHT` asynchronous pairs not reaped yet.
const RING_ENTRIES: u32 = 32;
/// Asynchronous submissions (write+sync pairs and reads) in flight at once,
/// at most. A log has one; a benchmark keeping the disk's queue full, more.
pub const MAX_IN_FLIGHT: usize = 16;
/// Largest single write submitted (a write's length is a `u32`).
const MAX_WRITE: usize = 1 << 30;
/// `user_data` of the entries of one blocking call: `RUN | k` for its
/// `k`th entry, apart from the asynchronous submissions' `id << 1 | kind`
/// (ids stay far below bit 63).
const RUN: u64 = 1 << 63;
/// The write and the sync of one blocking call.
const WRITE: u64 = RUN;
const SYNC: u64 = RUN | 1;
/// Entries one blocking call submits at most.
const RUN_MAX: usize = 16;

#[derive(Clone, Debug)]
pub struct UringOptions {
    /// Try `O_DIRECT` (used where the filesystem accepts it).
    pub direct: bool,
    /// How many write buffers to register (0: none, plain `Write`).
    pub registered_buffers: usize,
    /// Size of each registered buffer.
    pub buffer_bytes: usize,
}

impl Default for UringOptions {
    fn default() -> Self {
        UringOptions {
            direct: true,
            registered_buffers: 1,
            buffer_bytes: WRITE_BUFFER_BYTES,
        }
    }
}

pub struct UringIo {
    // Declared first so it is dropped first: the kernel may read registered
    // memory until the ring is gone.
    ring: IoUring,
    /// Tells this ring's registered buffers from another's.
    id: u64,
    direct: bool,
    /// Registered buffers, by index in the ring's buffer table. A buffer is
    /// lent out while an `AlignedBuf` holds the other reference.
    pool: Vec<Arc<Allocation>>,
    /// A wait failed with operations possibly in flight: submit nothing more.
    broken: bool,
    /// Last id handed out by `submit_write_and_sync` or `submit_read`.
    last_id: SubmissionId,
    /// Asynchronous submissions whose completions have not all arrived.
    pending: Vec<Pending>,
    /// Asynchronous submissions complete but not reaped, oldest first.
    done: VecDeque<Completion>,
}

/// An asynchronous submission until all its entries complete. Holds the
/// buffer's memory and the file so neither goes away under the kernel.
struct Pending {
    id: SubmissionId,
    file: Arc<File>,
    mem: Option<Arc<Allocation>>,
    offset: u64,
    len: usize,
    op: Op,
}

/// What a [`Pending`] submitted, with the completion result (`-errno` on
/// failure) of each of its entries once in.
enum Op {
    /// A write linked to an `fdatasync`.
    WriteSync {
        write: Option<i32>,
        sync: Option<i32>,
    },
    /// A read into `mem` (marked as being read into until it settles), of a
    /// file opened with `O_DIRECT` or not.
    Read { read: Option<i32>, direct: bool },
}

/// `user_data` kinds of an asynchronous submission's entries.
const ASYNC_WRITE: u64 = 0;
const ASYNC_SYNC: u64 = 1;
const ASYNC_READ: u64 = 0;

fn unavailable(step: &'static str) -> impl FnOnce(io::Error) -> DiskError {
    move |source| Unavailable::Os { step, source }.into()
}

fn os(op: &'static str) -> impl FnOnce(io::Error) -> DiskError {
    move |source| DiskError::Os { op, source }
}

/// A completion result (`-errno` on failure) as a `Result`.
fn completion(op: &'static str, res: i32) -> Result<usize, DiskError> {
    usize::try_from(res).map_err(|_| DiskError::Os {
        op,
        source: io::Error::from_raw_os_error(-res),
    })
}

impl UringIo {
    /// Sets up a ring for files in `dir`, checking on a probe file there that
    /// io_uring works (a sandbox may allow setup but not submission) and
    /// whether the filesystem takes `O_DIRECT`. Fails with
    /// [`DiskError::Unavailable`] where io_uring cannot be used.
    pub fn open(dir: &Path, opts: UringOptions) -> Result<Self, DiskError> {
        let ring = IoUring::new(RING_ENTRIES).map_err(unavailable("io_uring_setup"))?;
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(unavailable("io_uring opcode probe"))?;
        for (code, name) in [
            (opcode::Write::CODE, "WRITE"),
            (opcode::WriteFixed::CODE, "WRITE_FIXED"),
            (opcode::Fsync::CODE, "FSYNC"),
        ] {
            if !probe.is_supported(code) {
                return Err(Unavailable::Opcode(name).into());
            }
        }
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let mut io = UringIo {
            ring,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            direct: opts.direct,
            pool: Vec::new(),
            broken: false,
            last_id: 0,
            pending: Vec::new(),
            done: VecDeque::new(),
        };
        io.probe_write(dir)?;
        io.register_pool(opts.registered_buffers, opts.buffer_bytes);
        Ok(io)
    }

    /// Writes one block to a temporary file in `dir` through the ring. Clears
    /// `direct` if the filesystem refuses `O_DIRECT` (EINVAL, as tmpfs did
    /// before Linux 6.6).
    fn probe_write(&mut self, dir: &Path) -> Result<(), DiskError> {
        // Ends in `.tmp` so that a log directory's recovery removes one a crash left.
        let path = dir.join(".disk-io-probe.tmp");
        let file = match self.create_probe(&path) {
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::info!(dir = %dir.display(), "the filesystem refuses O_DIRECT; io_uring writes through the page cache");
                self.direct = false;
                self.create_probe(&path)
            }
            other => other,
        }
        .map_err(os("create io probe file"))?;
        let file = IoFile::new(file, self.direct);
        let mut block = AlignedBuf::new(BLOCK);
        block.fill_from(&[0; BLOCK]);
        let written = self.write(&file, 0, &block, false);
        let removed = fs::remove_file(&path).map_err(os("remove io probe file"));
        match written {
            Ok(()) => removed,
            // Submission itself is what a sandbox's seccomp filter refuses.
            Err(DiskError::Os {
                op: "io_uring_enter",
                source,
            }) => Err(Unavailable::Os {
                step: "io_uring_enter",
                source,
            }
            .into()),
            Err(e) => Err(e),
        }
    }

    fn create_probe(&self, path: &Path) -> io::Result<fs::File> {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        if self.direct {
            opts.custom_flags(libc::O_DIRECT);
        }
        opts.open(path)
    }

    /// Registers `count` buffers of `bytes`, raising `RLIMIT_MEMLOCK` if the
    /// kernel refuses for lack of it. Leaves the pool empty if it still fails.
    fn register_pool(&mut self, count: usize, bytes: usize) {
        if count == 0 {
            return;
        }
        let pool: Vec<_> = (0..count).map(|_| Allocation::new(bytes)).collect();
        let iovecs: Vec<libc::iovec> = pool
            .iter()
            .map(|mem| libc::iovec {
                iov_base: mem.as_ptr().cast_mut().cast(),
                iov_len: mem.capacity(),
            })
            .collect();
        let total: usize = iovecs.iter().map(|v| v.iov_len).sum();
        let register = || {
            // SAFETY: the iovecs describe `pool`'s allocations, which `self.pool`
            // keeps alive until the ring (dropped first) is gone.
            unsafe { self.ring.submitter().register_buffers(&iovecs) }
        };
        let result = match register() {
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => match raise_memlock(total as u64) {
                Ok(limit) => {
                    tracing::info!(limit, "raised RLIMIT_MEMLOCK to register io_uring buffers");
                    register()
                }
                Err(raise) => Err(io::Error::other(format!(
                    "{e}; raising RLIMIT_MEMLOCK failed: {raise}"
                ))),
            },
            other => other,
        };
        // Every log sets up a ring: warn once, not once per log.
        static WARNED: AtomicBool = AtomicBool::new(false);
        match result {
            Ok(()) => self.pool = pool,
            Err(e) if WARNED.swap(true, Ordering::Relaxed) => {
                tracing::debug!("disk io: registering io_uring buffers failed again ({e})")
            }
            Err(e) => tracing::warn!(
                "disk io: registering {count} io_uring buffers of {bytes} bytes failed ({e}); \
                 registered memory counts against RLIMIT_MEMLOCK (now {} bytes): raise it \
                 (ulimit -l, LimitMEMLOCK=) or grant CAP_IPC_LOCK. Writing from unregistered \
                 buffers instead (slightly more CPU per write)",
                memlock_limit().map_or_else(|e| format!("unknown: {e}"), |l| l.to_string())
            ),
        }
    }

    /// Submits `entries` and waits for all their completions. Returns each
    /// result by `user_data`.
    fn run(
        &mut self,
        entries: &[squeue::Entry],
        buf: Option<&AlignedBuf>,
    ) -> Result<[Option<i32>; RUN_MAX], DiskError> {
        self.run_with(entries, buf.as_slice())
    }

    /// [`Self::run`] with the entries pointing into several buffers. The
    /// results are by entry (`user_data` `RUN | k`).
    fn run_with(
        &mut self,
        entries: &[squeue::Entry],
        bufs: &[&AlignedBuf],
    ) -> Result<[Option<i32>; RUN_MAX], DiskError> {
        assert!(
            entries.len() <= RUN_MAX,
            "one call submits {RUN_MAX} entries at most"
        );
        if self.broken {
            return Err(DiskError::RingBroken);
        }
        // SAFETY: the entries point into `buf` (if anything) and `file`s the
        // caller borrows for this whole call. We return only once every entry
        // has completed, except after a failed wait, where `buf`'s memory is
        // leaked below so the kernel can never read freed memory.
        let pushed = unsafe { self.ring.submission().push_multiple(entries) };
        if pushed.is_err() {
            // Cannot happen: every call drains the ring, and it has room for
            // more than we push. Nothing was queued, so the ring stays usable.
            return Err(DiskError::Os {
                op: "io_uring push",
                source: io::Error::other("submission queue full"),
            });
        }
        let mut results = [None; RUN_MAX];
        let mut pending = entries.len();
        while pending > 0 {
            match self.ring.submit_and_wait(pending) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    self.fail_pending(None);
                    // If the kernel took any entry, it may still read `buf`
                    // after we return: leak it. (Blocked by seccomp, it took none.)
                    if self.ring.submission().len() < entries.len() {
                        for buf in bufs {
                            std::mem::forget(buf.share_memory());
                        }
                    }
                    return Err(DiskError::Os {
                        op: "io_uring_enter",
                        source,
                    });
                }
            }
            let cqes: Vec<(u64, i32)> = self
                .ring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result()))
                .collect();
            for (user_data, res) in cqes {
                let run = (user_data & RUN != 0).then_some((user_data & !RUN) as usize);
                if let Some(slot @ None) = run.and_then(|k| results.get_mut(k)) {
                    *slot = Some(res);
                    pending -= 1;
                } else {
                    self.note_async(user_data, res);
                }
            }
        }
        Ok(results)
    }

    /// Writes all of `buf` at `offset`; with `sync`, the last write is linked
    /// to an `fdatasync`, which runs only if that write completed in full.
    fn write(
        &mut self,
        file: &IoFile,
        offset: u64,
        buf: &AlignedBuf,
        sync: bool,
    ) -> Result<(), DiskError> {
        file.check_aligned(offset, buf)?;
        let fd = types::Fd(file.file().as_raw_fd());
        let fixed = buf
            .registration()
            .filter(|r| r.ring == self.id)
            .map(|r: Registration| r.index);
        let bytes = buf.as_slice();
        if bytes.is_empty() {
            return if sync { self.sync(file) } else { Ok(()) };
        }
        let mut done = 0;
        while done < bytes.len() {
            let rest = &bytes[done..];
            let chunk = rest.len().min(MAX_WRITE);
            // `chunk` <= MAX_WRITE fits a u32.
            let len = chunk as u32;
            let at = offset + done as u64;
            let write = match fixed {
                Some(index) => opcode::WriteFixed::new(fd, rest.as_ptr(), len, index)
                    .offset(at)
                    .build(),
                None => opcode::Write::new(fd, rest.as_ptr(), len)
                    .offset(at)
                    .build(),
            }
            .user_data(WRITE);
            let linked = sync && chunk == rest.len();
            let results = if linked {
                let fsync = opcode::Fsync::new(fd)
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
                    .user_data(SYNC);
                self.run(&[write.flags(squeue::Flags::IO_LINK), fsync], Some(buf))?
            } else {
                self.run(&[write], Some(buf))?
            };
            let written = completion("write", results[0].unwrap_or(0))?;
            if written == 0 {
                return Err(DiskError::ShortWrite {
                    written: done,
                    len: bytes.len(),
                });
            }
            done += written;
            // A short write breaks the link (the sync completes with
            // ECANCELED); the loop writes the rest and links the sync again.
            if linked && written == chunk {
                completion("fdatasync", results[1].unwrap_or(0))?;
            }
        }
        Ok(())
    }
}

impl UringIo {
    /// Hands the entries of asynchronous submission `id`, just pushed, to the
    /// kernel without waiting. If that fails the ring is broken, and `id`'s
    /// failure is returned now rather than at a poll.
    fn submit_pending(&mut self, id: SubmissionId) -> Result<SubmissionId, DiskError> {
        loop {
            match self.ring.submit() {
                Ok(_) => return Ok(id),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    // `id`'s entry, pushed last, is still queued if the kernel
                    // took none; nothing is submitted on a broken ring, so its
                    // buffer may be touched again (the memory leaks all the same).
                    if !self.ring.submission().is_empty() {
                        let p = self.pending.iter().find(|p| p.id == id);
                        if let Some(mem) = p.and_then(|p| p.mem.as_ref()) {
                            mem.set_reading(false);
                        }
                    }
                    self.fail_pending(Some(source));
                    let at = self.done.iter().position(|(d, _)| *d == id);
                    let (_, result) = self.done.remove(at.expect("failed above")).expect("found");
                    return Err(result.expect_err("failed above"));
                }
            }
        }
    }

    /// Takes every completion in the queue, without entering the kernel.
    fn reap(&mut self) {
        let cqes: Vec<(u64, i32)> = self
            .ring
            .completion()
            .map(|cqe| (cqe.user_data(), cqe.result()))
            .collect();
        for (user_data, res) in cqes {
            self.note_async(user_data, res);
        }
    }

    /// Records one completion of an asynchronous submission; once both of
    /// its entries are in, moves its result to `done`.
    fn note_async(&mut self, user_data: u64, res: i32) {
        let id = user_data >> 1;
        let Some(at) = self.pending.iter().position(|p| p.id == id) else {
            return;
        };
        let p = &mut self.pending[at];
        let complete = match (&mut p.op, user_data & 1) {
            (Op::WriteSync { write, sync }, kind) => {
                match kind {
                    ASYNC_WRITE => *write = Some(res),
                    _ => *sync = Some(res),
                }
                write.is_some() && sync.is_some()
            }
            (Op::Read { read, .. }, ASYNC_READ) => {
                *read = Some(res);
                true
            }
            // No read submits a second entry.
            (Op::Read { .. }, _) => false,
        };
        if complete {
            let p = self.pending.swap_remove(at);
            let result = match p.op {
                Op::WriteSync { .. } => settle(&p),
                Op::Read { .. } => {
                    let result = settle_read(&p);
                    // The kernel and `settle_read` are done with the bytes.
                    if let Some(mem) = &p.mem {
                        mem.set_reading(false);
                    }
                    result
                }
            };
            self.done.push_back((p.id, result));
        }
    }

    /// The ring failed with submissions possibly in flight: marks it broken,
    /// leaks what the kernel may still read, and fails every pending
    /// submission (the first with `source`, if given).
    fn fail_pending(&mut self, mut source: Option<io::Error>) {
        self.broken = true;
        for p in std::mem::take(&mut self.pending) {
            // A read's memory stays marked as being read into: the kernel may
            // still write it, so its `AlignedBuf` must not touch it again.
            if let Some(mem) = p.mem {
                std::mem::forget(mem);
            }
            std::mem::forget(p.file);
            let err = match source.take() {
                Some(source) => DiskError::Os {
                    op: "io_uring_enter",
                    source,
                },
                None => DiskError::RingBroken,
            };
            self.done.push_back((p.id, Err(err)));
        }
    }

    /// Enters the kernel, waiting for `want` completions, then reaps.
    fn enter(&mut self, want: usize) {
        let entered = if want == 0 {
            self.ring.submit()
        } else {
            self.ring.submit_and_wait(want)
        };
        match entered {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return self.fail_pending(Some(source)),
        }
        self.reap();
    }
}

/// The result of a finished asynchronous write+sync. A short write broke the
/// link (the sync completed with `ECANCELED`): the rest is written and synced
/// here with plain syscalls, which is rare enough not to matter.
fn settle(p: &Pending) -> Result<(), DiskError> {
    let Op::WriteSync { write, sync } = p.op else {
        unreachable!("settle is for writes")
    };
    let written = completion("write", write.unwrap_or(0))?;
    if written >= p.len {
        return completion("fdatasync", sync.unwrap_or(0)).map(drop);
    }
    let mem = p.mem.as_ref().expect("a non-empty write has memory");
    let short = |written| DiskError::ShortWrite {
        written,
        len: p.len,
    };
    finish(
        p,
        written,
        "pwrite",
        |done| done == 0,
        short,
        |done| {
            // SAFETY: `mem` holds at least `p.len` bytes and stays alive through
            // the call; the kernel only reads them (no Rust reference is made, so
            // this holds even if the caller broke its promise not to modify them).
            unsafe {
                libc::pwrite(
                    p.file.as_raw_fd(),
                    mem.as_ptr().add(done).cast(),
                    p.len - done,
                    (p.offset + done as u64) as libc::off_t,
                )
            }
        },
    )?;
    p.file.sync_data().map_err(os("fdatasync"))
}

/// The result of a finished asynchronous read. A short read mid-file (rare:
/// io_uring retries regular files itself) is finished here with `pread`;
/// one at the end of the file is a [`DiskError::ShortRead`].
fn settle_read(p: &Pending) -> Result<(), DiskError> {
    let Op::Read { read, direct } = p.op else {
        unreachable!("settle_read is for reads")
    };
    let read = completion("read", read.unwrap_or(0))?;
    let Some(mem) = p.mem.as_ref() else {
        return Ok(()); // nothing to read
    };
    // `O_DIRECT` moves whole blocks except at the end of the file (and
    // refuses an unaligned `pread`): a partial block means the end.
    let at_end = |done: usize| done == 0 || (direct && !done.is_multiple_of(BLOCK));
    let short = |read| DiskError::ShortRead { read, len: p.len };
    finish(p, read, "pread", at_end, short, |done| {
        // SAFETY: `mem` holds at least `p.len` bytes and stays alive through
        // the call; the kernel is done with the first read and its
        // `AlignedBuf` makes no reference to the bytes (marked as being read
        // into until this returns), so nothing else accesses them.
        unsafe {
            libc::pread(
                p.file.as_raw_fd(),
                mem.as_ptr().cast_mut().add(done).cast(),
                p.len - done,
                (p.offset + done as u64) as libc::off_t,
            )
        }
    })
}

/// Moves the rest of `p`'s bytes, from `done` on, with `call(done)` (a
/// positional syscall), again after a signal. It ends with `short(done)`
/// where `stop(done)` says no more can come, or a call moves nothing.
fn finish(
    p: &Pending,
    mut done: usize,
    op: &'static str,
    stop: impl Fn(usize) -> bool,
    short: impl Fn(usize) -> DiskError,
    call: impl Fn(usize) -> isize,
) -> Result<(), DiskError> {
    while done < p.len {
        if stop(done) {
            return Err(short(done));
        }
        match call(done) {
            0 => return Err(short(done)),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(DiskError::Os { op, source: e });
                }
            }
            n => done += n as usize,
        }
    }
    Ok(())
}

impl Drop for UringIo {
    /// Waits for asynchronous submissions still in flight, so that the files
    /// and buffers they use are released only once the kernel is done.
    fn drop(&mut self) {
        while !self.pending.is_empty() && !self.broken {
            self.enter(1);
        }
    }
}

impl DiskIo for UringIo {
    fn completion_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        Some(self.ring.as_raw_fd())
    }

    fn chosen(&self) -> Chosen {
        Chosen::Uring {
            direct: self.direct,
            registered_buffers: self.pool.len(),
        }
    }

    fn open(&mut self, path: &Path, mode: OpenMode) -> Result<IoFile, DiskError> {
        let open = |direct: bool| {
            let mut opts = OpenOptions::new();
            opts.read(true).write(true);
            if mode == OpenMode::CreateNew {
                opts.create_new(true);
            }
            if direct {
                opts.custom_flags(libc::O_DIRECT);
            }
            opts.open(path)
        };
        let (file, direct) = match open(self.direct) {
            Ok(file) => (file, self.direct),
            // The probe ran in the log's directory, but a file may live elsewhere.
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::warn!(path = %path.display(), "O_DIRECT refused; writing through the page cache");
                (open(false).map_err(os("open"))?, false)
            }
            Err(e) => return Err(os("open")(e)),
        };
        Ok(IoFile::new(file, direct))
    }

    fn buffer(&mut self, capacity: usize) -> AlignedBuf {
        let free = self.pool.iter_mut().enumerate().find_map(|(index, mem)| {
            // `get_mut` succeeds only if no `AlignedBuf` holds this memory.
            let fits = Arc::get_mut(mem).is_some_and(|m| m.capacity() >= capacity);
            fits.then_some((index, Arc::clone(mem)))
        });
        match free.and_then(|(index, mem)| Some((u16::try_from(index).ok()?, mem))) {
            Some((index, mem)) => AlignedBuf::registered(
                mem,
                Registration {
                    ring: self.id,
                    index,
                },
            ),
            None => AlignedBuf::new(capacity),
        }
    }

    fn write_at(&mut self, file: &IoFile, offset: u64, buf: &AlignedBuf) -> Result<(), DiskError> {
        self.write(file, offset, buf, false)
    }

    fn write_at_and_sync(
        &mut self,
        file: &IoFile,
        offset: u64,
        buf: &AlignedBuf,
    ) -> Result<(), DiskError> {
        self.write(file, offset, buf, true)
    }

    fn write_many(&mut self, writes: &[(&IoFile, u64, &AlignedBuf)]) -> Result<(), DiskError> {
        if writes.iter().any(|(_, _, b)| b.len() > MAX_WRITE) {
            for (file, offset, buf) in writes {
                self.write(file, *offset, buf, false)?;
            }
            return Ok(());
        }
        for group in writes.chunks(RUN_MAX) {
            let mut entries = Vec::with_capacity(group.len());
            let mut bufs = Vec::with_capacity(group.len());
            for (k, (file, offset, buf)) in group.iter().enumerate() {
                file.check_aligned(*offset, buf)?;
                let fd = types::Fd(file.file().as_raw_fd());
                let bytes = buf.as_slice();
                // `bytes.len()` <= MAX_WRITE fits a u32.
                let len = bytes.len() as u32;
                let write = match buf.registration().filter(|r| r.ring == self.id) {
                    Some(r) => opcode::WriteFixed::new(fd, bytes.as_ptr(), len, r.index)
                        .offset(*offset)
                        .build(),
                    None => opcode::Write::new(fd, bytes.as_ptr(), len)
                        .offset(*offset)
                        .build(),
                };
                entries.push(write.user_data(RUN | k as u64));
                bufs.push(*buf);
            }
            let results = self.run_with(&entries, &bufs)?;
            for (k, (file, offset, buf)) in group.iter().enumerate() {
                let written = completion("write", results[k].unwrap_or(0))?;
                if written < buf.len() {
                    // Rare (a signal, a full disk): the whole buffer again,
                    // one write at a time, which reports what stops it.
                    self.write(file, *offset, buf, false)?;
                }
            }
        }
        Ok(())
    }

    fn read_at(
        &mut self,
        file: &IoFile,
        offset: u64,
        len: usize,
        buf: &mut AlignedBuf,
    ) -> Result<(), DiskError> {
        file.check_aligned_read(offset, len)?;
        let fd = types::Fd(file.file().as_raw_fd());
        let fixed = buf
            .registration()
            .filter(|r| r.ring == self.id)
            .map(|r: Registration| r.index);
        // A raw pointer, so `buf` can be lent to `run` (which keeps its memory
        // alive if the kernel might still write it) while the read fills it.
        let base = buf.prepare_read(len).as_mut_ptr();
        let mut done = 0;
        while done < len {
            let chunk = (len - done).min(MAX_WRITE);
            let at = offset + done as u64;
            // SAFETY: `done + chunk <= len`, and the buffer holds `len` bytes.
            let dst = unsafe { base.add(done) };
            // `chunk` <= MAX_WRITE fits a u32.
            let read = match fixed {
                Some(index) => opcode::ReadFixed::new(fd, dst, chunk as u32, index)
                    .offset(at)
                    .build(),
                None => opcode::Read::new(fd, dst, chunk as u32).offset(at).build(),
            }
            .user_data(WRITE);
            let results = self.run(&[read], Some(&*buf))?;
            let got = completion("read", results[0].unwrap_or(0))?;
            if got == 0 {
                break; // end of file
            }
            done += got;
        }
        buf.truncate(done);
        Ok(())
    }

    fn sync(&mut self, file: &IoFile) -> Result<(), DiskError> {
        let fsync = opcode::Fsync::new(types::Fd(file.file().as_raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(SYNC);
        let results = self.run(&[fsync], None)?;
        completion("fdatasync", results[1].unwrap_or(0)).map(drop)
    }

    fn submit_write_and_sync(
        &mut self,
        file: &IoFile,
        offset: u64,
        buf: &AlignedBuf,
    ) -> Result<SubmissionId, DiskError> {
        if self.broken {
            return Err(DiskError::RingBroken);
        }
        file.check_aligned(offset, buf)?;
        if self.pending.len() >= MAX_IN_FLIGHT {
            return Err(DiskError::TooManyInFlight {
                limit: MAX_IN_FLIGHT,
            });
        }
        self.last_id += 1;
        let id = self.last_id;
        let bytes = buf.as_slice();
        if bytes.len() > MAX_WRITE {
            // Too long for one entry: not worth a chained asynchronous path.
            let result = self.write(file, offset, buf, true);
            self.done.push_back((id, result));
            return Ok(id);
        }
        let fd = types::Fd(file.file().as_raw_fd());
        let fsync = opcode::Fsync::new(fd)
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(id << 1 | ASYNC_SYNC);
        let mut entries = Vec::with_capacity(2);
        if !bytes.is_empty() {
            let fixed = buf.registration().filter(|r| r.ring == self.id);
            // `bytes.len()` <= MAX_WRITE fits a u32.
            let len = bytes.len() as u32;
            let write = match fixed {
                Some(r) => opcode::WriteFixed::new(fd, bytes.as_ptr(), len, r.index)
                    .offset(offset)
                    .build(),
                None => opcode::Write::new(fd, bytes.as_ptr(), len)
                    .offset(offset)
                    .build(),
            };
            entries.push(
                write
                    .user_data(id << 1 | ASYNC_WRITE)
                    .flags(squeue::Flags::IO_LINK),
            );
        }
        entries.push(fsync);
        // SAFETY: the entries point into `buf`'s memory and at `file`'s
        // descriptor; `Pending` keeps both alive until both entries complete
        // (or forever, if the ring breaks first). The caller promises not to
        // modify `buf` meanwhile (see the trait).
        let pushed = unsafe { self.ring.submission().push_multiple(&entries) };
        if pushed.is_err() {
            // Cannot happen: the queue has room for every pair in flight.
            return Err(DiskError::Os {
                op: "io_uring push",
                source: io::Error::other("submission queue full"),
            });
        }
        self.pending.push(Pending {
            id,
            file: file.share_file(),
            mem: (!bytes.is_empty()).then(|| buf.share_memory()),
            offset,
            len: bytes.len(),
            op: Op::WriteSync {
                write: bytes.is_empty().then_some(0),
                sync: None,
            },
        });
        self.submit_pending(id)
    }

    fn submit_read(
        &mut self,
        file: &IoFile,
        offset: u64,
        len: usize,
        buf: &mut AlignedBuf,
    ) -> Result<SubmissionId, DiskError> {
        if self.broken {
            return Err(DiskError::RingBroken);
        }
        file.check_aligned_read(offset, len)?;
        if buf.read_in_flight() {
            return Err(DiskError::BufferInUse);
        }
        if self.pending.len() >= MAX_IN_FLIGHT {
            return Err(DiskError::TooManyInFlight {
                limit: MAX_IN_FLIGHT,
            });
        }
        let fixed = buf
            .registration()
            .filter(|r| r.ring == self.id)
            .map(|r: Registration| r.index);
        // A raw pointer: from here on no reference to the bytes is made
        // until the read settles.
        let dst = buf.prepare_read(len).as_mut_ptr();
        self.last_id += 1;
        let id = self.last_id;
        if len == 0 {
            self.done.push_back((id, Ok(())));
            return Ok(id);
        }
        if len > MAX_WRITE {
            // Too long for one entry: not worth a chained asynchronous path.
            let result = self.read_at(file, offset, len, buf).and_then(|()| {
                let read = buf.len();
                buf.prepare_read(len);
                if read < len {
                    return Err(DiskError::ShortRead { read, len });
                }
                Ok(())
            });
            self.done.push_back((id, result));
            return Ok(id);
        }
        let fd = types::Fd(file.file().as_raw_fd());
        // `len` <= MAX_WRITE fits a u32.
        let read = match fixed {
            Some(index) => opcode::ReadFixed::new(fd, dst, len as u32, index)
                .offset(offset)
                .build(),
            None => opcode::Read::new(fd, dst, len as u32)
                .offset(offset)
                .build(),
        }
        .user_data(id << 1 | ASYNC_READ);
        let mem = buf.share_memory();
        // Before the kernel has the pointer: the buffer makes no reference
        // to the bytes until the completion is reaped.
        mem.set_reading(true);
        // SAFETY: the entry points into `buf`'s memory (`len` bytes, checked
        // by `prepare_read`) and at `file`'s descriptor; `Pending` keeps both
        // alive until it completes (or forever, if the ring breaks first),
        // and the memory is marked as being read into meanwhile, so no Rust
        // reference to it races with the kernel's writes.
        let pushed = unsafe { self.ring.submission().push(&read) };
        if pushed.is_err() {
            // Cannot happen: the queue has room for every submission in flight.
            mem.set_reading(false);
            return Err(DiskError::Os {
                op: "io_uring push",
                source: io::Error::other("submission queue full"),
            });
        }
        self.pending.push(Pending {
            id,
            file: file.share_file(),
            mem: Some(mem),
            offset,
            len,
            op: Op::Read {
                read: None,
                direct: file.direct(),
            },
        });
        self.submit_pending(id)
    }

    fn poll_completions(&mut self, out: &mut Vec<Completion>) {
        self.reap();
        if !self.pending.is_empty() && !self.broken {
            // Without waiting: lets the kernel run completion work it owes us.
            self.enter(0);
        }
        out.extend(self.done.drain(..));
    }

    fn wait_completion(&mut self, id: SubmissionId) -> Result<(), DiskError> {
        loop {
            if let Some(at) = self.done.iter().position(|(d, _)| *d == id) {
                let (_, result) = self.done.remove(at).expect("position is in range");
                return result;
            }
            if !self.pending.iter().any(|p| p.id == id) {
                return Err(DiskError::UnknownSubmission { id });
            }
            self.enter(1);
        }
    }

    fn in_flight(&self) -> usize {
        self.pending.len() + self.done.len()
    }

    /// Plain syscalls: truncation is rare (a segment roll) and io_uring's
    /// ftruncate needs Linux 6.9.
    fn truncate(&mut self, file: &IoFile, len: u64) -> Result<(), DiskError> {
        file.file().set_len(len).map_err(os("ftruncate"))?;
        file.file().sync_all().map_err(os("fsync"))
    }
}

fn memlock_limit() -> io::Result<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into `lim`, a valid rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}

/// Raises the soft `RLIMIT_MEMLOCK` by `extra` bytes: past the hard limit
/// where the process may (`CAP_SYS_RESOURCE`), else up to it. Returns the new
/// soft limit. The kernel counts locked memory per user, not per process, so
/// this is a best effort.
fn raise_memlock(extra: u64) -> io::Result<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into `lim`, a valid rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        return Err(io::Error::other("the limit is already unlimited"));
    }
    let want = lim.rlim_cur.saturating_add(extra);
    let set = |cur, max| {
        let new = libc::rlimit {
            rlim_cur: cur,
            rlim_max: max,
        };
        // SAFETY: setrlimit only reads `new`, a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &new) } == 0 {
            Ok(cur)
        } else {
            Err(io::Error::last_os_error())
        }
    };
    set(want, lim.rlim_max.max(want)).or_else(|e| {
        if lim.rlim_max > lim.rlim_cur {
            set(want.min(lim.rlim_max), lim.rlim_max)
        } else {
            Err(e)
        }
    })
}
