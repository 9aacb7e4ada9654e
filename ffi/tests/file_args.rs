//! The file calls refuse bad arguments and unknown handles before anything
//! is sent, with an errno and a message, without a cluster.

use std::ffi::{c_void, CStr};
use std::ptr;

use govfs_ffi::*;

const EBADF: i64 = 9;
const EINVAL: i64 = 22;

fn message() -> String {
    // SAFETY: govfs_last_error returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(govfs_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn expect(what: &str, got: i64, want: i64, says: &str) {
    assert_eq!(got, -want, "{what}: {}", message());
    let m = message();
    assert!(m.contains(says), "{what}: the message {m:?} says {says:?}");
}

#[test]
fn bad_arguments_and_unknown_handles_are_refused() {
    let mut out = 0u64;
    let mut buf = [0u8; 16];
    let p = buf.as_mut_ptr().cast::<c_void>();
    let path = c"/x".as_ptr();
    // Flags and regions are checked before the handle.
    // SAFETY: every pointer is valid or NULL.
    unsafe {
        expect(
            "unknown flag bits",
            govfs_open(1, path, 0x1000, &mut out).into(),
            EINVAL,
            "flags",
        );
        expect(
            "WRONLY|RDWR",
            govfs_open(1, path, GOVFS_O_WRONLY | GOVFS_O_RDWR, &mut out).into(),
            EINVAL,
            "flags",
        );
        expect(
            "EXCL without CREAT",
            govfs_open(1, path, GOVFS_O_EXCL, &mut out).into(),
            EINVAL,
            "EXCL",
        );
        expect(
            "NULL path",
            govfs_open(1, ptr::null(), 0, &mut out).into(),
            EINVAL,
            "path",
        );
        expect(
            "NULL out",
            govfs_open(1, path, 0, ptr::null_mut()).into(),
            EINVAL,
            "out",
        );
        expect(
            "unknown connection",
            govfs_open(u64::MAX, path, 0, &mut out).into(),
            EBADF,
            "not open",
        );
        expect(
            "empty region",
            govfs_open_region(1, path, 5, 0, &mut out).into(),
            EINVAL,
            "region",
        );
        expect(
            "region past 2^64",
            govfs_open_region(1, path, u64::MAX, 1, &mut out).into(),
            EINVAL,
            "region",
        );

        // Buffers are checked before the file handle.
        expect(
            "pread NULL",
            govfs_pread(7, ptr::null_mut(), 16, 0),
            EINVAL,
            "buf",
        );
        expect(
            "pwrite NULL",
            govfs_pwrite(7, ptr::null(), 16, 0),
            EINVAL,
            "buf",
        );
        expect(
            "pwrite huge",
            govfs_pwrite(7, p, usize::MAX, 0),
            EINVAL,
            "too large",
        );
        expect(
            "pread past 2^64",
            govfs_pread(7, p, 16, u64::MAX - 1),
            EINVAL,
            "overflows",
        );
        expect(
            "async len 0",
            govfs_write_async(7, 1, p, 0, 0).into(),
            EINVAL,
            "len",
        );
        expect(
            "size NULL",
            govfs_file_size(7, ptr::null_mut()).into(),
            EINVAL,
            "out",
        );
        let mut n = 0usize;
        expect(
            "poll NULL out",
            govfs_poll_completions(7, ptr::null_mut(), 4, &mut n).into(),
            EINVAL,
            "out",
        );
        let mut c = GovfsCompletion::default();
        expect(
            "poll NULL n",
            govfs_poll_completions(7, &mut c, 1, ptr::null_mut()).into(),
            EINVAL,
            "n is NULL",
        );
        expect(
            "wait NULL",
            govfs_wait_completion(7, ptr::null_mut()).into(),
            EINVAL,
            "out",
        );
        expect(
            "watermark NULL",
            govfs_low_watermark(7, ptr::null_mut()).into(),
            EINVAL,
            "out",
        );

        // Good arguments, a file handle never opened.
        expect(
            "pread",
            govfs_pread(7, p, 16, 0),
            EBADF,
            "file 7 is not open",
        );
        expect("pwrite", govfs_pwrite(7, p, 16, 0), EBADF, "not open");
        expect(
            "async",
            govfs_write_async(7, 1, p, 16, 0).into(),
            EBADF,
            "not open",
        );
        expect("fsync", govfs_fsync(7).into(), EBADF, "not open");
        expect(
            "size",
            govfs_file_size(7, &mut out).into(),
            EBADF,
            "not open",
        );
        expect(
            "poll",
            govfs_poll_completions(7, &mut c, 1, &mut n).into(),
            EBADF,
            "not open",
        );
        expect(
            "wait",
            govfs_wait_completion(7, &mut c).into(),
            EBADF,
            "not open",
        );
        expect(
            "watermark",
            govfs_low_watermark(7, &mut out).into(),
            EBADF,
            "not open",
        );
        expect("in flight", govfs_async_in_flight(7), EBADF, "not open");
        expect("close", govfs_close(7).into(), EBADF, "not open");
    }
}
