//! Status codes and the per-thread error message.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Status codes the calls return: `0` for success, otherwise a negated
/// Linux errno, so a C caller can hand `-status` to `strerror`. The
/// namespace's own errors (EEXIST, ENOTEMPTY, ...) come as their errno too.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GovfsStatus {
    /// Success.
    Ok = 0,
    /// Not permitted (`-EPERM`).
    Perm = -1,
    /// No such file or directory (`-ENOENT`).
    NoEnt = -2,
    /// I/O error: the cluster could not be reached, or a bug (`-EIO`).
    Io = -5,
    /// The handle is closed or was never opened (`-EBADF`).
    BadHandle = -9,
    /// No async write in flight to wait for (`-ECHILD`, as wait(2) says).
    NoChild = -10,
    /// Out of memory (`-ENOMEM`).
    NoMem = -12,
    /// Permission denied (`-EACCES`).
    Access = -13,
    /// Exists (`-EEXIST`).
    Exist = -17,
    /// Invalid argument: a null pointer, a path that is not UTF-8, bad flags (`-EINVAL`).
    Inval = -22,
    /// A buffer is too small for the answer (`-ERANGE`).
    Range = -34,
    /// Nothing to report yet: no async write is durable (`-ENODATA`).
    NoData = -61,
    /// The cluster did not answer in time (`-ETIMEDOUT`).
    TimedOut = -110,
}

impl GovfsStatus {
    /// The integer a C caller sees.
    pub const fn code(self) -> i32 {
        self as i32
    }
}

thread_local! {
    static LAST: RefCell<CString> = RefCell::new(CString::default());
}

/// A failure of a call: the negated errno and what to tell the caller.
pub(crate) struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(status: GovfsStatus, message: impl Into<String>) -> Failure {
        Failure {
            code: status.code(),
            message: message.into(),
        }
    }
}

fn set_last(message: &str) {
    // A NUL inside a message would end it early; replace it.
    let text = CString::new(message.replace('\0', "?")).unwrap_or_default();
    LAST.with(|l| *l.borrow_mut() = text);
}

/// Runs one call: clears the thread's message, turns a failure into its
/// code and message, and stops a panic at the boundary (`-EIO`).
pub(crate) fn call(f: impl FnOnce() -> Result<i64, Failure>) -> i64 {
    set_last("");
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(failure)) => {
            set_last(&failure.message);
            i64::from(failure.code)
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            set_last(&format!("internal error (a bug in GovFS): {what}"));
            i64::from(GovfsStatus::Io.code())
        }
    }
}

/// [`call`] for calls that answer only a status.
pub(crate) fn status(f: impl FnOnce() -> Result<(), Failure>) -> i32 {
    // Status codes are small negative numbers or 0: the cast is exact.
    call(|| f().map(|()| 0)) as i32
}

/// The message of the last failed call on this thread ("" after a call
/// that succeeded). Valid until the next GovFS call on this thread; do not
/// free it.
#[no_mangle]
pub extern "C" fn govfs_last_error() -> *const c_char {
    // The CString lives in this thread's storage until the next call
    // replaces it, so the pointer stays valid that long.
    LAST.with(|l| l.borrow().as_ptr())
}
