//! The disk backends under the log: which one a log gets, and that both
//! write what they are given, aligned as `O_DIRECT` needs.

mod common;

use common::*;
use govfs_engine::io::{
    self, AlignedBuf, BackendChoice, BlockingIo, Chosen, DiskError, DiskIo, IoFile, OpenMode,
    SubmissionId, UringIo, UringOptions, BLOCK, WRITE_BUFFER_BYTES,
};
use govfs_engine::log_store::SegmentedLog;
use std::collections::BTreeMap;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

#[test]
fn forced_uring_gets_io_uring_with_a_registered_buffer() {
    if !uring_or_skip("forced_uring_gets_io_uring_with_a_registered_buffer") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = SegmentedLog::open_with(dir.path(), opts(), BackendChoice::Uring).unwrap();
    match log.disk_io() {
        Chosen::Uring {
            registered_buffers: 1,
            ..
        } => {}
        other => panic!("forced io_uring, got {other}"),
    }
    write(&mut log, &entries(1, 1..=5), 2);
    drop(log);
    assert_eq!(open(Disk::Uring, dir.path()).1.entries, entries(1, 1..=5));
}

#[test]
fn auto_takes_io_uring_where_it_works_and_says_why_not_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let (_, chosen) = io::open_backend(BackendChoice::Auto, dir.path()).unwrap();
    match (uring_unavailable(), &chosen) {
        (None, Chosen::Uring { .. }) => {}
        (
            Some(why),
            Chosen::Blocking {
                unavailable: Some(reason),
            },
        ) => {
            assert!(why.ends_with(reason.as_str()), "{why} / {reason}");
            assert!(chosen.to_string().contains("(io_uring unavailable: "));
        }
        (why, chosen) => panic!("io_uring unavailable: {why:?}, yet chose {chosen}"),
    }
    let (_, chosen) = io::open_backend(BackendChoice::Blocking, dir.path()).unwrap();
    assert_eq!(chosen, Chosen::Blocking { unavailable: None });
    assert_eq!(chosen.to_string(), "blocking pwrite+fdatasync (requested)");
}

/// Every way of setting up a backend that this machine supports.
fn backends(dir: &Path) -> Vec<(&'static str, Box<dyn DiskIo>)> {
    let mut all: Vec<(&'static str, Box<dyn DiskIo>)> =
        vec![("blocking", Box::new(BlockingIo::new(None)))];
    if uring_unavailable().is_none() {
        for (name, direct, registered_buffers) in [
            ("uring", true, 1),
            ("uring unregistered", true, 0),
            ("uring buffered", false, 1),
        ] {
            let opts = UringOptions {
                direct,
                registered_buffers,
                ..UringOptions::default()
            };
            all.push((name, Box::new(UringIo::open(dir, opts).unwrap())));
        }
    }
    all
}

fn filled(byte: u8, len: usize) -> AlignedBuf {
    let mut buf = AlignedBuf::new(len);
    buf.fill_from(&vec![byte; len]);
    buf
}

#[test]
fn backends_write_sync_and_truncate_what_they_are_given() {
    let dir = tempfile::tempdir().unwrap();
    for (name, mut io) in backends(dir.path()) {
        let path = dir.path().join(format!("{name}.dat"));
        let file = io.open(&path, OpenMode::CreateNew).unwrap();
        let mut big = io.buffer(WRITE_BUFFER_BYTES);
        big.fill_from(&vec![1; 3 * BLOCK]);
        io.write_at(&file, 0, &big).unwrap();
        io.write_at_and_sync(&file, BLOCK as u64, &filled(2, BLOCK))
            .unwrap();
        io.sync(&file).unwrap();
        let mut expected = vec![1; BLOCK];
        expected.extend(vec![2; BLOCK]);
        expected.extend(vec![1; BLOCK]);
        assert_eq!(fs::read(&path).unwrap(), expected, "{name}");
        io.truncate(&file, 100).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 100, "{name}");
        assert!(
            matches!(
                io.open(&path, OpenMode::CreateNew),
                Err(DiskError::Os { op: "open", .. })
            ),
            "{name}"
        );
        let again = io.open(&path, OpenMode::Existing).unwrap();
        io.write_at_and_sync(&again, 0, &filled(3, BLOCK)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), vec![3; BLOCK], "{name}");
    }
}

/// Several writes in one call land where each belongs, on every backend:
/// up to four go in one io_uring submission, more one after another; an
/// unaligned one is refused with `O_DIRECT`.
#[test]
fn writes_given_together_each_land_where_they_belong() {
    let dir = tempfile::tempdir().unwrap();
    for (name, mut io) in backends(dir.path()) {
        let path = dir.path().join(format!("{name}-all.dat"));
        let file = io.open(&path, OpenMode::CreateNew).unwrap();
        let mut registered = io.buffer(2 * BLOCK);
        registered.fill_from(&vec![7; 2 * BLOCK]);
        let bufs: Vec<AlignedBuf> = (1..=6).map(|b| filled(b, BLOCK)).collect();
        io.write_all_at(
            &file,
            &[
                (5 * BLOCK as u64, &bufs[4]),
                (0, &registered),
                (3 * BLOCK as u64, &bufs[2]),
            ],
        )
        .unwrap();
        // Six at once: more than one submission takes.
        let six: Vec<(u64, &AlignedBuf)> = bufs
            .iter()
            .enumerate()
            .map(|(k, b)| ((8 + k as u64) * BLOCK as u64, b))
            .collect();
        io.write_all_at(&file, &six).unwrap();
        io.sync(&file).unwrap();
        let got = fs::read(&path).unwrap();
        let block = |k: usize| &got[k * BLOCK..(k + 1) * BLOCK];
        assert_eq!(got.len(), 14 * BLOCK, "{name}");
        assert!(block(0).iter().chain(block(1)).all(|&b| b == 7), "{name}");
        assert!(block(2).iter().all(|&b| b == 0), "{name}: untouched");
        assert!(block(3).iter().all(|&b| b == 3), "{name}");
        assert!(block(5).iter().all(|&b| b == 5), "{name}");
        for k in 0..6 {
            assert!(block(8 + k).iter().all(|&b| b == k as u8 + 1), "{name}");
        }
        if file.direct() {
            let refused = io.write_all_at(&file, &[(0, &bufs[0]), (100, &bufs[1])]);
            assert!(
                matches!(refused, Err(DiskError::Unaligned { offset: 100, .. })),
                "{name}: {refused:?}"
            );
        }
    }
}

#[test]
fn o_direct_files_refuse_unaligned_writes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, mut io) in backends(dir.path()) {
        let file = io
            .open(&dir.path().join(format!("{name}.dat")), OpenMode::CreateNew)
            .unwrap();
        let odd = filled(7, 100);
        let result = io.write_at_and_sync(&file, 0, &odd);
        if file.direct() {
            assert!(
                matches!(
                    result,
                    Err(DiskError::Unaligned {
                        offset: 0,
                        len: 100
                    })
                ),
                "{name}"
            );
            assert!(matches!(
                io.write_at(&file, 512, &filled(7, BLOCK)),
                Err(DiskError::Unaligned { offset: 512, .. })
            ));
        } else {
            result.unwrap();
        }
    }
}

/// `blocks` blocks of bytes that differ from block to block and within
/// each, so a read from the wrong offset shows.
fn pattern(blocks: usize) -> Vec<u8> {
    (0..blocks * BLOCK)
        .map(|i| (i / BLOCK * 37 + i % 251) as u8)
        .collect()
}

/// A new file `name` holding `data`, written (and synced) through `io`.
fn file_with(io: &mut dyn DiskIo, dir: &Path, name: &str, data: &[u8]) -> IoFile {
    let file = io
        .open(&dir.join(format!("{name}.dat")), OpenMode::CreateNew)
        .unwrap();
    let mut buf = AlignedBuf::new(data.len());
    buf.fill_from(data);
    io.write_at_and_sync(&file, 0, &buf).unwrap();
    file
}

/// Reaps completions until none is in flight; returns them by id.
fn reap_all(io: &mut dyn DiskIo) -> BTreeMap<SubmissionId, Result<(), DiskError>> {
    let start = std::time::Instant::now();
    let mut all = BTreeMap::new();
    let mut out = Vec::new();
    while io.in_flight() > 0 {
        assert!(start.elapsed().as_secs() < 10, "no completion in 10 s");
        io.poll_completions(&mut out);
        all.extend(out.drain(..));
    }
    all
}

#[test]
fn submitted_reads_in_flight_together_return_the_file_bytes() {
    const READS: usize = io::uring::MAX_IN_FLIGHT;
    let dir = tempfile::tempdir().unwrap();
    for (name, mut io) in backends(dir.path()) {
        let data = pattern(READS + 4);
        let file = file_with(&mut *io, dir.path(), name, &data);
        let uring = name != "blocking";
        // Read `i` takes 1 to 3 blocks from block `i`: overlapping ranges of
        // different lengths. The first buffer is the registered one, if any.
        let range = |i: usize| i * BLOCK..(i + 1 + i % 3) * BLOCK;
        let mut bufs: Vec<AlignedBuf> = (0..READS).map(|_| AlignedBuf::new(3 * BLOCK)).collect();
        bufs[0] = io.buffer(WRITE_BUFFER_BYTES);
        let registered = bufs[0].is_registered();
        let mut ids = Vec::new();
        // Submitted last block first, so completions need not follow ids.
        for i in (0..READS).rev() {
            let r = range(i);
            let id = io
                .submit_read(&file, r.start as u64, r.len(), &mut bufs[i])
                .unwrap();
            ids.push((id, i));
        }
        assert_eq!(io.in_flight(), READS, "{name}");
        if uring {
            // Nothing is reaped until asked, so all are still marked in flight.
            assert!(bufs.iter().all(AlignedBuf::read_in_flight), "{name}");
            let touched = catch_unwind(AssertUnwindSafe(|| bufs[0].as_slice().len()));
            assert!(touched.is_err(), "{name}: touched a buffer being read into");
            let again = io.submit_read(&file, 0, BLOCK, &mut bufs[0]);
            assert!(matches!(again, Err(DiskError::BufferInUse)), "{name}");
            // One more than the ring takes at once is refused, starting nothing.
            let mut extra = AlignedBuf::new(BLOCK);
            let too_many = io.submit_read(&file, 0, BLOCK, &mut extra);
            assert!(
                matches!(too_many, Err(DiskError::TooManyInFlight { limit: READS })),
                "{name}: {too_many:?}"
            );
            assert!(!extra.read_in_flight());
            assert_eq!(io.in_flight(), READS, "{name}");
        } else {
            assert!(!bufs.iter().any(AlignedBuf::read_in_flight), "{name}");
        }
        // A buffer dropped before its read completes: the backend keeps it.
        let dropped = bufs.pop().unwrap();
        drop(dropped);
        // Wait for one in the middle, poll for the rest.
        let (waited, _) = ids[READS / 2];
        io.wait_completion(waited).unwrap();
        let rest = reap_all(&mut *io);
        assert_eq!(rest.len(), READS - 1, "{name}");
        for (id, i) in &ids {
            if *id != waited {
                assert!(
                    matches!(rest.get(id), Some(Ok(()))),
                    "{name}: read {i}: {:?}",
                    rest.get(id)
                );
            }
        }
        for (i, buf) in bufs.iter().enumerate() {
            assert!(!buf.read_in_flight(), "{name}");
            assert_eq!(buf.as_slice(), &data[range(i)], "{name}: read {i}");
        }
        // Reaped, the registered buffer returns to the ring's pool.
        drop(bufs);
        assert_eq!(
            io.buffer(WRITE_BUFFER_BYTES).is_registered(),
            registered,
            "{name}"
        );

        // Past the end of the file: an error saying how much was read, the
        // buffer holding the length asked for.
        let end = data.len() as u64;
        let mut buf = AlignedBuf::new(4 * BLOCK);
        let id = io
            .submit_read(&file, end - 2 * BLOCK as u64, 4 * BLOCK, &mut buf)
            .unwrap();
        let short = io.wait_completion(id);
        match &short {
            Err(DiskError::ShortRead { read, len }) => {
                assert_eq!((*read, *len), (2 * BLOCK, 4 * BLOCK), "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(
            short.unwrap_err().to_string(),
            format!(
                "short read: {} of {} bytes, the file ends there",
                2 * BLOCK,
                4 * BLOCK
            )
        );
        assert_eq!(buf.len(), 4 * BLOCK, "{name}");
        assert_eq!(
            &buf.as_slice()[..2 * BLOCK],
            &data[data.len() - 2 * BLOCK..]
        );
        let id = io.submit_read(&file, end, BLOCK, &mut buf).unwrap();
        assert!(matches!(
            io.wait_completion(id),
            Err(DiskError::ShortRead { read: 0, .. })
        ));
        // An end of file inside a block (O_DIRECT reads stop there too).
        io.truncate(&file, end - 100).unwrap();
        let id = io
            .submit_read(&file, end - 2 * BLOCK as u64, 2 * BLOCK, &mut buf)
            .unwrap();
        let short = io.wait_completion(id);
        assert!(
            matches!(short, Err(DiskError::ShortRead { read, .. }) if read == 2 * BLOCK - 100),
            "{name}: {short:?}"
        );
        assert_eq!(
            &buf.as_slice()[..2 * BLOCK - 100],
            &data[data.len() - 2 * BLOCK..data.len() - 100]
        );
        // Nothing to read completes at once.
        let id = io.submit_read(&file, 0, 0, &mut buf).unwrap();
        io.wait_completion(id).unwrap();
        assert!(buf.is_empty());

        // Dropping the backend with reads in flight waits for them.
        let id = io.submit_read(&file, 0, 2 * BLOCK, &mut buf).unwrap();
        assert!(id > 0);
        drop(io);
        assert!(!buf.read_in_flight(), "{name}");
        assert_eq!(buf.as_slice(), &data[..2 * BLOCK], "{name}");
    }
}

#[test]
fn o_direct_files_refuse_unaligned_submitted_reads() {
    let dir = tempfile::tempdir().unwrap();
    for (name, mut io) in backends(dir.path()) {
        let data = pattern(4);
        let file = file_with(&mut *io, dir.path(), name, &data);
        let mut buf = io.buffer(WRITE_BUFFER_BYTES);
        if file.direct() {
            let odd_offset = io.submit_read(&file, 512, BLOCK, &mut buf);
            match odd_offset {
                Err(
                    e @ DiskError::Unaligned {
                        offset: 512,
                        len: BLOCK,
                    },
                ) => assert_eq!(
                    e.to_string(),
                    "IO of 4096 bytes at offset 512 is not block-aligned, as O_DIRECT needs"
                ),
                other => panic!("{name}: {other:?}"),
            }
            assert!(
                matches!(
                    io.submit_read(&file, 0, 100, &mut buf),
                    Err(DiskError::Unaligned {
                        offset: 0,
                        len: 100
                    })
                ),
                "{name}"
            );
            // Nothing started: nothing to reap, and the buffer is free.
            assert_eq!(io.in_flight(), 0, "{name}");
            assert!(!buf.read_in_flight(), "{name}");
            let id = io
                .submit_read(&file, BLOCK as u64, BLOCK, &mut buf)
                .unwrap();
            io.wait_completion(id).unwrap();
            assert_eq!(buf.as_slice(), &data[BLOCK..2 * BLOCK], "{name}");
        } else {
            // Through the page cache any offset and length will do.
            let id = io.submit_read(&file, 512, 100, &mut buf).unwrap();
            io.wait_completion(id).unwrap();
            assert_eq!(buf.as_slice(), &data[512..612], "{name}");
        }
    }
}

#[test]
fn registered_buffers_are_lent_one_at_a_time() {
    if !uring_or_skip("registered_buffers_are_lent_one_at_a_time") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut io = UringIo::open(dir.path(), UringOptions::default()).unwrap();
    let first = io.buffer(WRITE_BUFFER_BYTES);
    assert!(first.is_registered());
    // Only one is registered; and a larger request never gets it.
    assert!(!io.buffer(WRITE_BUFFER_BYTES).is_registered());
    drop(first);
    assert!(!io.buffer(WRITE_BUFFER_BYTES + 1).is_registered());
    let again = io.buffer(BLOCK);
    assert!(again.is_registered());
    assert_eq!(again.capacity(), WRITE_BUFFER_BYTES);
    // Another ring's registered buffer is written as a plain one.
    let mut other = UringIo::open(dir.path(), UringOptions::default()).unwrap();
    let file = other
        .open(&dir.path().join("other.dat"), OpenMode::CreateNew)
        .unwrap();
    let mut foreign = again;
    foreign.fill_from(&[5; BLOCK]);
    other.write_at_and_sync(&file, 0, &foreign).unwrap();
    assert_eq!(
        fs::read(dir.path().join("other.dat")).unwrap(),
        vec![5; BLOCK]
    );
}

/// Makes syscall `nr` fail with EPERM in the calling thread only (a seccomp
/// filter binds the thread that installs it and its children), as container
/// sandboxes that block io_uring do.
#[cfg(target_arch = "x86_64")]
fn refuse_syscall_in_this_thread(nr: libc::c_long) {
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let filter = [
        // Load the syscall number (offset 0 of `seccomp_data`).
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        // Equal: fall through to refuse; else skip to allow.
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: nr as u32,
        },
        stmt(libc::BPF_RET, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(libc::BPF_RET, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: these prctl calls read only their integer arguments and `prog`,
    // which points to `filter`; both live across the calls.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog
            ),
            0
        );
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn a_sandbox_that_refuses_io_uring_gets_blocking_io_and_says_why() {
    for (nr, step) in [
        (libc::SYS_io_uring_setup, "io_uring_setup"),
        (libc::SYS_io_uring_register, "io_uring opcode probe"),
        (libc::SYS_io_uring_enter, "io_uring_enter"),
    ] {
        std::thread::spawn(move || {
            let dir = tempfile::tempdir().unwrap();
            refuse_syscall_in_this_thread(nr);
            let (_, chosen) = io::open_backend(BackendChoice::Auto, dir.path()).unwrap();
            let line = chosen.to_string();
            assert!(
                line.starts_with("blocking pwrite+fdatasync (io_uring unavailable: ")
                    && line.contains(step),
                "{line}"
            );
            assert!(matches!(
                io::open_backend(BackendChoice::Uring, dir.path()),
                Err(DiskError::Unavailable(_))
            ));
            let (mut log, _) = SegmentedLog::open(dir.path(), opts()).unwrap();
            assert!(matches!(log.disk_io(), Chosen::Blocking { .. }));
            write(&mut log, &entries(1, 1..=3), 2);
            drop(log);
            let (_, replay) = SegmentedLog::open(dir.path(), opts()).unwrap();
            assert_eq!(replay.entries, entries(1, 1..=3));
        })
        .join()
        .unwrap();
    }
}
