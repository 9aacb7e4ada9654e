//! Memory per inode, measured: a counting allocator tracks live heap bytes
//! while a namespace fills with plain files, and the test asserts the bound
//! of the design (under 200 bytes per file in memory) and that
//! `Namespace::bytes_per_inode` estimates it within 25%.
//!
//! Two figures per run: bytes the program asked for, and the same rounded
//! up the way glibc's malloc does (16-byte steps, 8 bytes of header, 32 at
//! least), which is closer to what the process really holds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use govfs_core::meta::{ChangeFeed, Credentials, MetaOp, MetaReply, MetaRequest, Namespace, ROOT};

struct Counting;

static REQUESTED: AtomicIsize = AtomicIsize::new(0);
static ROUNDED: AtomicIsize = AtomicIsize::new(0);

fn malloc_size(size: usize) -> isize {
    (size + 8).next_multiple_of(16).max(32) as isize
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        REQUESTED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ROUNDED.fetch_add(malloc_size(layout.size()), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        REQUESTED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        ROUNDED.fetch_sub(malloc_size(layout.size()), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const DIRS: u64 = 50;
const FILES_PER_DIR: u64 = 4_000;

fn run(ns: &mut Namespace, index: &mut u64, op: MetaOp) -> MetaReply {
    *index += 1;
    let req = MetaRequest {
        op,
        creds: Credentials::root(),
        now: *index as i64,
    };
    ns.execute(*index, &req).expect("operation succeeds")
}

/// Fills a namespace and returns (requested, rounded) live bytes per file.
fn measure(shuffled: bool) -> (f64, f64, usize) {
    // A feed of one change: the feed is bounded by its cap, not by the
    // namespace, so it is left out of the per-inode figure.
    let mut ns = Namespace::new(ROOT, ChangeFeed::new(1));
    let mut index = 0;
    let total = DIRS * FILES_PER_DIR;
    run(
        &mut ns,
        &mut index,
        MetaOp::GrantInodes {
            start: 100,
            count: total + DIRS,
        },
    );
    let mut dirs = Vec::new();
    for d in 0..DIRS {
        let op = MetaOp::Mkdir {
            parent: ROOT,
            name: format!("dir-{d:03}").into_bytes(),
            mode: 0o755,
        };
        match run(&mut ns, &mut index, op) {
            MetaReply::Attr(a) => dirs.push(a.ino),
            other => panic!("{other:?}"),
        }
    }
    let before = (
        REQUESTED.load(Ordering::Relaxed),
        ROUNDED.load(Ordering::Relaxed),
    );
    for i in 0..total {
        // Shuffled: files spread over directories and names out of order,
        // as many clients creating at once would.
        let (dir, n) = if shuffled {
            let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 17;
            (dirs[(x % DIRS) as usize], x)
        } else {
            (dirs[(i / FILES_PER_DIR) as usize], i)
        };
        let name = format!("file-{n:08}").into_bytes();
        let op = MetaOp::Create {
            parent: dir,
            name,
            mode: 0o644,
            exclusive: false,
            layout: None,
        };
        run(&mut ns, &mut index, op);
    }
    let files = ns.inode_count() - DIRS - 1;
    let after = (
        REQUESTED.load(Ordering::Relaxed),
        ROUNDED.load(Ordering::Relaxed),
    );
    let per = |b: isize, a: isize| (a - b) as f64 / files as f64;
    (
        per(before.0, after.0),
        per(before.1, after.1),
        ns.bytes_per_inode(),
    )
}

#[test]
fn meta_memory_per_plain_file_is_under_200_bytes() {
    for shuffled in [false, true] {
        let (requested, rounded, estimate) = measure(shuffled);
        println!(
            "plain files ({}): {requested:.1} bytes requested, {rounded:.1} with malloc rounding, estimate {estimate}",
            if shuffled { "shuffled" } else { "in order" }
        );
        assert!(rounded < 200.0, "{rounded} bytes per file");
        let ratio = estimate as f64 / rounded;
        assert!(
            (0.75..=1.25).contains(&ratio),
            "estimate {estimate} vs measured {rounded}"
        );
    }
}
