//! Disk IO backends under the log store, behind one trait ([`DiskIo`]):
//!
//! ```text
//! log_store/          what to write: records, segments, recovery
//! io/                 how it reaches the disk
//!   uring.rs          optimized: io_uring, O_DIRECT, registered buffers,
//!                     each write linked to its fdatasync in one submission
//!   blocking.rs       fallback: pwrite + fdatasync, for hosts that block io_uring
//! ```
//!
//! Besides the blocking calls, a backend can take a write linked to its
//! `fdatasync`, or a read, and report its completion later
//! ([`DiskIo::submit_write_and_sync`], [`DiskIo::submit_read`],
//! [`DiskIo::poll_completions`], [`DiskIo::wait_completion`]), so a caller
//! can work while the disk does, or keep several IOs in flight. Only
//! io_uring overlaps: the blocking backend does the work at submit time and
//! merely reports it at the next poll.
//!
//! [`open_backend`] picks one when a log opens and says which in one log line.
//! Both take the same block-aligned writes from an [`AlignedBuf`], so the log
//! writes the same bytes whichever backend runs, and both are tested alike.

mod aligned_buf;
pub mod blocking;
pub mod uring;

pub use aligned_buf::AlignedBuf;
pub use blocking::BlockingIo;
pub use uring::{UringIo, UringOptions};

use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Alignment and size unit of `O_DIRECT` writes: the page size, and at least
/// the logical block size of any disk we expect.
pub const BLOCK: usize = 4096;

/// Size of a log's write buffer (and of a registered one): large enough for
/// a big group commit in one write, small enough that many logs' worth fit in
/// the default 8 MiB `RLIMIT_MEMLOCK`.
pub const WRITE_BUFFER_BYTES: usize = 256 << 10;

/// Names one asynchronous submission ([`DiskIo::submit_write_and_sync`],
/// [`DiskIo::submit_read`]) until its completion is reaped.
/// Ids count up from 1 per backend instance and are never reused.
pub type SubmissionId = u64;

/// A reaped submission: its id and whether it succeeded (the write and the
/// sync; or the whole read).
pub type Completion = (SubmissionId, Result<(), DiskError>);

/// What the log needs from a disk. Writes are positional and whole-buffer;
/// a backend that opened the file with `O_DIRECT` needs `offset` and the
/// buffer's length to be multiples of [`BLOCK`].
pub trait DiskIo: Send {
    /// What this backend is, for the log line and for tests.
    fn chosen(&self) -> Chosen;

    /// Opens a file for writing, with `O_DIRECT` when the backend uses it.
    fn open(&mut self, path: &Path, mode: OpenMode) -> Result<IoFile, DiskError>;

    /// A write buffer of at least `capacity` bytes, registered with the
    /// kernel when the backend can (so writes from it skip pinning pages).
    fn buffer(&mut self, capacity: usize) -> AlignedBuf;

    /// Writes all of `buf` at `offset`. Not durable until a sync.
    fn write_at(&mut self, file: &IoFile, offset: u64, buf: &AlignedBuf) -> Result<(), DiskError>;

    /// Writes all of `buf` at `offset`, then `fdatasync`s: durable on return.
    /// io_uring submits both at once, the sync linked to the write.
    fn write_at_and_sync(
        &mut self,
        file: &IoFile,
        offset: u64,
        buf: &AlignedBuf,
    ) -> Result<(), DiskError>;

    /// Writes each `(offset, buf)` of `writes` to `file`, in no particular
    /// order: done when all are (not durable before [`DiskIo::sync`]).
    fn write_all_at(
        &mut self,
        file: &IoFile,
        writes: &[(u64, &AlignedBuf)],
    ) -> Result<(), DiskError> {
        let writes: Vec<(&IoFile, u64, &AlignedBuf)> =
            writes.iter().map(|(o, b)| (file, *o, *b)).collect();
        self.write_many(&writes)
    }

    /// Writes each `(file, offset, buf)` of `writes`, in no particular
    /// order (so no two may overlap): done when all are, not durable
    /// before [`DiskIo::sync`]. io_uring submits up to 16 at once and waits
    /// once, so the disk sees them together; the blocking backend writes
    /// one after another. On an error, which of them reached the file is
    /// unknown.
    fn write_many(&mut self, writes: &[(&IoFile, u64, &AlignedBuf)]) -> Result<(), DiskError> {
        for (file, offset, buf) in writes {
            self.write_at(file, *offset, buf)?;
        }
        Ok(())
    }

    /// `fdatasync`: makes earlier writes durable.
    fn sync(&mut self, file: &IoFile) -> Result<(), DiskError>;

    /// Reads `len` bytes at `offset` into `buf` (which then holds exactly
    /// the bytes read: fewer at the end of the file). With `O_DIRECT`,
    /// `offset` and `len` must be multiples of [`BLOCK`].
    fn read_at(
        &mut self,
        file: &IoFile,
        offset: u64,
        len: usize,
        buf: &mut AlignedBuf,
    ) -> Result<(), DiskError>;

    /// Sets the file's length and makes that durable (`ftruncate`, `fsync`).
    fn truncate(&mut self, file: &IoFile, len: u64) -> Result<(), DiskError>;

    /// Frees the blocks of `[offset, offset + len)` (they read as zeros
    /// after), keeping the file's length: `fallocate` with
    /// `FALLOC_FL_PUNCH_HOLE`. Not durable until a sync. Same on every
    /// backend: it moves no data.
    fn punch_hole(&mut self, file: &IoFile, offset: u64, len: u64) -> Result<(), DiskError> {
        use std::os::fd::AsRawFd;
        let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Err(DiskError::Os {
                op: "fallocate",
                source: io::Error::from_raw_os_error(libc::EFBIG),
            });
        };
        // SAFETY: fallocate on an open descriptor this file owns; no memory
        // is passed.
        let r = unsafe {
            libc::fallocate(
                file.file().as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off,
                n,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(DiskError::Os {
                op: "fallocate",
                source: io::Error::last_os_error(),
            })
        }
    }

    /// Starts writing all of `buf` at `offset` followed by an `fdatasync`
    /// (linked: the sync runs only after the whole write), without waiting.
    /// Durable once [`DiskIo::poll_completions`] or [`DiskIo::wait_completion`]
    /// reports the returned id with `Ok`.
    ///
    /// The caller must not modify `buf` until then: the kernel may read it
    /// any time before. (The backend keeps the memory and the file alive
    /// itself, so dropping either early is safe, only pointless.) An `Err`
    /// here means nothing was started; failures of the IO itself come with
    /// the completion.
    ///
    /// io_uring submits both operations in one `io_uring_enter` and returns.
    /// The blocking backend does the write and the sync before returning and
    /// reports the result at the next poll: same interface, no overlap.
    fn submit_write_and_sync(
        &mut self,
        file: &IoFile,
        offset: u64,
        buf: &AlignedBuf,
    ) -> Result<SubmissionId, DiskError>;

    /// Starts reading `len` bytes at `offset` into `buf`, without waiting.
    /// With `O_DIRECT`, `offset` and `len` must be multiples of [`BLOCK`]
    /// (else [`DiskError::Unaligned`], as [`DiskIo::read_at`]); `len` must
    /// fit `buf`'s capacity (else a panic, as [`AlignedBuf::prepare_read`]).
    ///
    /// `buf` holds `len` bytes from here on, whatever the outcome. Unlike
    /// [`DiskIo::read_at`], which shortens the buffer at the end of the file,
    /// the read completes `Ok` only if all `len` bytes were read: the
    /// completion cannot resize a buffer the caller holds, so a read that
    /// meets the end of the file completes with [`DiskError::ShortRead`]
    /// (whose `read` first bytes are the file's).
    ///
    /// Until the completion is reaped ([`DiskIo::poll_completions`],
    /// [`DiskIo::wait_completion`]) the kernel may write `buf`, so touching
    /// its bytes panics ([`AlignedBuf::read_in_flight`] says whether one
    /// can) and submitting it again fails with [`DiskError::BufferInUse`].
    /// The backend keeps the memory and the file alive itself, so dropping
    /// either early is safe. An `Err` here means nothing was started.
    ///
    /// io_uring submits one `Read` (`ReadFixed` from a buffer registered
    /// with this ring) and returns; the blocking backend reads before
    /// returning and reports the result at the next poll.
    fn submit_read(
        &mut self,
        file: &IoFile,
        offset: u64,
        len: usize,
        buf: &mut AlignedBuf,
    ) -> Result<SubmissionId, DiskError>;

    /// Appends to `out` every submission that completed since the last call,
    /// without blocking (io_uring peeks its completion queue, entering the
    /// kernel at most once, without waiting). An id reaped by
    /// [`DiskIo::wait_completion`] is not reported again.
    fn poll_completions(&mut self, out: &mut Vec<Completion>);

    /// Blocks until submission `id` completes and returns its result, unless
    /// it was already reaped (then [`DiskError::UnknownSubmission`]).
    /// Other completions seen meanwhile stay for the next poll.
    fn wait_completion(&mut self, id: SubmissionId) -> Result<(), DiskError>;

    /// Submissions not reaped yet (completed or not).
    fn in_flight(&self) -> usize;

    /// An fd that polls readable while completions wait to be reaped, for an
    /// event loop to sleep on (the io_uring's own fd); `None` when every
    /// submission completes before it returns (the blocking backend).
    fn completion_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file; it must not exist.
    CreateNew,
    /// Open a file that exists.
    Existing,
}

/// A file opened by a [`DiskIo`] backend.
#[derive(Debug)]
pub struct IoFile {
    /// Shared with the backend while an asynchronous write to it is in flight,
    /// so its descriptor stays open (and is not reused) until the kernel is done.
    file: Arc<File>,
    direct: bool,
}

impl IoFile {
    /// Whether the file was opened with `O_DIRECT` (writes must be block-aligned).
    pub fn direct(&self) -> bool {
        self.direct
    }

    pub(crate) fn new(file: File, direct: bool) -> Self {
        IoFile {
            file: Arc::new(file),
            direct,
        }
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn share_file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// Rejects a read `O_DIRECT` would refuse with a bare `EINVAL`.
    fn check_aligned_read(&self, offset: u64, len: usize) -> Result<(), DiskError> {
        if self.direct && (!offset.is_multiple_of(BLOCK as u64) || !len.is_multiple_of(BLOCK)) {
            return Err(DiskError::Unaligned { offset, len });
        }
        Ok(())
    }

    /// Rejects a write `O_DIRECT` would refuse with a bare `EINVAL`.
    fn check_aligned(&self, offset: u64, buf: &AlignedBuf) -> Result<(), DiskError> {
        if self.direct && (!offset.is_multiple_of(BLOCK as u64) || !buf.len().is_multiple_of(BLOCK))
        {
            return Err(DiskError::Unaligned {
                offset,
                len: buf.len(),
            });
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{op}: {source}")]
    Os {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The disk took no more bytes (ENOSPC is reported as `Os`; this is a zero-length write).
    #[error("short write: {written} of {len} bytes")]
    ShortWrite { written: usize, len: usize },
    /// An asynchronous read met the end of the file: only the first `read`
    /// bytes of the buffer are the file's.
    #[error("short read: {read} of {len} bytes, the file ends there")]
    ShortRead { read: usize, len: usize },
    /// [`DiskIo::submit_read`] into a buffer that an earlier asynchronous
    /// read, not reaped yet, may still be writing.
    #[error("an asynchronous read into this buffer is still in flight; reap it first")]
    BufferInUse,
    #[error("IO of {len} bytes at offset {offset} is not block-aligned, as O_DIRECT needs")]
    Unaligned { offset: u64, len: usize },
    #[error("io_uring unavailable: {0}")]
    Unavailable(#[from] Unavailable),
    /// Waiting on the ring failed with operations possibly still in flight:
    /// nothing more is submitted on it.
    #[error("the ring failed earlier; reopen to use it again")]
    RingBroken,
    /// [`DiskIo::wait_completion`] of an id never submitted or already reaped.
    #[error("no submission {id} is waiting to be reaped")]
    UnknownSubmission { id: SubmissionId },
    /// More asynchronous submissions in flight than the backend takes.
    #[error("{limit} asynchronous submissions are already in flight")]
    TooManyInFlight { limit: usize },
}

/// Why io_uring cannot be used here.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("{step} failed: {source}")]
    Os {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the kernel lacks the {0} operation")]
    Opcode(&'static str),
}

/// Which backend a log should use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// io_uring where it can be set up, blocking otherwise.
    #[default]
    Auto,
    /// io_uring or an error.
    Uring,
    Blocking,
}

/// The backend in use, as the log line reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chosen {
    /// `direct` is false when the filesystem refused `O_DIRECT` (tmpfs does).
    Uring {
        direct: bool,
        registered_buffers: usize,
    },
    /// `unavailable` says why io_uring was not used (`None`: not asked for).
    Blocking { unavailable: Option<String> },
}

impl fmt::Display for Chosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Chosen::Uring {
                direct: true,
                registered_buffers,
            } => write!(
                f,
                "io_uring (O_DIRECT, {registered_buffers} registered buffers)"
            ),
            Chosen::Uring {
                direct: false,
                registered_buffers,
            } => write!(
                f,
                "io_uring (page cache, no O_DIRECT, {registered_buffers} registered buffers)"
            ),
            Chosen::Blocking { unavailable: None } => {
                write!(f, "blocking pwrite+fdatasync (requested)")
            }
            Chosen::Blocking {
                unavailable: Some(why),
            } => write!(f, "blocking pwrite+fdatasync (io_uring unavailable: {why})"),
        }
    }
}

/// Sets up the backend `pref` asks for, for files in `dir` (which must exist:
/// whether `O_DIRECT` works depends on its filesystem). `Auto` falls back to
/// blocking IO where io_uring cannot be set up; `Uring` returns why instead.
/// Logs one line saying which backend runs (repeats go to debug).
pub fn open_backend(
    pref: BackendChoice,
    dir: &Path,
) -> Result<(Box<dyn DiskIo>, Chosen), DiskError> {
    let d = UringOptions::default();
    open_backend_with(pref, dir, d.registered_buffers, d.buffer_bytes)
}

/// [`open_backend`] with io_uring registering `buffers` buffers of
/// `buffer_bytes` (rounded up to [`BLOCK`]) for its callers' largest IOs,
/// where the memory lock limit allows (else unregistered, with a warning;
/// [`Chosen`] says how many it got).
pub fn open_backend_with(
    pref: BackendChoice,
    dir: &Path,
    buffers: usize,
    buffer_bytes: usize,
) -> Result<(Box<dyn DiskIo>, Chosen), DiskError> {
    let opts = UringOptions {
        registered_buffers: buffers,
        buffer_bytes: buffer_bytes.div_ceil(BLOCK) * BLOCK,
        ..UringOptions::default()
    };
    let io: Box<dyn DiskIo> = match pref {
        BackendChoice::Blocking => Box::new(BlockingIo::new(None)),
        BackendChoice::Uring => Box::new(UringIo::open(dir, opts)?),
        BackendChoice::Auto => match UringIo::open(dir, opts) {
            Ok(uring) => Box::new(uring),
            Err(DiskError::Unavailable(why)) => Box::new(BlockingIo::new(Some(why.to_string()))),
            // The probe file in `dir` failed; the log's own files will say more.
            Err(e) => Box::new(BlockingIo::new(Some(e.to_string()))),
        },
    };
    let chosen = io.chosen();
    log_choice(&chosen);
    Ok((io, chosen))
}

/// Logs the chosen backend at info once per distinct choice in a row: every
/// log opens a backend, and a node opens several.
fn log_choice(chosen: &Chosen) {
    static LAST: Mutex<Option<String>> = Mutex::new(None);
    let line = chosen.to_string();
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if last.as_deref() == Some(line.as_str()) {
        tracing::debug!("disk io: {line}");
    } else {
        tracing::info!("disk io: {line}");
        *last = Some(line);
    }
}
