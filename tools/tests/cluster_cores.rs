//! Nodes with two core threads each: every node hosts a shard of both
//! ministries, on different cores, so client requests and Raft messages that
//! arrive on one core are served by the other. SIGKILL the node whose shard
//! leads ministry 2 while writers keep going through both ministries; after
//! it restarts, every acknowledged append is there exactly once.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestCluster;
use govfs_client::ClientError;
use govfs_core::ids::node_of;
use govfs_core::node::kv::{decode_values, KvOp};

const KEY: u8 = 3;

#[derive(Default)]
struct Outcomes {
    acked: Vec<u64>,
    unknown: Vec<u64>,
}

async fn writer(
    cluster: &TestCluster,
    ministry: u64,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Outcomes>>,
) -> tokio::task::JoinHandle<()> {
    let mut session = cluster.client().await.session();
    tokio::spawn(async move {
        let mut value = 1u64;
        while !stop.load(Ordering::Relaxed) {
            let cmd = postcard::to_stdvec(&KvOp::Append { key: KEY, value }).unwrap();
            match session.submit(ministry, cmd, Duration::from_secs(15)).await {
                Ok(_) => out.lock().unwrap().acked.push(value),
                Err(ClientError::Timeout { .. }) => out.lock().unwrap().unknown.push(value),
                Err(e) => panic!("writer of ministry {ministry}: {e}"),
            }
            value += 1;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cores_per_node_serve_two_ministries_through_a_sigkill() {
    let cluster = TestCluster::up_args(3, 2, "kv", &["--cores", "2"]);
    cluster.wait_serving(2, Duration::from_secs(30)).await;

    // Every node runs two cores with one shard each, and is a member of both
    // ministries (three nodes, ministries of three on distinct nodes).
    for st in cluster.statuses().await {
        let cores: BTreeSet<u32> = st.shards.iter().map(|s| s.core).collect();
        assert_eq!(
            cores,
            BTreeSet::from([0, 1]),
            "node {}: {:?}",
            st.id,
            st.shards
        );
        assert!(st.shards.iter().all(|s| node_of(s.id) == st.id));
        assert!(
            st.member_of(1) && st.member_of(2),
            "node {}: {:?}",
            st.id,
            st.shards
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Vec<Arc<Mutex<Outcomes>>> = (0..2).map(|_| Arc::default()).collect();
    let mut writers = Vec::new();
    for (i, out) in outcomes.iter().enumerate() {
        writers.push(writer(&cluster, i as u64 + 1, stop.clone(), out.clone()).await);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (minister, _) = cluster.ministry(2).await.expect("ministry 2 serves");
    eprintln!("killing node {minister}, minister of ministry 2");
    cluster.kill(minister);
    cluster.wait_serving(2, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    cluster.start(minister);
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    cluster.wait_serving(2, Duration::from_secs(20)).await;

    let mut session = cluster.client().await.session();
    for (i, out) in outcomes.iter().enumerate() {
        let ministry = i as u64 + 1;
        let (acked, unknown) = {
            let o = out.lock().unwrap();
            (o.acked.clone(), o.unknown.clone())
        };
        assert!(
            acked.len() > 20,
            "ministry {ministry}: only {} writes",
            acked.len()
        );
        let read = postcard::to_stdvec(&KvOp::Read { key: KEY }).unwrap();
        let (_, output) = session
            .submit(ministry, read, Duration::from_secs(20))
            .await
            .expect("read after the kill");
        let values = decode_values(&output).expect("values");
        let seen: BTreeSet<u64> = values.iter().copied().collect();
        assert_eq!(
            seen.len(),
            values.len(),
            "ministry {ministry}: an append applied twice"
        );
        for v in &acked {
            assert!(
                seen.contains(v),
                "ministry {ministry}: acknowledged append {v} lost"
            );
        }
        let known: BTreeSet<u64> = acked.iter().chain(&unknown).copied().collect();
        assert!(
            seen.is_subset(&known),
            "ministry {ministry}: values nobody wrote"
        );
        eprintln!(
            "ministry {ministry}: {} acknowledged, {} present",
            acked.len(),
            values.len()
        );
    }
}
