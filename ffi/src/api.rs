//! The calls. Each checks its arguments before anything is sent, runs on
//! the handle's runtime, and answers `0` (or a length or count) or a
//! negated errno with the thread's message set.

use std::ffi::{c_char, c_void, CStr};
use std::net::SocketAddr;
use std::time::Duration;

use govfs_client::{Client, ClientOptions, FsError, FsOptions, ReadConsistency};
use govfs_core::meta::{Attr, Credentials, FileType};
use govfs_net::ClusterKey;

use crate::error::{call, status, Failure, GovfsStatus};
use crate::handle::{self, Handle};

/// The crate version as a C string, checked for its NUL at compile time.
const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(version) => version,
        Err(_) => panic!("CARGO_PKG_VERSION contains a NUL byte"),
    };

/// `govfs_create` flag: fail with `-EEXIST` if the file exists (O_EXCL).
pub const GOVFS_EXCL: u32 = 1;
/// `govfs_rename` flag: fail with `-EEXIST` if the target exists.
pub const GOVFS_NOREPLACE: u32 = 1;
/// `govfs_connect_with` flag: read through the ministry's log
/// (linearizable) instead of from any member (session-consistent).
pub const GOVFS_LINEARIZABLE: u32 = 1;

/// File types in [`GovfsStat::kind`] and directory entries.
pub const GOVFS_FILE: u32 = 1;
pub const GOVFS_DIR: u32 = 2;
pub const GOVFS_SYMLINK: u32 = 3;

/// A file's attributes, as `govfs_stat` fills them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GovfsStat {
    pub ino: u64,
    /// `GOVFS_FILE`, `GOVFS_DIR` or `GOVFS_SYMLINK`.
    pub kind: u32,
    /// Permission and special bits (no type bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    /// Nanoseconds since the epoch.
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    /// The ministry log index of the last change to the metadata, and to the contents.
    pub meta_seq: u64,
    pub data_seq: u64,
}

fn kind_code(k: FileType) -> u32 {
    match k {
        FileType::File => GOVFS_FILE,
        FileType::Dir => GOVFS_DIR,
        FileType::Symlink => GOVFS_SYMLINK,
    }
}

impl From<&Attr> for GovfsStat {
    fn from(a: &Attr) -> Self {
        GovfsStat {
            ino: a.ino.0,
            kind: kind_code(a.kind),
            mode: a.mode,
            uid: a.uid,
            gid: a.gid,
            nlink: a.nlink,
            size: a.size,
            atime_ns: a.atime,
            mtime_ns: a.mtime,
            ctime_ns: a.ctime,
            meta_seq: a.meta_seq,
            data_seq: a.data_seq,
        }
    }
}

pub(crate) fn inval(message: impl Into<String>) -> Failure {
    Failure::new(GovfsStatus::Inval, message)
}

pub(crate) fn fs_failure(e: FsError) -> Failure {
    Failure {
        code: -e.errno(),
        message: e.to_string(),
    }
}

/// A C string argument as UTF-8.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string.
pub(crate) unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(inval(format!("{what} is NULL")));
    }
    // SAFETY: the caller promises a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| inval(format!("{what} is not UTF-8")))
}

/// The library version, for example `"0.1.0"`: a static string; do not free it.
#[no_mangle]
pub extern "C" fn govfs_version() -> *const c_char {
    VERSION.as_ptr()
}

/// Connects to a cluster: `addrs` is a comma-separated list of node
/// addresses (`"127.0.0.1:7001,127.0.0.1:7002"`), `key_file` the cluster
/// key file; either may be NULL to take `GOVFS_CLUSTER` or `GOVFS_KEY_FILE`
/// from the environment. Calls act with the process's uid and gid and read
/// session-consistently. On success `*out` is the new handle.
///
/// # Safety
/// `addrs` and `key_file` are NULL or NUL-terminated strings; `out` is NULL
/// or points to writable memory for one `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn govfs_connect(
    addrs: *const c_char,
    key_file: *const c_char,
    out: *mut u64,
) -> i32 {
    // SAFETY: as promised by our caller.
    unsafe { govfs_connect_with(addrs, key_file, 0, out) }
}

/// [`govfs_connect`] with flags: `GOVFS_LINEARIZABLE` makes every read go
/// through the ministry's log.
///
/// # Safety
/// As for [`govfs_connect`].
#[no_mangle]
pub unsafe extern "C" fn govfs_connect_with(
    addrs: *const c_char,
    key_file: *const c_char,
    flags: u32,
    out: *mut u64,
) -> i32 {
    status(|| {
        if out.is_null() {
            return Err(inval("out is NULL"));
        }
        if flags & !GOVFS_LINEARIZABLE != 0 {
            return Err(inval(format!("unknown flags {flags:#x}")));
        }
        let from_env = |var: &str| {
            std::env::var(var).map_err(|_| inval(format!("no address given and {var} is not set")))
        };
        let addrs = if addrs.is_null() {
            from_env("GOVFS_CLUSTER")?
        } else {
            // SAFETY: a NUL-terminated string, as promised.
            unsafe { text(addrs, "addrs") }?.to_string()
        };
        let key_file = if key_file.is_null() {
            from_env("GOVFS_KEY_FILE")?
        } else {
            // SAFETY: a NUL-terminated string, as promised.
            unsafe { text(key_file, "key_file") }?.to_string()
        };
        let addrs = addrs
            .split(',')
            .filter(|a| !a.trim().is_empty())
            .map(|a| a.trim().parse::<SocketAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| inval(format!("bad address in {addrs:?}: {e}")))?;
        if addrs.is_empty() {
            return Err(inval("no node address"));
        }
        let key = ClusterKey::from_file(&key_file)
            .map_err(|e| Failure::new(GovfsStatus::Access, format!("{key_file}: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("govfs-client")
            .enable_all()
            .build()
            .map_err(|e| Failure::new(GovfsStatus::Io, format!("cannot start a runtime: {e}")))?;
        let options = ClientOptions::with_timeout(Duration::from_secs(2));
        let client = rt
            .block_on(Client::connect(addrs, key, options))
            .map_err(|e| {
                let code = if e.is_bad_key() {
                    GovfsStatus::Access
                } else {
                    GovfsStatus::Io
                };
                Failure::new(code, e.to_string())
            })?;
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let opts = FsOptions {
            creds: Credentials::user(uid, gid),
            reads: if flags & GOVFS_LINEARIZABLE != 0 {
                ReadConsistency::Linearizable
            } else {
                ReadConsistency::Session
            },
            ..FsOptions::default()
        };
        let id = handle::insert(Handle::new(rt, client, opts));
        // SAFETY: `out` is non-null and writable, as promised.
        unsafe { out.write(id) };
        Ok(())
    })
}

/// Closes a handle and its connections. Later calls with it get `-EBADF`.
#[no_mangle]
pub extern "C" fn govfs_disconnect(h: u64) -> i32 {
    status(|| {
        let handle = handle::remove(h)?;
        // Calls still running on other threads hold it; the last one drops it.
        drop(handle);
        Ok(())
    })
}

/// Runs a path call on handle `h`.
fn on_path(
    h: u64,
    path: *const c_char,
    f: impl AsyncFnOnce(&mut govfs_client::FileSystem, &str) -> Result<(), FsError>,
) -> i32 {
    status(|| {
        // SAFETY: the C caller passes a NUL-terminated string or NULL.
        let path = unsafe { text(path, "path") }?;
        handle::get(h)?.with_fs(async |fs| f(fs, path).await.map_err(fs_failure))
    })
}

/// mkdir(2).
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn govfs_mkdir(h: u64, path: *const c_char, mode: u32) -> i32 {
    on_path(h, path, async |fs, p| fs.mkdir(p, mode).await.map(|_| ()))
}

/// mkdir -p: makes missing parents; an existing directory is fine.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn govfs_mkdir_all(h: u64, path: *const c_char, mode: u32) -> i32 {
    on_path(h, path, async |fs, p| fs.mkdir_all(p, mode).await)
}

/// Creates a file (`GOVFS_EXCL`: fail if it exists). Returns 1 if this call
/// made it, 0 if it existed; fills `*out` if `out` is not NULL.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn govfs_create(
    h: u64,
    path: *const c_char,
    mode: u32,
    flags: u32,
    out: *mut GovfsStat,
) -> i32 {
    call(|| {
        if flags & !GOVFS_EXCL != 0 {
            return Err(inval(format!("unknown flags {flags:#x}")));
        }
        // SAFETY: as promised by our caller.
        let path = unsafe { text(path, "path") }?;
        let (attr, created) = handle::get(h)?.with_fs(async |fs| {
            fs.create(path, mode, flags & GOVFS_EXCL != 0)
                .await
                .map_err(fs_failure)
        })?;
        if !out.is_null() {
            // SAFETY: non-null and writable, as promised.
            unsafe { out.write(GovfsStat::from(&attr)) };
        }
        Ok(i64::from(created))
    }) as i32
}

fn stat_call(h: u64, path: *const c_char, out: *mut GovfsStat, follow: bool) -> i32 {
    status(|| {
        if out.is_null() {
            return Err(inval("out is NULL"));
        }
        // SAFETY: the C caller passes a NUL-terminated string or NULL.
        let path = unsafe { text(path, "path") }?;
        let attr = handle::get(h)?.with_fs(async |fs| {
            let r = if follow {
                fs.stat(path).await
            } else {
                fs.lstat(path).await
            };
            r.map_err(fs_failure)
        })?;
        // SAFETY: non-null and writable, as the caller promised.
        unsafe { out.write(GovfsStat::from(&attr)) };
        Ok(())
    })
}

/// stat(2): follows a final symlink.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn govfs_stat(h: u64, path: *const c_char, out: *mut GovfsStat) -> i32 {
    stat_call(h, path, out, true)
}

/// lstat(2): a final symlink itself.
///
/// # Safety
/// As for [`govfs_stat`].
#[no_mangle]
pub unsafe extern "C" fn govfs_lstat(h: u64, path: *const c_char, out: *mut GovfsStat) -> i32 {
    stat_call(h, path, out, false)
}

/// unlink(2): a file or symlink.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn govfs_unlink(h: u64, path: *const c_char) -> i32 {
    on_path(h, path, async |fs, p| fs.unlink(p).await)
}

/// rmdir(2): an empty directory.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn govfs_rmdir(h: u64, path: *const c_char) -> i32 {
    on_path(h, path, async |fs, p| fs.rmdir(p).await)
}

/// chmod(2).
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn govfs_chmod(h: u64, path: *const c_char, mode: u32) -> i32 {
    on_path(h, path, async |fs, p| fs.chmod(p, mode).await.map(|_| ()))
}

/// truncate(2): sets a file's size.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn govfs_truncate(h: u64, path: *const c_char, size: u64) -> i32 {
    on_path(h, path, async |fs, p| {
        fs.truncate(p, size).await.map(|_| ())
    })
}

/// rename(2) (`GOVFS_NOREPLACE`: fail if `to` exists).
///
/// # Safety
/// `from` and `to` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn govfs_rename(
    h: u64,
    from: *const c_char,
    to: *const c_char,
    flags: u32,
) -> i32 {
    status(|| {
        if flags & !GOVFS_NOREPLACE != 0 {
            return Err(inval(format!("unknown flags {flags:#x}")));
        }
        // SAFETY: as promised by our caller.
        let (from, to) = unsafe { (text(from, "from")?, text(to, "to")?) };
        handle::get(h)?.with_fs(async |fs| {
            fs.rename(from, to, flags & GOVFS_NOREPLACE != 0)
                .await
                .map_err(fs_failure)
        })
    })
}

/// symlink(2): a link at `path` pointing at `target`.
///
/// # Safety
/// `target` and `path` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn govfs_symlink(h: u64, target: *const c_char, path: *const c_char) -> i32 {
    status(|| {
        // SAFETY: as promised by our caller.
        let (target, path) = unsafe { (text(target, "target")?, text(path, "path")?) };
        handle::get(h)?.with_fs(async |fs| {
            fs.symlink(target, path)
                .await
                .map(|_| ())
                .map_err(fs_failure)
        })
    })
}

/// readlink(2): copies the target into `buf` (NUL-terminated) and returns
/// its length, or `-ERANGE` if `len` bytes do not hold it and its NUL.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `buf` is NULL or `len`
/// writable bytes.
#[no_mangle]
pub unsafe extern "C" fn govfs_readlink(
    h: u64,
    path: *const c_char,
    buf: *mut c_char,
    len: usize,
) -> i64 {
    call(|| {
        if buf.is_null() {
            return Err(inval("buf is NULL"));
        }
        // SAFETY: as promised by our caller.
        let path = unsafe { text(path, "path") }?;
        let target =
            handle::get(h)?.with_fs(async |fs| fs.readlink(path).await.map_err(fs_failure))?;
        if target.len() + 1 > len {
            return Err(Failure::new(
                GovfsStatus::Range,
                format!(
                    "the target has {} bytes; the buffer holds {len}",
                    target.len()
                ),
            ));
        }
        // SAFETY: `buf` holds `len` >= target.len() + 1 writable bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(target.as_ptr(), buf.cast::<u8>(), target.len());
            buf.add(target.len()).write(0);
        }
        Ok(target.len() as i64)
    })
}

/// Called once per directory entry by [`govfs_readdir`] with the entry's
/// NUL-terminated name (valid during the call only), inode and kind. A
/// non-zero return stops the listing.
pub type GovfsDirentFn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, name: *const c_char, ino: u64, kind: u32) -> i32>;

/// Lists a directory's entries in name order ("." and ".." not included),
/// calling `cb` for each. Returns how many entries `cb` saw.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `cb` is NULL or a function
/// safe to call with `ctx`.
#[no_mangle]
pub unsafe extern "C" fn govfs_readdir(
    h: u64,
    path: *const c_char,
    cb: GovfsDirentFn,
    ctx: *mut c_void,
) -> i64 {
    call(|| {
        let Some(cb) = cb else {
            return Err(inval("cb is NULL"));
        };
        // SAFETY: as promised by our caller.
        let path = unsafe { text(path, "path") }?;
        let entries =
            handle::get(h)?.with_fs(async |fs| fs.readdir(path).await.map_err(fs_failure))?;
        let mut seen = 0i64;
        for e in entries {
            // Names never hold NUL (the namespace refuses it).
            let Ok(name) = std::ffi::CString::new(e.name) else {
                continue;
            };
            seen += 1;
            // SAFETY: the caller vouches for `cb` with `ctx`; `name` lives
            // until after the call.
            if unsafe { cb(ctx, name.as_ptr(), e.ino.0, kind_code(e.kind)) } != 0 {
                break;
            }
        }
        Ok(seen)
    })
}
