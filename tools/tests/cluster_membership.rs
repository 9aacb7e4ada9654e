//! Real processes: with no idle shard, a dead clerk is dropped from its
//! ministry (it shrinks) and writes go on; once the node restarts it is
//! brought back into the ministry.

mod common;

use std::time::{Duration, Instant};

use common::TestCluster;
use govfs_core::node::kv::KvOp;

async fn members(cluster: &TestCluster) -> Vec<u64> {
    let client = cluster.client().await;
    client
        .map()
        .await
        .map(|m| {
            m.ministries
                .get(&1)
                .map(|i| i.members.clone())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

async fn wait_for_members(
    cluster: &TestCluster,
    what: &str,
    within: Duration,
    cond: impl Fn(&[u64]) -> bool,
) {
    let deadline = Instant::now() + within;
    while !cond(&members(cluster).await) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_clerk_shrinks_the_ministry_and_a_restarted_node_rejoins() {
    let cluster = TestCluster::up(3, 1);
    assert_eq!(members(&cluster).await.len(), 3);
    let (_, clerks) = cluster.ministry(1).await.expect("a ministry");
    let clerk = clerks[0];
    cluster.kill(clerk);
    wait_for_members(
        &cluster,
        "the ministry to drop the dead clerk",
        Duration::from_secs(20),
        |m| m.len() == 2 && !m.contains(&clerk),
    )
    .await;
    cluster.wait_serving(1, Duration::from_secs(20)).await;
    let mut session = cluster.client().await.session();
    for v in 0..20 {
        let cmd = postcard::to_stdvec(&KvOp::Append { key: 1, value: v }).unwrap();
        session
            .submit(1, cmd, Duration::from_secs(10))
            .await
            .expect("writes go on in the smaller ministry");
    }
    cluster.start(clerk);
    wait_for_members(
        &cluster,
        "the restarted node to rejoin the ministry",
        Duration::from_secs(30),
        |m| m.len() == 3 && m.contains(&clerk),
    )
    .await;
    cluster.wait_serving(1, Duration::from_secs(20)).await;
}
