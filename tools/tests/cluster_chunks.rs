//! The storage service on real `govfs node` processes (3 nodes): writes to
//! every replica at once with a signed grant, verified reads, refusals of
//! forged, expired and out-of-range grants, a corrupted block found on read
//! (the other replicas still serve), Lamport stamps that keep growing
//! across a SIGKILL and restart of a storage node, and every node's free
//! space reaching the cluster map that placement weighs nodes by; chunks
//! deleted only under a delete grant for all of the chunk; Lamport times
//! carried from node to node on their own messages.
//!
//! The minister does not issue grants yet: the test signs them with the
//! cluster's grant key, as the minister will.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::TestCluster;
use govfs_client::{Client, ClientError};
use govfs_core::data::{
    ChunkId, ChunkRef, ChunkRefusal, ChunkReply, ChunkRequest, GrantKey, SignedGrant, WriteGrant,
    DELETE_LEASE,
};
use govfs_core::meta::types::Ino;
use govfs_core::node::{ClientMsg, ServerMsg};
use govfs_engine::chunk::format::data_offset;

/// The chunk size `[storage]` uses by default.
const STORE_CHUNK: usize = 64 << 20;

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64
}

fn grant(file: u64, index: u64, replicas: Vec<u64>, range: (u64, u64), ttl_s: i64) -> WriteGrant {
    let chunk = ChunkRef {
        file: Ino((1 << 40) + file),
        index,
    };
    WriteGrant {
        ministry: 1,
        term: 1,
        lease: govfs_core::lease::LeaseId(7),
        session: 9,
        chunk,
        chunk_id: chunk.id().expect("chunk id"),
        version: 1,
        replicas,
        range,
        not_after_unix_us: (unix_us() as i64 + ttl_s * 1_000_000) as u64,
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn refusal(e: ClientError) -> ChunkRefusal {
    match e {
        ClientError::Chunk { refusal, .. } => refusal,
        other => panic!("expected a chunk refusal, got {other}"),
    }
}

async fn write_all(client: &Client, g: &SignedGrant, offset: u64, data: &[u8], id: u64) -> u64 {
    let acks = client
        .write_chunk(g, offset, data, id)
        .await
        .expect("written on every replica");
    assert_eq!(acks.len(), g.grant.replicas.len());
    for a in &acks {
        assert_eq!(a.ack.write, id);
        assert!(a.ack.stamp > 0);
        assert!(
            a.ack.earliest_uncommitted > a.ack.stamp,
            "nothing pending after the ack"
        );
    }
    acks.iter().map(|a| a.ack.stamp).max().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_are_written_to_every_replica_and_checked() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    let client = cluster.client().await;
    let key = GrantKey::derive(cluster.key.secret()).expect("grant key");
    let range = (0, 4 << 20);

    // One round trip to all three replicas; each answers durable.
    let g = key.sign(grant(1, 0, vec![1, 2, 3], range, 60));
    let data = pattern(1 << 20, 1);
    let s1 = write_all(&client, &g, 0, &data, 1).await;
    for node in 1..=3 {
        let got = client
            .read_chunk(node, g.grant.chunk_id, 1, 0, 1 << 20)
            .await
            .expect("read");
        assert!(got == data, "replica {node} holds what was written");
    }
    // An unaligned overwrite keeps the bytes around it.
    let patch = pattern(5000, 9);
    let s2 = write_all(&client, &g, 4096 + 100, &patch, 2).await;
    assert!(s2 > s1, "Lamport stamps grow: {s1} then {s2}");
    let mut want = data.clone();
    want[4196..4196 + 5000].copy_from_slice(&patch);
    let got = client
        .read_chunk(2, g.grant.chunk_id, 1, 0, 1 << 20)
        .await
        .expect("read");
    assert!(got == want, "the overwrite landed exactly");
    assert!(
        client.lamport() >= s2,
        "the client's clock follows the nodes'"
    );

    // Forged: any change to a signed grant breaks its tag.
    let mut forged = g.clone();
    forged.grant.range = (0, 64 << 20);
    let e = client
        .write_chunk(&forged, 8 << 20, b"x", 3)
        .await
        .unwrap_err();
    assert!(matches!(refusal(e), ChunkRefusal::Grant(m) if m.contains("tag")));
    // Signed with another key.
    let other = GrantKey::derive(&[7u8; 32]).expect("key");
    let e = client
        .write_chunk(
            &other.sign(grant(1, 0, vec![1, 2, 3], range, 60)),
            0,
            b"y",
            4,
        )
        .await
        .unwrap_err();
    assert!(matches!(refusal(e), ChunkRefusal::Grant(m) if m.contains("tag")));
    // Expired (beyond the 2 s skew allowed).
    let old = key.sign(grant(1, 0, vec![1, 2, 3], range, -10));
    let e = client.write_chunk(&old, 0, b"z", 5).await.unwrap_err();
    assert!(matches!(refusal(e), ChunkRefusal::Grant(m) if m.contains("expired")));
    // Outside the granted range.
    let e = client
        .write_chunk(&g, range.1 - 1, b"ab", 6)
        .await
        .unwrap_err();
    assert!(matches!(refusal(e), ChunkRefusal::Grant(m) if m.contains("outside")));
    // None of that changed a byte.
    for node in 1..=3 {
        let got = client
            .read_chunk(node, g.grant.chunk_id, 1, 0, 1 << 20)
            .await
            .expect("read");
        assert!(got == want, "refused writes changed nothing on {node}");
    }
    // A chunk nobody wrote, and a read for a newer version than stored.
    let unknown = grant(1, 5, vec![1], range, 60).chunk_id;
    let e = client.read_chunk(1, unknown, 1, 0, 10).await.unwrap_err();
    assert_eq!(refusal(e), ChunkRefusal::NoSuchChunk(unknown));
    let e = client
        .read_chunk(1, g.grant.chunk_id, 2, 0, 10)
        .await
        .unwrap_err();
    assert!(matches!(
        refusal(e),
        ChunkRefusal::Version {
            have: 1,
            want: 2,
            ..
        }
    ));

    // Flip a byte of the first block on node 2's disk: its read fails the
    // checksum, the other replicas still serve the right bytes.
    let file = cluster
        .path()
        .join("n2/data/chunks/shard-0")
        .join(format!("{:016x}.chunk", g.grant.chunk_id.0));
    {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)
            .expect("chunk file");
        let at = data_offset(STORE_CHUNK, 0) + 10;
        let mut b = [0u8; 1];
        f.seek(SeekFrom::Start(at)).expect("seek");
        f.read_exact(&mut b).expect("read byte");
        b[0] ^= 0xff;
        f.seek(SeekFrom::Start(at)).expect("seek");
        f.write_all(&b).expect("corrupt");
        f.sync_all().expect("sync");
    }
    // The node may have the block cached in no page cache (O_DIRECT), so
    // the next read sees the flipped byte.
    let e = client
        .read_chunk(2, g.grant.chunk_id, 1, 0, 4096)
        .await
        .unwrap_err();
    assert!(matches!(refusal(e), ChunkRefusal::Corrupt { block: 0, .. }));
    for node in [1, 3] {
        let got = client
            .read_chunk(node, g.grant.chunk_id, 1, 0, 4096)
            .await
            .expect("a good replica");
        assert!(got == want[..4096]);
    }

    // SIGKILL a storage node and restart it: the data is there, and its
    // Lamport stamps never go back (the floor on disk).
    cluster.kill(3);
    cluster.start(3);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let got = loop {
        let client = cluster.client().await;
        match client.read_chunk(3, g.grant.chunk_id, 1, 0, 1 << 20).await {
            Ok(got) => break got,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("node 3 back: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert!(got == want, "acknowledged writes survive SIGKILL");
    let g3 = key.sign(grant(2, 0, vec![3], range, 60));
    let s3 = write_all(&client, &g3, 0, b"after the restart", 7).await;
    assert!(
        s3 > s2,
        "stamps after a restart ({s3}) exceed those before ({s2})"
    );
}

/// The file system's size and what it has free for us under `dir`.
fn disk(dir: &std::path::Path) -> (u64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("path");
    // SAFETY: statvfs fills the struct we own from a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::statvfs(path.as_ptr(), &mut st) },
        0,
        "statvfs"
    );
    let unit = st.f_frsize as u64;
    (st.f_blocks as u64 * unit, st.f_bavail as u64 * unit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_reports_its_free_space_into_the_map() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    let client = cluster.client().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let storage = loop {
        let map = client.map().await.expect("map");
        if map.storage.len() == 3 {
            break map.storage;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "free space of every node in the map within 30 s: {:?}",
            map.storage
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // What the nodes measured, less their reserve (2% of the disk, at least
    // two chunks), and written only when it moved by 1/32 of the disk: all
    // three share this disk, so each figure is near what we see.
    let (total, avail) = disk(&cluster.path());
    let reserve = (total / 50).max(2 * STORE_CHUNK as u64);
    let expected = avail.saturating_sub(reserve);
    for (node, free) in &storage {
        assert!(
            free.abs_diff(expected) <= total / 16,
            "node {node}: {free} bytes free in the map, {expected} measured here"
        );
    }
    let out = String::from_utf8(cluster.cli(&["status"])).expect("utf-8");
    assert!(
        out.contains("storage free for chunks (placement weights): node 1 "),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_delete_grant_for_the_whole_chunk_deletes_it() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    let client = cluster.client().await;
    let key = GrantKey::derive(cluster.key.secret()).expect("grant key");
    let whole = (0, 4 << 20);
    let write = key.sign(grant(3, 0, vec![1, 2], whole, 60));
    let data = pattern(1 << 20, 3);
    write_all(&client, &write, 0, &data, 1).await;
    let delete_grant = |range| {
        let mut g = grant(3, 0, vec![1, 2], range, 60);
        g.lease = DELETE_LEASE;
        g.session = 0;
        key.sign(g)
    };

    // A write grant does not delete, even for the whole chunk.
    let e = client.delete_chunk(1, &write).await.unwrap_err();
    assert!(
        matches!(refusal(e), ChunkRefusal::Grant(m) if m.contains("delete grant")),
        "a write grant deletes nothing"
    );
    // A delete grant does not write.
    let delete = delete_grant(whole);
    let e = client.write_chunk(&delete, 0, b"x", 2).await.unwrap_err();
    assert!(matches!(refusal(e), ChunkRefusal::Grant(m) if m.contains("does not allow writing")));
    // A delete grant for part of the chunk, one that expired, or one for
    // another node deletes nothing.
    let e = client
        .delete_chunk(1, &delete_grant((4096, 4 << 20)))
        .await
        .unwrap_err();
    assert!(matches!(refusal(e), ChunkRefusal::Grant(_)));
    let mut old = grant(3, 0, vec![1, 2], whole, -10);
    old.lease = DELETE_LEASE;
    let e = client.delete_chunk(1, &key.sign(old)).await.unwrap_err();
    assert!(matches!(refusal(e), ChunkRefusal::Grant(m) if m.contains("expired")));
    let e = client.delete_chunk(3, &delete).await.unwrap_err();
    assert!(matches!(refusal(e), ChunkRefusal::Grant(_)));
    for node in [1, 2] {
        let got = client
            .read_chunk(node, write.grant.chunk_id, 1, 0, 1 << 20)
            .await
            .expect("still there");
        assert!(got == data, "node {node} kept the chunk");
    }

    // The real thing deletes it, and again is no error (a resend).
    client.delete_chunk(1, &delete).await.expect("deleted");
    client
        .delete_chunk(1, &delete)
        .await
        .expect("deleted again");
    let e = client
        .read_chunk(1, write.grant.chunk_id, 1, 0, 4096)
        .await
        .unwrap_err();
    assert!(matches!(refusal(e), ChunkRefusal::NoSuchChunk(_)));
    let got = client
        .read_chunk(2, write.grant.chunk_id, 1, 0, 1 << 20)
        .await
        .expect("the other replica is untouched");
    assert!(got == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lamport_times_travel_between_nodes_on_their_messages() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    let client = cluster.client().await;
    // A client far ahead in time talks to node 1 only.
    let far = 1u64 << 40;
    let probe = ClientMsg::Chunk(ChunkRequest::Read {
        chunk: ChunkId(12345),
        version: 0,
        offset: 0,
        len: 1,
        lamport: far,
    });
    let addr = client.node_addr(1).expect("node 1");
    let answer = client.call(addr, &probe).await.expect("answered");
    assert!(matches!(
        answer,
        ServerMsg::Chunk(ChunkReply::Refused(ChunkRefusal::NoSuchChunk(_)))
    ));
    // Nodes 2 and 3 never heard from that client, only from node 1 (Raft,
    // reports, lock batches): a fresh client's write there is still
    // stamped after it.
    let key = GrantKey::derive(cluster.key.secret()).expect("grant key");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for node in [2, 3] {
        let g = key.sign(grant(4, node, vec![node], (0, 4096), 60));
        let mut id = 1;
        loop {
            let fresh = cluster.client().await;
            let acks = fresh
                .write_chunk(&g, 0, &pattern(4096, 4), id)
                .await
                .expect("written");
            if acks[0].ack.stamp > far {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {node} stamps {} after 10 s, not past {far}",
                acks[0].ack.stamp
            );
            id += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
