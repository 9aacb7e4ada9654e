//! Background re-replication on real `govfs node` processes: 4 nodes, one
//! ministry of 3, files of 1 MiB chunks on 3 replicas. A storage node is
//! SIGKILLed; the president marks it down in the cluster map, new chunks
//! are placed without it, and after the repair delay the minister's agent
//! moves every chunk it held to a live node, with nobody asking. The data
//! reads back whole, from every replica; when the node comes back, the
//! copies it still holds are deleted. An unlinked file's chunks are
//! deleted from every replica's disk by the same agent.

mod common;

use std::time::{Duration, Instant};

use common::{pattern, TestCluster};
use govfs_client::{FileSystem, FsOptions, OpenMode};
use govfs_core::data::ChunkRef;
use govfs_core::ids::node_of;
use govfs_core::meta::{Attr, ChunkPlace, Ino, Layout, MetaOp, MetaReply};

const MIB: u64 = 1 << 20;
const CHUNKS: u64 = 8;

async fn chunks(fs: &mut FileSystem, ino: Ino, count: u64) -> Vec<ChunkPlace> {
    let op = MetaOp::Chunks {
        ino,
        first: 0,
        count,
    };
    match fs.call(1, op, "chunks").await.expect("chunks") {
        MetaReply::Chunks(list) => list,
        other => panic!("a chunk list, not {other:?}"),
    }
}

/// Creates `path` with 1 MiB chunks on 3 replicas and writes `chunks` of
/// them (a pattern from `seed`); its attributes and the data.
async fn file_with_data(
    fs: &mut FileSystem,
    path: &str,
    chunks: u64,
    seed: u64,
) -> (Attr, Vec<u8>) {
    let layout = Layout {
        chunk_size: MIB as u32,
        stripe_count: 1,
        replicas: 3,
    };
    let (attr, _) = fs
        .create_with_layout(path, 0o644, true, Some(layout))
        .await
        .expect("create");
    let data = pattern((chunks * MIB) as usize, seed);
    let mut f = fs.open_file(path, OpenMode::Write).await.expect("open");
    f.write_at(0, &data).await.expect("write");
    f.close().await.expect("close");
    (attr, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_on_a_dead_node_are_re_replicated_in_the_background() {
    let cluster = TestCluster::up_args(4, 1, "meta", &["--repair-delay", "1"]);
    cluster.wait_serving(1, Duration::from_secs(30)).await;
    let client = cluster.client().await;
    let mut fs = FileSystem::new(client.clone(), FsOptions::default());
    let (attr, data) = file_with_data(&mut fs, "/data", CHUNKS, 7).await;
    let before = chunks(&mut fs, attr.ino, CHUNKS).await;
    assert_eq!(before.len() as u64, CHUNKS);

    // The victim holds replicas, and is neither the president nor the
    // minister (their failover is tested elsewhere; here it would only
    // add an election before the agent can run).
    let (minister, _) = cluster.ministry(1).await.expect("ministry 1");
    let president = cluster.president().await.expect("a president");
    let victim = (1..=4)
        .filter(|n| *n != node_of(minister) && *n != president)
        .max_by_key(|n| before.iter().filter(|c| c.replicas.contains(n)).count())
        .expect("a candidate");
    let held: Vec<u64> = before
        .iter()
        .filter(|c| c.replicas.contains(&victim))
        .map(|c| c.index)
        .collect();
    assert!(!held.is_empty(), "node {victim} holds no chunk: {before:?}");
    cluster.kill(victim);

    // The president marks it down; new chunks are placed without it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let map = client.map().await.expect("map");
        if map.down.contains(&victim) {
            break;
        }
        assert!(Instant::now() < deadline, "node {victim} never marked down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (fresh, _) = file_with_data(&mut fs, "/fresh", 4, 8).await;
    for c in chunks(&mut fs, fresh.ino, 4).await {
        assert!(
            !c.replicas.contains(&victim),
            "placed on a down node: {c:?}"
        );
        assert_eq!(c.replicas.len(), 3, "three live nodes remain: {c:?}");
    }

    // Nobody asks: the agent moves every chunk the victim held, and logs
    // its round once the copies are in.
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let now = chunks(&mut fs, attr.ino, CHUNKS).await;
        let moved = now
            .iter()
            .all(|c| !c.replicas.contains(&victim) && c.replicas.len() == 3);
        if moved
            && cluster
                .log(node_of(minister))
                .contains("re-replication round")
        {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "not re-replicated within 60 s: {now:?}\nminister's log:\n{}",
            cluster.log(node_of(minister))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (old, new) in before.iter().zip(&after) {
        if held.contains(&old.index) {
            assert!(new.version > old.version, "a moved chunk has a new version");
        } else {
            assert_eq!(old, new, "chunks off the victim stay as they were");
        }
    }

    // Every replica of every chunk holds its data at its version.
    for c in &after {
        let id = ChunkRef {
            file: attr.ino,
            index: c.index,
        }
        .id()
        .expect("id");
        let at = (c.index * MIB) as usize;
        for &node in &c.replicas {
            let got = client
                .read_chunk(node, id, c.version, 0, MIB as u32)
                .await
                .unwrap_or_else(|e| panic!("chunk {} on node {node}: {e}", c.index));
            assert!(
                got == data[at..at + MIB as usize],
                "chunk {} on node {node} holds its data",
                c.index
            );
        }
    }
    let mut r = fs.open_file("/data", OpenMode::Read).await.expect("open");
    let all = r.read_at(0, CHUNKS * MIB).await.expect("read");
    assert!(all == data, "the file reads back whole");

    // The victim comes back with its old copies: the agent deletes them.
    let victim_dir = cluster.path().join(format!("n{victim}"));
    let ids: Vec<_> = held
        .iter()
        .map(|index| {
            ChunkRef {
                file: attr.ino,
                index: *index,
            }
            .id()
            .expect("id")
        })
        .collect();
    let on_victim = |ids: &[govfs_core::data::ChunkId]| -> usize {
        ids.iter()
            .map(|id| chunk_files(&victim_dir, *id).len())
            .sum()
    };
    assert_eq!(on_victim(&ids), held.len(), "the old copies are there");
    cluster.start(victim);
    let deadline = Instant::now() + Duration::from_secs(60);
    while on_victim(&ids) > 0 {
        assert!(
            Instant::now() < deadline,
            "old copies still on node {victim} after 60 s\nminister's log:\n{}",
            cluster.log(node_of(minister))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all = r.read_at(0, CHUNKS * MIB).await.expect("read");
    assert!(all == data, "and the file still reads back whole");
}

/// Every file under `dir` named like chunk `id` (one per replica).
fn chunk_files(dir: &std::path::Path, id: govfs_core::data::ChunkId) -> Vec<std::path::PathBuf> {
    let name = format!("{:016x}.chunk", id.0);
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                todo.push(path);
            } else if e.file_name().to_string_lossy() == name {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlinked_files_chunks_are_deleted_on_every_replica() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    cluster.wait_serving(1, Duration::from_secs(30)).await;
    let client = cluster.client().await;
    let mut fs = FileSystem::new(client.clone(), FsOptions::default());
    let mut ids = Vec::new();
    for (name, chunks) in [("/gone", 2u64), ("/kept", 1)] {
        let (attr, _) = file_with_data(&mut fs, name, chunks, chunks).await;
        let list: Vec<_> = (0..chunks)
            .map(|index| {
                ChunkRef {
                    file: attr.ino,
                    index,
                }
                .id()
                .expect("id")
            })
            .collect();
        ids.push((attr.ino, list));
    }
    let (gone, gone_ids) = ids[0].clone();
    let kept_ids = ids[1].1.clone();
    for id in gone_ids.iter().chain(&kept_ids) {
        assert_eq!(chunk_files(&cluster.path(), *id).len(), 3, "three replicas");
    }
    // The minister signs delete grants for garbage only.
    let (minister, _) = cluster.ministry(1).await.expect("ministry 1");
    let addr = client
        .node_addr(node_of(minister))
        .expect("minister's address");
    let e = client
        .delete_grants(addr, 1, gone, vec![0], None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no chunks to delete"), "{e}");

    fs.unlink("/gone").await.expect("unlink");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: usize = gone_ids
            .iter()
            .map(|id| chunk_files(&cluster.path(), *id).len())
            .sum();
        let op = MetaOp::Garbage {
            from: None,
            limit: 10,
        };
        let listed = match fs.call(1, op, "garbage").await.expect("garbage") {
            MetaReply::Garbage(page) => page.files.len(),
            other => panic!("a garbage page, not {other:?}"),
        };
        if left == 0 && listed == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} chunk files and {listed} listed files left after 30 s\nminister's log:\n{}",
            cluster.log(node_of(minister))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &kept_ids {
        assert_eq!(
            chunk_files(&cluster.path(), *id).len(),
            3,
            "a live file keeps its chunks"
        );
    }
    let mut r = fs.open_file("/kept", OpenMode::Read).await.expect("open");
    let got = r.read_at(0, MIB).await.expect("read");
    assert!(got == pattern(MIB as usize, 1), "the kept file reads back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_being_moved_reads_from_the_replicas_it_kept() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    cluster.wait_serving(1, Duration::from_secs(30)).await;
    let client = cluster.client().await;
    let mut fs = FileSystem::new(client.clone(), FsOptions::default());
    let (attr, data) = file_with_data(&mut fs, "/moving", 1, 9).await;
    let before = chunks(&mut fs, attr.ino, 1).await;
    // The first step of a move, as `File::rereplicate` takes it: a new
    // version through the log, before any copy lands.
    let op = MetaOp::Replace {
        ino: attr.ino,
        index: 0,
        drop: Vec::new(),
        candidates: Vec::new(),
    };
    let after = match fs.call(1, op, "/moving").await.expect("replace") {
        MetaReply::Chunks(list) => list,
        other => panic!("chunks, not {other:?}"),
    };
    assert!(after[0].version > before[0].version);
    let id = ChunkRef {
        file: attr.ino,
        index: 0,
    }
    .id()
    .expect("id");
    let e = client
        .read_chunk(after[0].replicas[0], id, after[0].version, 0, 4096)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("version"),
        "no replica has it yet: {e}"
    );
    // A reader still gets the content, from the replicas at the old version.
    let mut reader = FileSystem::new(cluster.client().await, FsOptions::default());
    let mut r = reader
        .open_file("/moving", OpenMode::Read)
        .await
        .expect("open");
    let got = r.read_at(0, MIB).await.expect("read during the move");
    assert!(got == data, "the moving chunk reads whole");
}
