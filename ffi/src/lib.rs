//! C API of GovFS. For now only a skeleton: [`govfs_version`] and the
//! [`GovfsStatus`] codes every later call will return.
//!
//! Not built yet (DESIGN.md section 7): the client calls themselves (opaque
//! handles, namespace and file calls, region leases), the cbindgen-generated
//! header and the pkg-config file. They land with the client issue.

use std::ffi::{c_char, CStr};

/// The crate version as a C string, checked for its NUL at compile time.
const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(version) => version,
        Err(_) => panic!("CARGO_PKG_VERSION contains a NUL byte"),
    };

/// Status code returned by every GovFS C call: `0` for success, otherwise a
/// negated Linux errno value, so C callers can hand `-status` to `strerror`.
///
/// Only the codes are defined so far; the full client API that returns them
/// (with a per-thread error message) lands with the client issue.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GovfsStatus {
    /// Success.
    Ok = 0,
    /// Not permitted, e.g. a POSIX permission check failed (`-EPERM`).
    Perm = -1,
    /// No such file or directory (`-ENOENT`).
    NoEnt = -2,
    /// I/O error, e.g. the cluster could not be reached (`-EIO`).
    Io = -5,
    /// Try again, e.g. a conflicting lease is held (`-EAGAIN`).
    Again = -11,
    /// Out of memory (`-ENOMEM`).
    NoMem = -12,
    /// Invalid argument, e.g. a null pointer or bad flags (`-EINVAL`).
    Inval = -22,
    /// Not supported by this build or this cluster (`-EOPNOTSUPP`).
    NotSup = -95,
}

impl GovfsStatus {
    /// The integer a C caller sees.
    pub const fn code(self) -> i32 {
        self as i32
    }
}

/// The GovFS library version (for example `"0.1.0"`) as a static,
/// NUL-terminated string. The pointer is valid for the life of the process;
/// the caller must not free it.
#[no_mangle]
pub extern "C" fn govfs_version() -> *const c_char {
    VERSION.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_matches_the_crate() {
        let ptr = govfs_version();
        assert!(!ptr.is_null());
        // SAFETY: govfs_version returns a pointer to a 'static NUL-terminated
        // string.
        let version = unsafe { CStr::from_ptr(ptr) };
        assert_eq!(version.to_str(), Ok(env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn status_codes_are_negated_errno_values() {
        assert_eq!(GovfsStatus::Ok.code(), 0);
        assert_eq!(GovfsStatus::NoEnt.code(), -2);
        assert_eq!(GovfsStatus::Inval.code(), -22);
        assert_eq!(size_of::<GovfsStatus>(), size_of::<i32>());
    }
}
