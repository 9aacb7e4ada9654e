//! File calls: open (whole file or a byte region under a region lease),
//! pread, pwrite, fsync, close, and async writes with completions and the
//! low watermark. A file handle is a number in its own registry; each call
//! locks that file's state, so calls on one file take turns and calls on
//! different files run at once.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use govfs_client::{Completion, File, FileSystem, OpenMode};
use govfs_core::lease::Region;

use crate::api::{fs_failure, inval, text};
use crate::error::{call, status, Failure, GovfsStatus};
use crate::handle::{self, FileHandle, FileSide, FileState};

/// `govfs_open` flags. Exactly one of `GOVFS_O_RDONLY` (0), `GOVFS_O_WRONLY`
/// and `GOVFS_O_RDWR`, plus optionally `GOVFS_O_CREAT` (and with it
/// `GOVFS_O_EXCL`). Writing takes a write lease on the whole file.
pub const GOVFS_O_RDONLY: u32 = 0;
pub const GOVFS_O_WRONLY: u32 = 1;
pub const GOVFS_O_RDWR: u32 = 2;
/// Create the file (mode 0644) if it does not exist.
pub const GOVFS_O_CREAT: u32 = 0x40;
/// With `GOVFS_O_CREAT`: fail with `-EEXIST` if the file exists.
pub const GOVFS_O_EXCL: u32 = 0x80;

const ACCESS: u32 = GOVFS_O_WRONLY | GOVFS_O_RDWR;
const KNOWN: u32 = ACCESS | GOVFS_O_CREAT | GOVFS_O_EXCL;
/// The mode `GOVFS_O_CREAT` creates with.
const CREATE_MODE: u32 = 0o644;

/// How an async write ended, as `govfs_poll_completions` and
/// `govfs_wait_completion` report it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GovfsCompletion {
    /// The id the caller gave `govfs_write_async`.
    pub id: u64,
    /// 0: durable on every replica; otherwise a negated errno (the write
    /// is not durable and keeps the low watermark below it).
    pub status: i32,
    /// The largest storage-node Lamport time among its acknowledgements
    /// (0 if it failed).
    pub lamport: u64,
    /// The smallest "earliest uncommitted" Lamport time among them: every
    /// write those nodes stamped below it is durable there (0 if it failed).
    pub earliest_uncommitted: u64,
}

impl From<Completion> for GovfsCompletion {
    fn from(c: Completion) -> Self {
        match c.result {
            Ok(ack) => GovfsCompletion {
                id: c.id,
                status: 0,
                lamport: ack.stamp,
                earliest_uncommitted: ack.earliest_uncommitted,
            },
            Err(e) => GovfsCompletion {
                id: c.id,
                status: -e.errno(),
                lamport: 0,
                earliest_uncommitted: 0,
            },
        }
    }
}

fn closed(f: u64) -> Failure {
    Failure::new(GovfsStatus::BadHandle, format!("file {f} is closed"))
}

/// Runs `op` on open file `f`, holding its lock, on its connection's runtime.
fn on_file<T>(
    f: u64,
    op: impl AsyncFnOnce(&FileHandle, &mut File, &mut FileSide) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let fh = handle::get_file(f)?;
    let mut guard = fh.lock();
    let FileState { file, side } = &mut *guard;
    let Some(file) = file.as_mut() else {
        return Err(closed(f));
    };
    fh.conn.rt.block_on(op(&fh, file, side))
}

/// A caller's buffer and length, checked: not NULL, and a length a slice
/// can have.
fn checked_len(buf: *const c_void, len: usize, offset: u64) -> Result<(), Failure> {
    if buf.is_null() {
        return Err(inval("buf is NULL"));
    }
    if len > isize::MAX as usize {
        return Err(inval(format!("len {len} is too large")));
    }
    if offset.checked_add(len as u64).is_none() {
        return Err(inval(format!("offset {offset} + len {len} overflows")));
    }
    Ok(())
}

/// Opens a file on connection `h` with `open` and writes its new handle
/// to `*out`.
fn open_with(
    h: u64,
    out: *mut u64,
    readable: bool,
    open: impl AsyncFnOnce(&mut FileSystem) -> Result<File, Failure>,
) -> Result<(), Failure> {
    if out.is_null() {
        return Err(inval("out is NULL"));
    }
    let conn = handle::get(h)?;
    let file = conn.with_fs(open)?;
    let id = handle::insert_file(FileHandle::new(Arc::clone(&conn), file, readable));
    // SAFETY: `out` is non-null and writable, as the caller promised.
    unsafe { out.write(id) };
    Ok(())
}

/// Opens the regular file at `path` on connection `h` and sets `*out` to
/// the new file handle. `flags`: `GOVFS_O_RDONLY`, `GOVFS_O_WRONLY` or
/// `GOVFS_O_RDWR`, or-ed with `GOVFS_O_CREAT` (mode 0644) and
/// `GOVFS_O_EXCL`; other bits are `-EINVAL`. Opening for writing takes a
/// write lease on the whole file, held (renewed in the background) until
/// `govfs_close`: another writer waits or is refused. The file keeps its
/// connection open until it is closed.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or points to
/// writable memory for one `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn govfs_open(h: u64, path: *const c_char, flags: u32, out: *mut u64) -> i32 {
    status(|| {
        if flags & !KNOWN != 0 || flags & ACCESS == ACCESS {
            return Err(inval(format!("bad flags {flags:#x}")));
        }
        if flags & GOVFS_O_EXCL != 0 && flags & GOVFS_O_CREAT == 0 {
            return Err(inval("GOVFS_O_EXCL without GOVFS_O_CREAT"));
        }
        // SAFETY: as promised by our caller.
        let path = unsafe { text(path, "path") }?;
        let mode = if flags & ACCESS == 0 {
            OpenMode::Read
        } else {
            OpenMode::Write
        };
        let readable = flags & GOVFS_O_WRONLY == 0;
        open_with(h, out, readable, async |fs| {
            if flags & GOVFS_O_CREAT != 0 {
                fs.create(path, CREATE_MODE, flags & GOVFS_O_EXCL != 0)
                    .await
                    .map_err(fs_failure)?;
            }
            fs.open_file(path, mode).await.map_err(fs_failure)
        })
    })
}

/// Opens the existing regular file at `path` for reading it and writing
/// bytes `[offset, offset + len)` only, under a write lease on that region:
/// writers of disjoint regions of one file write at the same time (an MPI
/// rank its own rows, say). A write outside the region is refused. `len`
/// 0 or a region past 2^64 is `-EINVAL`.
///
/// # Safety
/// As for [`govfs_open`].
#[no_mangle]
pub unsafe extern "C" fn govfs_open_region(
    h: u64,
    path: *const c_char,
    offset: u64,
    len: u64,
    out: *mut u64,
) -> i32 {
    status(|| {
        let region = offset
            .checked_add(len)
            .and_then(|end| Region::new(offset, end))
            .ok_or_else(|| inval(format!("bad region: offset {offset}, len {len}")))?;
        // SAFETY: as promised by our caller.
        let path = unsafe { text(path, "path") }?;
        open_with(h, out, true, async |fs| {
            fs.open_file_region(path, region).await.map_err(fs_failure)
        })
    })
}

/// pread(2): reads up to `len` bytes at `offset` into `buf`; returns how
/// many (fewer past the end of the file, 0 at or past it) or a negated
/// errno (`-EBADF` on a file opened `GOVFS_O_WRONLY`). A writer reads its
/// own writes.
///
/// # Safety
/// `buf` is NULL or `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn govfs_pread(f: u64, buf: *mut c_void, len: usize, offset: u64) -> i64 {
    call(|| {
        checked_len(buf, len, offset)?;
        let data = on_file(f, async |fh, file, _| {
            if !fh.readable {
                return Err(Failure::new(
                    GovfsStatus::BadHandle,
                    format!("file {f} is open for writing only"),
                ));
            }
            file.read_at(offset, len as u64).await.map_err(fs_failure)
        })?;
        let n = data.len().min(len);
        // SAFETY: `buf` holds `len` >= `n` writable bytes, as promised, and
        // cannot overlap the Vec just made.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf.cast::<u8>(), n) };
        Ok(n as i64)
    })
}

/// pwrite(2): writes `len` bytes of `buf` at `offset`, durable on every
/// replica when it returns; returns `len` or a negated errno (`-EBADF` on
/// a file opened read only, `-EIO` for a write outside the lease's region
/// or when the handle's lease was lost and could not be taken again in
/// time: a lost lease is taken again first, a write never goes out without
/// one). Nothing is written partly on success.
///
/// # Safety
/// `buf` is NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn govfs_pwrite(f: u64, buf: *const c_void, len: usize, offset: u64) -> i64 {
    call(|| {
        checked_len(buf, len, offset)?;
        // SAFETY: `buf` is non-null with `len` <= isize::MAX readable bytes,
        // as promised; the slice lives for this call only.
        let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
        on_file(f, async |_, file, _| {
            file.write_at(offset, data).await.map_err(fs_failure)
        })?;
        Ok(len as i64)
    })
}

/// fsync(2): waits for the async writes in flight (their completions stay
/// to be polled) and reports the size and mtime of what this handle wrote
/// to the ministry, so other clients see them.
#[no_mangle]
pub extern "C" fn govfs_fsync(f: u64) -> i32 {
    status(|| on_file(f, async |_, file, _| file.flush().await.map_err(fs_failure)))
}

/// The file's size: for a writer, past its own writes too; for a reader,
/// as the ministry has it now.
///
/// # Safety
/// `out` is NULL or points to writable memory for one `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn govfs_file_size(f: u64, out: *mut u64) -> i32 {
    status(|| {
        if out.is_null() {
            return Err(inval("out is NULL"));
        }
        let size = on_file(f, async |_, file, _| {
            if file.lease().is_none() {
                // A read of nothing asks the ministry for the size.
                file.read_at(0, 0).await.map_err(fs_failure)?;
            }
            Ok(file.size())
        })?;
        // SAFETY: non-null and writable, as promised.
        unsafe { out.write(size) };
        Ok(())
    })
}

/// close(2): flushes (as `govfs_fsync`) and releases the write lease. The
/// handle is closed even when this fails; later calls with it get
/// `-EBADF`. Completions not yet polled are dropped.
#[no_mangle]
pub extern "C" fn govfs_close(f: u64) -> i32 {
    status(|| {
        let fh = handle::remove_file(f)?;
        let file = fh.lock().file.take();
        let Some(file) = file else {
            return Err(closed(f));
        };
        fh.conn.rt.block_on(file.close()).map_err(fs_failure)
    })
}

/// Starts writing `len` bytes of `buf` at `offset` as async write `id` and
/// returns once it is sent; `buf` is copied, so the caller may reuse it at
/// once. Ids are the caller's and must grow from one call to the next on
/// a file (`-EINVAL` otherwise); `len` 0 is `-EINVAL`. The write is
/// resent after failures until the lease's deadline; a write overlapping
/// one in flight waits for it first (so the later one wins). Its outcome
/// comes from `govfs_poll_completions` or `govfs_wait_completion`.
///
/// # Safety
/// `buf` is NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn govfs_write_async(
    f: u64,
    id: u64,
    buf: *const c_void,
    len: usize,
    offset: u64,
) -> i32 {
    status(|| {
        checked_len(buf, len, offset)?;
        if len == 0 {
            return Err(inval("len is 0"));
        }
        // SAFETY: `buf` is non-null with `len` <= isize::MAX readable bytes,
        // as promised; copied before this call returns.
        let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) }.to_vec();
        on_file(f, async |_, file, side| {
            if let Some(last) = side.last_async_id {
                if id <= last {
                    return Err(inval(format!(
                        "async write id {id} does not grow (the last was {last})"
                    )));
                }
            }
            let sent = file.write_async(id, offset, data).await;
            // The id counts as used once tried: the client may have
            // recorded it before a later step failed.
            side.last_async_id = Some(id);
            sent.map_err(fs_failure)
        })
    })
}

/// Copies up to `max` completions of async writes that finished since the
/// last poll into `out` and sets `*n` to how many; returns at once (`*n`
/// 0 when none finished). Those that do not fit stay for the next call.
///
/// # Safety
/// `out` is NULL or `max` writable `govfs_completion_t`; `n` is NULL or
/// points to writable memory for one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn govfs_poll_completions(
    f: u64,
    out: *mut GovfsCompletion,
    max: usize,
    n: *mut usize,
) -> i32 {
    status(|| {
        if out.is_null() || n.is_null() {
            return Err(inval(if n.is_null() {
                "n is NULL"
            } else {
                "out is NULL"
            }));
        }
        let got = on_file(f, async |_, file, side| {
            side.pending.extend(file.completions());
            let k = side.pending.len().min(max);
            Ok(side
                .pending
                .drain(..k)
                .map(GovfsCompletion::from)
                .collect::<Vec<_>>())
        })?;
        for (i, c) in got.iter().enumerate() {
            // SAFETY: `out` holds `max` >= got.len() writable entries.
            unsafe { out.add(i).write(*c) };
        }
        // SAFETY: non-null and writable, as promised.
        unsafe { n.write(got.len()) };
        Ok(())
    })
}

/// Waits for the next async write of file `f` to finish (or takes one that
/// finished and was not polled yet) and fills `*out`. Returns `-ECHILD`
/// at once when none is in flight and none is waiting to be polled (as
/// wait(2) does without children). Other calls on the same file wait
/// until this one returns.
///
/// # Safety
/// `out` is NULL or points to one writable `govfs_completion_t`.
#[no_mangle]
pub unsafe extern "C" fn govfs_wait_completion(f: u64, out: *mut GovfsCompletion) -> i32 {
    status(|| {
        if out.is_null() {
            return Err(inval("out is NULL"));
        }
        let c = on_file(f, async |_, file, side| {
            if let Some(c) = side.pending.pop_front() {
                return Ok(c);
            }
            file.next_completion().await.ok_or_else(|| {
                Failure::new(
                    GovfsStatus::NoChild,
                    format!("file {f} has no async write in flight"),
                )
            })
        })?;
        // SAFETY: non-null and writable, as promised.
        unsafe { out.write(GovfsCompletion::from(c)) };
        Ok(())
    })
}

/// The low watermark of file `f`'s async writes: the largest id up to which
/// every write is durable on all its replicas. `-ENODATA` until the first
/// is (and for as long as the first write failed).
///
/// # Safety
/// `out` is NULL or points to writable memory for one `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn govfs_low_watermark(f: u64, out: *mut u64) -> i32 {
    status(|| {
        if out.is_null() {
            return Err(inval("out is NULL"));
        }
        let low = on_file(f, async |_, file, _| Ok(file.low_watermark()))?;
        let Some(low) = low else {
            return Err(Failure::new(
                GovfsStatus::NoData,
                format!("file {f}: no async write is durable yet"),
            ));
        };
        // SAFETY: non-null and writable, as promised.
        unsafe { out.write(low) };
        Ok(())
    })
}

/// How many async writes of file `f` are issued and not yet finished.
/// Returns the count or a negated errno.
#[no_mangle]
pub extern "C" fn govfs_async_in_flight(f: u64) -> i64 {
    call(|| on_file(f, async |_, file, _| Ok(file.async_in_flight() as i64)))
}
