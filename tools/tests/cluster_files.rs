//! File data end to end on real `govfs node` processes (3 nodes, one
//! ministry of 3, chunks of 4 MiB on 3 replicas): writes placed by the
//! ministry and granted by the minister, read back across chunk
//! boundaries by another client; writers of disjoint regions at once; a
//! write outside the lease's region refused; a corrupted replica and a
//! SIGKILLed storage node that reads get around; `govfs put`, `get` and
//! `cat` through the CLI.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use common::{pattern, TestCluster};
use govfs_client::{FileSystem, FsError, FsOptions, OpenMode};
use govfs_core::ids::node_of;
use govfs_core::lease::Region;
use govfs_core::meta::{ChunkPlace, Ino, MetaOp, MetaReply};

const MIB: u64 = 1 << 20;

/// Where chunks `first..first + count` of `ino` are, as the ministry says.
async fn chunks(
    fs: &mut FileSystem,
    ministry: u64,
    ino: Ino,
    first: u64,
    count: u64,
) -> Vec<ChunkPlace> {
    let op = MetaOp::Chunks { ino, first, count };
    match fs.call(ministry, op, "/data").await.expect("chunks") {
        MetaReply::Chunks(list) => list,
        other => panic!("a chunk list, not {other:?}"),
    }
}

/// Flips byte `at` of data block `block` of chunk `index` of `ino` in
/// node `node`'s chunk file, on disk; returns the chunk's id.
fn corrupt(
    cluster: &TestCluster,
    node: u64,
    ino: Ino,
    index: u64,
    block: usize,
    at: u64,
) -> govfs_core::data::ChunkId {
    let chunk = govfs_core::data::ChunkRef { file: ino, index }
        .id()
        .expect("id");
    let path = cluster
        .path()
        .join(format!("n{node}/data/chunks/shard-0"))
        .join(format!("{:016x}.chunk", chunk.0));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("chunk file");
    let offset = govfs_engine::chunk::format::data_offset(64 << 20, block) + at;
    let mut byte = [0u8];
    f.seek(SeekFrom::Start(offset)).expect("seek");
    std::io::Read::read_exact(&mut f, &mut byte).expect("read");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.write_all(&[byte[0] ^ 0x5a]).expect("corrupt");
    f.sync_all().expect("sync");
    chunk
}

async fn fs(cluster: &TestCluster) -> FileSystem {
    FileSystem::new(cluster.client().await, FsOptions::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_written_read_and_survive_bad_replicas() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    cluster.wait_serving(1, Duration::from_secs(30)).await;
    let mut a = fs(&cluster).await;
    a.create("/data", 0o644, true).await.expect("create");

    // 10 MiB + a bit in unaligned writes: three chunks, writes across
    // chunk boundaries.
    let data = pattern((10 * MIB + 12345) as usize, 7);
    let mut f = a.open_file("/data", OpenMode::Write).await.expect("open");
    let mut at = 0usize;
    for (k, step) in [1_000_003usize, 3 << 20, 777, 5 << 20]
        .iter()
        .cycle()
        .enumerate()
    {
        if at >= data.len() {
            break;
        }
        let end = (at + step).min(data.len());
        f.write_at(at as u64, &data[at..end])
            .await
            .unwrap_or_else(|e| panic!("write {k} at {at}: {e}"));
        at = end;
    }
    // Reads through the writer see its writes before the size is reported.
    let back = f.read_at(4 * MIB - 10, 20).await.expect("read");
    assert_eq!(back, data[(4 * MIB - 10) as usize..(4 * MIB + 10) as usize]);
    f.close().await.expect("close");

    // Another client: the final size, and every byte.
    let mut b = fs(&cluster).await;
    let st = b.stat("/data").await.expect("stat");
    assert_eq!(st.size, data.len() as u64, "the size reached the ministry");
    let mut r = b.open_file("/data", OpenMode::Read).await.expect("open");
    let all = r.read_at(0, data.len() as u64 + 100).await.expect("read");
    assert!(all == data, "what was written is read back");
    // The ministry placed the three chunks written, each on three distinct
    // nodes: the first write (chunk 0) had the next four placed ahead with
    // it, which the later writes then found placed.
    let (ministry, attr) = b.locate("/data", true).await.expect("locate");
    let places = chunks(&mut b, ministry, attr.ino, 0, 10).await;
    let indexes: Vec<u64> = places.iter().map(|p| p.index).collect();
    assert_eq!(indexes, (0..5).collect::<Vec<u64>>());
    for p in &places {
        let mut r = p.replicas.clone();
        r.sort_unstable();
        assert_eq!(r, vec![1, 2, 3]);
    }

    // Flip a byte of chunk 1 on its first replica: the read finds it bad
    // there and reads another replica.
    let first = places[1].replicas[0];
    let chunk = corrupt(&cluster, first, attr.ino, 1, 0, 5);
    let mut r = b.open_file("/data", OpenMode::Read).await.expect("open");
    let got = r
        .read_at(4 * MIB, 4096)
        .await
        .expect("read around the bad replica");
    assert_eq!(got, data[(4 * MIB) as usize..(4 * MIB + 4096) as usize]);
    // The read repaired the bad copy from a good one, at a new version.
    let now = chunks(&mut b, ministry, attr.ino, 1, 1).await;
    assert!(
        now[0].version > places[1].version,
        "repaired at a new version"
    );
    let direct = b
        .session()
        .client()
        .read_chunk(first, chunk, now[0].version, 0, 4096)
        .await
        .expect("the repaired replica serves verified bytes");
    assert_eq!(direct, data[(4 * MIB) as usize..(4 * MIB + 4096) as usize]);

    // Writers of disjoint regions at once, each under its own region lease.
    b.create("/rows", 0o644, true).await.expect("create rows");
    let client = cluster.client().await;
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let mut fs = FileSystem::new(client.clone(), FsOptions::default());
        tasks.push(tokio::spawn(async move {
            let region = Region::new(w * MIB, (w + 1) * MIB).expect("region");
            let mut f = fs
                .open_file_region("/rows", region)
                .await
                .expect("open row");
            let row = pattern(MIB as usize, 100 + w);
            f.write_at(w * MIB, &row).await.expect("write row");
            // Outside the row: refused, nothing written.
            let e = f.write_at((w + 1) * MIB, b"no").await.unwrap_err();
            assert!(
                matches!(&e, FsError::Client(_)),
                "a write outside the region is refused: {e}"
            );
            f.close().await.expect("close");
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let mut r = b.open_file("/rows", OpenMode::Read).await.expect("open");
    assert_eq!(r.size(), 4 * MIB);
    for w in 0..4u64 {
        let got = r.read_at(w * MIB, MIB).await.expect("read row");
        assert!(got == pattern(MIB as usize, 100 + w), "row {w}");
    }

    // A read-only handle cannot write.
    let e = r.write_at(0, b"x").await.unwrap_err();
    assert!(matches!(e, FsError::NotOpenForWriting { .. }));
    assert_eq!(e.errno(), 9);

    // SIGKILL a storage node: reads go to the other replicas; a write to
    // a chunk it held replaces it (the ministry picks a new replica set, the
    // survivors' data is copied over) and resends, losing nothing; the
    // chunks it still held are re-replicated without it.
    let mut w = fs(&cluster).await;
    let mut f = w.open_file("/data", OpenMode::Write).await.expect("open");
    // Not the minister: its lease must outlive the kill.
    let (minister, _) = cluster.ministry(1).await.expect("ministry 1");
    let victim = (1..=3).find(|n| *n != node_of(minister)).expect("a clerk");
    let alive: Vec<u64> = (1..=3).filter(|n| *n != victim).collect();
    cluster.kill(victim);
    let patch = pattern(100_000, 99);
    f.write_at(MIB, &patch)
        .await
        .expect("a write with a storage node dead");
    let mut want = data.clone();
    want[MIB as usize..MIB as usize + patch.len()].copy_from_slice(&patch);
    // Every placed chunk: the three with data and the two placed ahead.
    for index in 0..places.len() as u64 {
        f.rereplicate(index, &[victim])
            .await
            .expect("re-replicate without the dead node");
    }
    f.close().await.expect("close");
    let mut c = fs(&cluster).await;
    let mut r = c.open_file("/data", OpenMode::Read).await.expect("open");
    let all = r
        .read_at(0, data.len() as u64)
        .await
        .expect("read without the dead node");
    assert!(all == want, "nothing acknowledged was lost");
    let after = chunks(&mut c, ministry, attr.ino, 0, 10).await;
    for p in &after {
        assert!(
            !p.replicas.contains(&victim),
            "chunk {} left node {victim}: {:?}",
            p.index,
            p.replicas
        );
        // Only two nodes are left alive: the chunk is on both.
        let mut r = p.replicas.clone();
        r.sort_unstable();
        assert_eq!(r, alive);
        let cid = govfs_core::data::ChunkRef {
            file: attr.ino,
            index: p.index,
        }
        .id()
        .expect("id");
        if p.index >= 3 {
            continue; // placed ahead, never written: no data anywhere
        }
        for &node in &p.replicas {
            c.session()
                .client()
                .read_chunk(node, cid, p.version, 0, 4096)
                .await
                .expect("every replica has the data at the new version");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_and_cat_through_the_cli() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    cluster.wait_serving(1, Duration::from_secs(30)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("in.bin");
    let data = pattern((9 * MIB + 3) as usize, 3);
    std::fs::write(&src, &data).expect("write local");
    let local = src.to_str().expect("utf-8 path");
    cluster.cli(&["put", "-q", local, "/in.bin"]);
    let out = dir.path().join("out.bin");
    cluster.cli(&["get", "-q", "/in.bin", out.to_str().expect("utf-8")]);
    assert!(
        std::fs::read(&out).expect("read local") == data,
        "get returns what put wrote"
    );
    // A storage node dies: `govfs rereplicate` moves the file's chunks
    // off it (copying from the survivors), and the file reads back whole.
    let (minister, _) = cluster.ministry(1).await.expect("ministry 1");
    let victim = (1..=3).find(|n| *n != node_of(minister)).expect("a clerk");
    cluster.kill(victim);
    let said = cluster.cli(&["rereplicate", "/in.bin", "--drop", &victim.to_string()]);
    let said = String::from_utf8_lossy(&said);
    assert!(said.contains("3 of 3 chunks moved"), "{said}");
    cluster.cli(&["get", "-q", "/in.bin", out.to_str().expect("utf-8")]);
    assert!(
        std::fs::read(&out).expect("read local") == data,
        "the file is whole after re-replication"
    );
    // put over an existing file replaces it.
    let small = dir.path().join("small.txt");
    std::fs::write(&small, b"hello, govfs\n").expect("write");
    cluster.cli(&["put", "-q", small.to_str().expect("utf-8"), "/in.bin"]);
    let text = cluster.cli(&["cat", "/in.bin"]);
    assert_eq!(text, b"hello, govfs\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_writes_complete_with_lamport_acks_and_a_low_watermark() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    cluster.wait_serving(1, Duration::from_secs(30)).await;
    let mut a = fs(&cluster).await;
    a.create("/log", 0o644, true).await.expect("create");
    let mut f = a.open_file("/log", OpenMode::Write).await.expect("open");
    const BLOCK: usize = 64 << 10;
    // 40 writes over 8 slots: each slot is written five times; a write to
    // a slot whose earlier write is in flight waits for it, so the last
    // write of each slot wins.
    let mut seen_below = 0;
    for id in 1..=40u64 {
        let slot = (id - 1) % 8;
        let data = pattern(BLOCK, id);
        f.write_async(id * 10, slot * BLOCK as u64, data)
            .await
            .expect("sent");
        if let Some(low) = f.low_watermark() {
            assert!(low <= id * 10, "the watermark never passes what was issued");
            assert!(low >= seen_below, "the watermark never goes back");
            seen_below = low;
        }
    }
    // Ids must grow.
    assert!(f.write_async(5, 0, vec![1]).await.is_err());
    let mut stamps = Vec::new();
    let mut done = 0;
    for c in f.completions() {
        stamps.push(c.result.expect("durable").stamp);
        done += 1;
    }
    while let Some(c) = f.next_completion().await {
        let ack = c.result.expect("durable");
        assert!(ack.earliest_uncommitted > 0);
        stamps.push(ack.stamp);
        done += 1;
    }
    assert_eq!(done, 40, "every write completed once");
    assert!(stamps.iter().all(|s| *s > 0));
    assert_eq!(f.low_watermark(), Some(400), "all durable");
    assert_eq!(f.async_in_flight(), 0);
    f.close().await.expect("close");

    let mut r = fs(&cluster).await;
    let mut rf = r.open_file("/log", OpenMode::Read).await.expect("open");
    assert_eq!(rf.size(), 8 * BLOCK as u64);
    for slot in 0..8u64 {
        let got = rf
            .read_at(slot * BLOCK as u64, BLOCK as u64)
            .await
            .expect("read");
        assert!(
            got == pattern(BLOCK, 32 + slot + 1),
            "slot {slot} holds its last write"
        );
    }
}

/// Every byte of `path` as another client reads it.
async fn read_all(cluster: &TestCluster, path: &str) -> Vec<u8> {
    let mut c = fs(cluster).await;
    let size = c.stat(path).await.expect("stat").size;
    let mut f = c.open_file(path, OpenMode::Read).await.expect("open");
    f.read_at(0, size + 4096).await.expect("read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_file_grown_again_reads_zeros_not_its_old_bytes() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    cluster.wait_serving(1, Duration::from_secs(30)).await;
    let mut a = fs(&cluster).await;
    a.create("/t", 0o644, true).await.expect("create");
    // Three chunks: 0 and 1 full, 2 with 1 MiB.
    let data = pattern((9 * MIB) as usize, 11);
    let mut f = a.open_file("/t", OpenMode::Write).await.expect("open");
    f.write_at(0, &data).await.expect("write");
    f.close().await.expect("close");

    // Nobody without write permission cuts anything.
    let mut other = FileSystem::new(
        cluster.client().await,
        FsOptions {
            creds: govfs_core::meta::Credentials::user(4242, 4242),
            ..FsOptions::default()
        },
    );
    match other.truncate("/t", 0).await {
        Err(FsError::Errno { errno, .. }) => assert_eq!(errno, govfs_core::meta::Errno::EACCES),
        other => panic!("a truncate without write permission: {other:?}"),
    }
    assert!(read_all(&cluster, "/t").await == data, "nothing was cut");

    // Cut inside chunk 1: chunk 2 goes, chunk 1 keeps its head.
    let keep = 5 * MIB + 100;
    let attr = a.truncate("/t", keep).await.expect("truncate");
    assert_eq!(attr.size, keep);
    assert_eq!(
        a.stat("/t").await.expect("stat").size,
        keep,
        "this handle sees it"
    );
    assert!(read_all(&cluster, "/t").await == data[..keep as usize]);

    // Grown again, by a write in what was chunk 2 and by a larger size:
    // the bytes between read as zeros, on every replica.
    let mut f = a.open_file("/t", OpenMode::Write).await.expect("open");
    f.write_at(8 * MIB + 1000, b"new bytes!")
        .await
        .expect("write");
    f.close().await.expect("close");
    a.truncate("/t", 12 * MIB).await.expect("grow");
    let mut model = data[..keep as usize].to_vec();
    model.resize((8 * MIB + 1000) as usize, 0);
    model.extend_from_slice(b"new bytes!");
    model.resize((12 * MIB) as usize, 0);
    let (ministry, at) = a.locate("/t", true).await.expect("locate");
    for replica in 0..3 {
        // Each replica of chunk 1 on its own: none kept the old bytes.
        let place = &chunks(&mut a, ministry, at.ino, 1, 1).await[0];
        let node = place.replicas[replica];
        let chunk = govfs_core::data::ChunkRef {
            file: at.ino,
            index: 1,
        }
        .id()
        .expect("id");
        let client = cluster.client().await;
        let got = client
            .read_chunk(node, chunk, place.version, 0, (4 * MIB) as u32)
            .await
            .expect("read chunk 1");
        let want = &model[(4 * MIB) as usize..(8 * MIB) as usize];
        assert!(
            got.iter()
                .chain(std::iter::repeat(&0))
                .take(want.len())
                .eq(want.iter()),
            "replica on node {node} of chunk 1"
        );
    }
    assert!(read_all(&cluster, "/t").await == model);

    // To nothing, then a write past a hole.
    a.truncate("/t", 0).await.expect("truncate to 0");
    assert!(read_all(&cluster, "/t").await.is_empty());
    let mut f = a.open_file("/t", OpenMode::Write).await.expect("open");
    f.write_at(MIB, b"x").await.expect("write");
    f.close().await.expect("close");
    let mut model = vec![0u8; MIB as usize];
    model.push(b'x');
    assert!(read_all(&cluster, "/t").await == model);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writers_size_reaches_readers_with_its_lease_renewals() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    cluster.wait_serving(1, Duration::from_secs(30)).await;
    let mut a = fs(&cluster).await;
    a.create("/grow", 0o644, true).await.expect("create");
    let mut f = a.open_file("/grow", OpenMode::Write).await.expect("open");
    let end = MIB + 7;
    f.write_at(0, &pattern(end as usize, 3))
        .await
        .expect("write");
    // No flush, no close: the next renewals of the write lease carry it.
    let mut b = fs(&cluster).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let size = b.stat("/grow").await.expect("stat").size;
        if size == end {
            break;
        }
        assert_eq!(size, 0, "the size is none or all of the write");
        assert!(
            std::time::Instant::now() < deadline,
            "the size did not arrive with the lease renewals"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A truncate is not undone by a renewal's report of the old size.
    f.truncate(10).await.expect("truncate");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(b.stat("/grow").await.expect("stat").size, 10);
    f.close().await.expect("close");
    assert_eq!(b.stat("/grow").await.expect("stat").size, 10);
}

/// Reads `len` bytes at a time from `at` to the end; every one checked
/// against `data`.
async fn read_on(f: &mut govfs_client::File, data: &[u8], mut at: usize, len: usize) {
    while at < data.len() {
        let got = f.read_at(at as u64, len as u64).await.expect("read");
        let end = (at + len).min(data.len());
        assert!(got == data[at..end], "bytes {at}..{end}");
        at = end;
    }
    let past = f.read_at(at as u64, len as u64).await.expect("read");
    assert!(past.is_empty(), "nothing past the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_reads_ahead_return_exactly_what_plain_reads_do() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    cluster.wait_serving(1, Duration::from_secs(30)).await;
    let mut a = fs(&cluster).await;
    a.create("/ra", 0o644, true).await.expect("create");
    let mut data = pattern((10 * MIB + 777) as usize, 11);
    let mut w = a.open_file("/ra", OpenMode::Write).await.expect("open");
    w.write_at(0, &data).await.expect("write");
    w.close().await.expect("close");

    // Sequential 256 KiB reads across three chunks and the short end,
    // with readahead (the default) and without.
    let mut b = fs(&cluster).await;
    let mut r = b.open_file("/ra", OpenMode::Read).await.expect("open");
    read_on(&mut r, &data, 0, 256 << 10).await;
    let hits = r.read_ahead_hits();
    assert!(hits >= 30, "most of 41 reads came from readahead: {hits}");
    let mut plain = b.open_file("/ra", OpenMode::Read).await.expect("open");
    plain.set_readahead(0);
    read_on(&mut plain, &data, 0, 256 << 10).await;
    assert_eq!(plain.read_ahead_hits(), 0);
    // A jump drops what was read ahead; reading on from there is right.
    let mut r = b.open_file("/ra", OpenMode::Read).await.expect("open");
    r.read_at(0, MIB).await.expect("read");
    read_on(&mut r, &data, (7 * MIB + 3) as usize, MIB as usize).await;

    // A handle that writes drops its reads ahead: reading on, it sees its
    // own new bytes, not the old ones fetched before the write.
    let mut w = a.open_file("/ra", OpenMode::Write).await.expect("open");
    for k in 0..4u64 {
        let got = w.read_at(k * MIB, MIB).await.expect("read");
        assert!(got == data[(k * MIB) as usize..((k + 1) * MIB) as usize]);
    }
    let fresh = pattern(MIB as usize, 12);
    w.write_at(5 * MIB, &fresh).await.expect("write");
    data[(5 * MIB) as usize..(6 * MIB) as usize].copy_from_slice(&fresh);
    read_on(&mut w, &data, (4 * MIB) as usize, MIB as usize).await;
    w.close().await.expect("close");

    // A corrupt block on the replica a read ahead goes to: the reader gets
    // the right bytes from another replica and the chunk is repaired.
    let (ministry, attr) = b.locate("/ra", true).await.expect("locate");
    let places = chunks(&mut b, ministry, attr.ino, 1, 1).await;
    // Reads of 1 MiB ahead go to replica (offset / 1 MiB) mod 3: the one
    // at 5 MiB (block 256 of chunk 1) to replica 2.
    corrupt(&cluster, places[0].replicas[2], attr.ino, 1, 256, 9);
    let mut r = b.open_file("/ra", OpenMode::Read).await.expect("open");
    read_on(&mut r, &data, 0, MIB as usize).await;
    let now = chunks(&mut b, ministry, attr.ino, 1, 1).await;
    assert!(
        now[0].version > places[0].version,
        "the corrupt replica was found by a read ahead and repaired"
    );
}
