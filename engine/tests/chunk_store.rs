//! The chunk store on real files, through both disk backends (io_uring with
//! O_DIRECT where the kernel allows it, and the blocking fallback): writes
//! at any offset read back, survive reopening, holes read as zeros, damage
//! on disk is reported by block and never returned, stale versions and
//! out-of-range writes are refused, a cut chunk reads zeros past the cut,
//! and random writes and cuts agree with a model.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use govfs_engine::chunk::format::data_offset;
use govfs_engine::chunk::{ChunkError, ChunkOptions, ChunkStore};
use govfs_engine::io::{BackendChoice, Chosen, BLOCK};
use proptest::prelude::*;

const CHUNK: usize = 256 << 10;
/// The capability bit (linux/capability.h) that exempts a process from
/// the memory lock limit.
const CAP_IPC_LOCK: u32 = 14;

fn backends() -> Vec<BackendChoice> {
    vec![BackendChoice::Auto, BackendChoice::Blocking]
}

fn store(dir: &std::path::Path, backend: BackendChoice) -> ChunkStore {
    let opts = ChunkOptions {
        chunk_size: CHUNK,
        max_open: 4,
        backend,
    };
    ChunkStore::open(dir, opts).expect("open store")
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i * 7 % 251) as u8))
        .collect()
}

/// With io_uring the store registers one buffer as large as a chunk, so
/// all its IO uses it, unless the memory lock limit cannot be raised that
/// far (then it says it has none and works unregistered, which is checked
/// to work all the same).
#[test]
fn io_uring_stores_register_a_chunk_sized_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(dir.path(), BackendChoice::Auto);
    let data = pattern(9, CHUNK - 3 * BLOCK);
    s.write(1, 0, 5, &data).expect("write");
    assert_eq!(s.read(1, 5, data.len()).expect("read"), data);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } == 0;
    // Registered memory is counted per user, across processes and the
    // other tests running beside this one, unless the user may lock any
    // amount: only then must registering succeed.
    let ipc_lock = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let caps = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(caps.trim(), 16).ok()
        })
        .is_some_and(|caps| caps >> CAP_IPC_LOCK & 1 == 1);
    let room = known && (ipc_lock || limit.rlim_max == libc::RLIM_INFINITY);
    match s.chosen() {
        Chosen::Uring {
            registered_buffers, ..
        } => {
            assert!(*registered_buffers <= 1, "{registered_buffers}");
            if room {
                assert_eq!(*registered_buffers, 1, "a lock limit of {}", limit.rlim_max);
            }
        }
        other => eprintln!("io_uring unavailable here, tested the fallback twice: {other}"),
    }
}

#[test]
fn writes_at_any_offset_read_back_and_survive_reopening() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path(), backend);
        let a = pattern(1, 10_000);
        let b = pattern(2, 3 * BLOCK);
        let c = pattern(3, 100);
        s.write(7, 1, 5, &a).unwrap();
        s.write(7, 1, 2 * BLOCK as u64, &b).unwrap(); // aligned, overlapping a's tail
        s.write(7, 1, 3 * BLOCK as u64 + 17, &c).unwrap(); // inside b
        let mut model = vec![0u8; 5 * BLOCK];
        model[5..5 + a.len()].copy_from_slice(&a);
        model[2 * BLOCK..5 * BLOCK].copy_from_slice(&b);
        model[3 * BLOCK + 17..3 * BLOCK + 117].copy_from_slice(&c);
        assert_eq!(s.read(7, 0, model.len()).unwrap(), model, "{backend:?}");
        assert_eq!(s.read(7, 4000, 300).unwrap(), model[4000..4300]);
        assert_eq!(s.stat(7).unwrap(), Some((5 * BLOCK as u64, 1)));
        drop(s);
        let mut s = store(dir.path(), backend);
        assert_eq!(s.list().unwrap(), vec![7]);
        assert_eq!(s.read(7, 0, CHUNK).unwrap(), model, "after reopening");
        // Past the size: fewer bytes, then none.
        assert_eq!(s.read(7, 5 * BLOCK as u64 - 10, 100).unwrap().len(), 10);
        assert!(s.read(7, 6 * BLOCK as u64, 10).unwrap().is_empty());
    }
}

#[test]
fn holes_read_as_zeros() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path(), backend);
        s.write(1, 0, 10 * BLOCK as u64, b"end").unwrap();
        let all = s.read(1, 0, CHUNK).unwrap();
        assert_eq!(all.len(), 10 * BLOCK + 3);
        assert!(all[..10 * BLOCK].iter().all(|b| *b == 0));
        assert_eq!(&all[10 * BLOCK..], b"end");
        assert!(s.scrub(1).unwrap().is_empty());
    }
}

#[test]
fn damage_on_disk_is_reported_by_block_and_never_returned() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path(), backend);
        s.write(9, 0, 0, &pattern(5, 4 * BLOCK)).unwrap();
        let path = s.path_of(9);
        drop(s);
        // Flip one byte of data block 2, as a bad sector or a torn write would.
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let at = data_offset(CHUNK, 2) + 100;
        let mut byte = [0u8];
        f.read_exact_at(&mut byte, at).unwrap();
        f.write_all_at(&[byte[0] ^ 0x01], at).unwrap();
        f.sync_all().unwrap();
        let mut s = store(dir.path(), backend);
        match s.read(9, 0, 4 * BLOCK) {
            Err(ChunkError::Corrupt { chunk: 9, block: 2 }) => {}
            other => panic!("want block 2 corrupt, got {other:?}"),
        }
        // The good blocks still read; a partial write over the bad block
        // refuses to merge with unverified bytes.
        assert_eq!(
            s.read(9, 0, 2 * BLOCK).unwrap(),
            pattern(5, 4 * BLOCK)[..2 * BLOCK]
        );
        assert_eq!(s.scrub(9).unwrap(), vec![2]);
        assert!(matches!(
            s.write(9, 0, 2 * BLOCK as u64 + 1, b"x"),
            Err(ChunkError::Corrupt { block: 2, .. })
        ));
        // A whole-block rewrite repairs it (as re-replication will).
        s.write(
            9,
            0,
            2 * BLOCK as u64,
            &pattern(5, 4 * BLOCK)[2 * BLOCK..3 * BLOCK],
        )
        .unwrap();
        assert_eq!(s.read(9, 0, 4 * BLOCK).unwrap(), pattern(5, 4 * BLOCK));
        assert!(s.scrub(9).unwrap().is_empty());
    }
}

/// In a chunk of more than 4 MiB the checksum table spans several blocks:
/// a write whose entries lie in the first goes out with the header in one
/// IO, a write further in gets its own table write and header write. Both
/// kinds read back, after reopening too, on both backends.
#[test]
fn header_and_table_reach_the_disk_together_or_apart() {
    const BIG: usize = 8 << 20; // two table blocks
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let opts = || ChunkOptions {
            chunk_size: BIG,
            max_open: 4,
            backend,
        };
        let mut s = ChunkStore::open(dir.path(), opts()).unwrap();
        let near = pattern(3, 3 * BLOCK);
        let far = pattern(4, 2 * BLOCK + 5);
        let far_at = (BIG - 2 * BLOCK - 5) as u64;
        s.write(1, 2, 100, &near).unwrap(); // table block 0: with the header
        s.write(1, 2, far_at, &far).unwrap(); // table block 1: apart
        s.write(2, 2, far_at, &far).unwrap(); // a new chunk written far first
        for s in [&mut s, &mut ChunkStore::open(dir.path(), opts()).unwrap()] {
            assert_eq!(s.read(1, 100, near.len()).unwrap(), near);
            assert_eq!(s.read(1, far_at, far.len()).unwrap(), far);
            assert_eq!(s.stat(1).unwrap(), Some((BIG as u64, 2)));
            assert_eq!(s.read(2, far_at, far.len()).unwrap(), far);
            assert_eq!(s.read(2, 0, 10).unwrap(), vec![0; 10], "a hole");
            assert!(s.scrub(1).unwrap().is_empty());
        }
    }
}

#[test]
fn a_block_written_where_another_belongs_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(dir.path(), BackendChoice::Auto);
    s.write(3, 0, 0, &pattern(1, 2 * BLOCK)).unwrap();
    let path = s.path_of(3);
    drop(s);
    // Copy block 0 over block 1 (its checksum is valid for block 0 only).
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut b0 = vec![0u8; BLOCK];
    f.read_exact_at(&mut b0, data_offset(CHUNK, 0)).unwrap();
    f.write_all_at(&b0, data_offset(CHUNK, 1)).unwrap();
    let mut s = store(dir.path(), BackendChoice::Auto);
    assert!(matches!(
        s.read(3, 0, 2 * BLOCK),
        Err(ChunkError::Corrupt { block: 1, .. })
    ));
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(dir.path(), BackendChoice::Auto);
    s.write(4, 5, 0, b"v5").unwrap();
    assert!(matches!(
        s.write(4, 4, 0, b"old"),
        Err(ChunkError::StaleVersion {
            have: 5,
            got: 4,
            ..
        })
    ));
    assert!(matches!(
        s.write(4, 5, CHUNK as u64 - 1, b"ab"),
        Err(ChunkError::OutOfRange { .. })
    ));
    assert!(matches!(
        s.write(4, 5, u64::MAX, b"a"),
        Err(ChunkError::OutOfRange { .. })
    ));
    assert!(matches!(
        s.read(4, 0, CHUNK + 1),
        Err(ChunkError::OutOfRange { .. })
    ));
    assert!(matches!(
        s.read(99, 0, 1),
        Err(ChunkError::NoSuchChunk { chunk: 99 })
    ));
    assert_eq!(s.read(4, 0, 10).unwrap(), b"v5");
    s.write(4, 6, 0, b"v6").unwrap();
    assert_eq!(s.stat(4).unwrap(), Some((2, 6)));
    assert!(ChunkStore::open(
        dir.path(),
        ChunkOptions {
            chunk_size: 1000,
            ..ChunkOptions::default()
        }
    )
    .is_err());

    // A damaged header, a file from another chunk size, garbage: refused
    // on open with the reason.
    let path = s.path_of(4);
    drop(s);
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(b"XXXX", 0).unwrap();
    let mut s = store(dir.path(), BackendChoice::Auto);
    assert!(matches!(
        s.read(4, 0, 1),
        Err(ChunkError::BadHeader { chunk: 4, .. })
    ));
    std::fs::write(s.path_of(5), b"short garbage").unwrap();
    assert!(matches!(
        s.stat(5),
        Err(ChunkError::BadHeader { chunk: 5, .. })
    ));
    let mut other = ChunkStore::open(
        &dir.path().join("other"),
        ChunkOptions {
            chunk_size: 2 * CHUNK,
            ..ChunkOptions::default()
        },
    )
    .unwrap();
    other.write(6, 0, 0, b"x").unwrap();
    std::fs::copy(other.path_of(6), s.path_of(6)).unwrap();
    assert!(matches!(
        s.stat(6),
        Err(ChunkError::BadHeader { chunk: 6, .. })
    ));
}

#[test]
fn more_chunks_than_open_files_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(dir.path(), BackendChoice::Auto);
    for c in 0..20u64 {
        s.write(c, 0, c * 100, &pattern(c as u8, 5000)).unwrap();
    }
    for c in (0..20u64).rev() {
        let got = s.read(c, c * 100, 5000).unwrap();
        assert_eq!(got, pattern(c as u8, 5000), "chunk {c}");
    }
    assert_eq!(s.list().unwrap().len(), 20);
    s.remove(3).unwrap();
    s.remove(3).unwrap();
    assert_eq!(s.stat(3).unwrap(), None);
}

#[test]
fn a_group_of_unsynced_writes_stays_open_until_synced_and_reads_back() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        // More dirty chunks than open files: none may be closed unsynced.
        let mut s = store(dir.path(), backend);
        for c in 0..8u64 {
            s.write_unsynced(c, 1, 0, &pattern(c as u8, 3 * BLOCK))
                .unwrap();
        }
        for c in 0..8u64 {
            assert!(
                s.is_dirty(c),
                "chunk {c} stays open and dirty until its sync"
            );
            assert_eq!(
                s.read(c, 0, 3 * BLOCK).unwrap(),
                pattern(c as u8, 3 * BLOCK)
            );
        }
        for c in 0..8u64 {
            s.sync(c).unwrap();
            assert!(!s.is_dirty(c));
        }
        // A sync of a chunk with nothing unsynced (or never written) is a no-op.
        s.sync(3).unwrap();
        s.sync(99).unwrap();
        drop(s);
        let mut s = store(dir.path(), backend);
        for c in 0..8u64 {
            assert_eq!(
                s.read(c, 0, 3 * BLOCK).unwrap(),
                pattern(c as u8, 3 * BLOCK)
            );
        }
    }
}

#[test]
fn a_cut_chunk_reads_zeros_past_the_cut_also_once_it_grows_again() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path(), backend);
        let a = pattern(5, 6 * BLOCK);
        s.write(9, 2, 0, &a).unwrap();
        // Mid-block: the block holding the cut keeps its head.
        let keep = 2 * BLOCK as u64 + 100;
        s.truncate_unsynced(9, 2, keep).unwrap();
        s.sync(9).unwrap();
        assert_eq!(s.read(9, 0, CHUNK).unwrap(), a[..keep as usize]);
        // Grown again past the old end: the cut bytes read as zeros.
        let b = pattern(6, 10);
        s.write(9, 2, 7 * BLOCK as u64, &b).unwrap();
        let mut model = a[..keep as usize].to_vec();
        model.resize(7 * BLOCK, 0);
        model.extend_from_slice(&b);
        assert_eq!(s.read(9, 0, CHUNK).unwrap(), model);
        drop(s);
        let mut s = store(dir.path(), backend);
        assert_eq!(s.read(9, 0, CHUNK).unwrap(), model, "after reopening");
        assert!(s.scrub(9).unwrap().is_empty());
        // To nothing; on a block boundary.
        s.truncate_unsynced(9, 2, 0).unwrap();
        s.sync(9).unwrap();
        assert!(s.read(9, 0, CHUNK).unwrap().is_empty());
        s.write(9, 2, BLOCK as u64, &b).unwrap();
        let mut model = vec![0u8; BLOCK];
        model.extend_from_slice(&b);
        assert_eq!(s.read(9, 0, CHUNK).unwrap(), model);
        // Nothing to cut where there is no chunk; an older replica set and
        // a cut past the chunk are refused.
        s.truncate_unsynced(10, 1, 0).unwrap();
        assert_eq!(s.stat(10).unwrap(), None);
        assert!(matches!(
            s.truncate_unsynced(9, 1, 0),
            Err(ChunkError::StaleVersion { .. })
        ));
        assert!(matches!(
            s.truncate_unsynced(9, 2, CHUNK as u64 + 1),
            Err(ChunkError::OutOfRange { .. })
        ));
        assert_eq!(
            s.read(9, 0, CHUNK).unwrap(),
            model,
            "refusals change nothing"
        );
    }
}

/// Whether the file system under `dir` frees the space of punched holes.
fn punches_holes(dir: &std::path::Path) -> bool {
    use std::os::fd::AsRawFd;
    let path = dir.join("probe");
    let f = std::fs::File::create(&path).unwrap();
    f.write_all_at(&[1u8; 1 << 16], 0).unwrap();
    f.sync_all().unwrap();
    // SAFETY: fallocate on a file this test owns.
    let r = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            0,
            1 << 16,
        )
    };
    let _ = std::fs::remove_file(&path);
    r == 0
}

#[test]
fn a_cut_gives_the_space_back() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    if !punches_holes(dir.path()) {
        eprintln!(
            "SKIPPED: the file system under {} cannot punch holes",
            dir.path().display()
        );
        return;
    }
    let mut s = store(dir.path(), BackendChoice::Auto);
    s.write(3, 1, 0, &pattern(9, CHUNK)).unwrap();
    let blocks = |s: &ChunkStore| std::fs::metadata(s.path_of(3)).unwrap().blocks();
    let full = blocks(&s);
    s.truncate_unsynced(3, 1, BLOCK as u64).unwrap();
    // Nothing is freed before the cleared checksums are durable.
    assert_eq!(blocks(&s), full);
    s.sync(3).unwrap();
    let cut = blocks(&s);
    assert!(
        cut * 4 < full,
        "{full} blocks of 512 bytes before the cut, {cut} after"
    );
    assert_eq!(s.read(3, 0, CHUNK).unwrap(), pattern(9, BLOCK));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_writes_and_cuts_agree_with_a_model(
        writes in prop::collection::vec((0u8..5, 0usize..CHUNK, 1usize..(3 * BLOCK), any::<u8>()), 1..20),
        reopen_at in 0usize..20,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path(), BackendChoice::Auto);
        let mut model: Vec<u8> = Vec::new();
        for (k, (kind, offset, len, seed)) in writes.into_iter().enumerate() {
            if kind == 0 {
                // One op in five is a cut.
                s.truncate_unsynced(1, 0, offset as u64).unwrap();
                s.sync(1).unwrap();
                model.truncate(offset);
            } else {
                let len = len.min(CHUNK - offset);
                let data = pattern(seed, len);
                s.write(1, 0, offset as u64, &data).unwrap();
                if model.len() < offset + len {
                    model.resize(offset + len, 0);
                }
                model[offset..offset + len].copy_from_slice(&data);
            }
            if k == reopen_at {
                drop(s);
                s = store(dir.path(), BackendChoice::Auto);
            }
        }
        match s.read(1, 0, CHUNK) {
            // Only cuts: nothing was ever written, so there is no chunk.
            Err(ChunkError::NoSuchChunk { .. }) => prop_assert!(model.is_empty()),
            read => {
                prop_assert_eq!(read.unwrap(), model);
                prop_assert!(s.scrub(1).unwrap().is_empty());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Batches of writes over three chunks, overlapping and in partial
    /// blocks, read back as if written one after another, also after the
    /// syncs and a reopen, on both backends.
    #[test]
    fn batches_of_writes_land_as_if_written_in_order(
        batches in prop::collection::vec(
            prop::collection::vec((0u64..3, 0usize..CHUNK, 1usize..(40 * BLOCK), any::<u8>()), 1..12),
            1..4,
        ),
        blocking in any::<bool>(),
    ) {
        use govfs_engine::chunk::BatchWrite;
        let backend = if blocking { BackendChoice::Blocking } else { BackendChoice::Auto };
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path(), backend);
        let mut model: Vec<Vec<u8>> = vec![Vec::new(); 3];
        for batch in batches {
            let datas: Vec<(u64, usize, Vec<u8>)> = batch
                .iter()
                .map(|&(chunk, offset, len, seed)| {
                    let len = len.min(CHUNK - offset);
                    (chunk, offset, pattern(seed, len))
                })
                .collect();
            let writes: Vec<BatchWrite> = datas
                .iter()
                .map(|(chunk, offset, data)| BatchWrite {
                    chunk: *chunk,
                    version: 0,
                    offset: *offset as u64,
                    data,
                })
                .collect();
            for r in s.write_batch(&writes) {
                r.unwrap();
            }
            for (chunk, offset, data) in &datas {
                let m = &mut model[*chunk as usize];
                if m.len() < offset + data.len() {
                    m.resize(offset + data.len(), 0);
                }
                m[*offset..offset + data.len()].copy_from_slice(data);
            }
            // Readable before the sync, as written.
            for (chunk, m) in model.iter().enumerate() {
                if !m.is_empty() {
                    prop_assert_eq!(&s.read(chunk as u64, 0, CHUNK).unwrap(), m);
                }
            }
            for chunk in 0..3 {
                s.sync(chunk).unwrap();
            }
        }
        drop(s);
        let mut s = store(dir.path(), backend);
        for (chunk, m) in model.iter().enumerate() {
            if !m.is_empty() {
                prop_assert_eq!(&s.read(chunk as u64, 0, CHUNK).unwrap(), m);
                prop_assert!(s.scrub(chunk as u64).unwrap().is_empty());
            }
        }
    }
}
