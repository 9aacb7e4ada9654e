//! Real processes: with no idle shard, a dead clerk is dropped from its
//! ministry (it shrinks) and writes go on; once the node restarts it is
//! brought back into the ministry.

mod common;

use std::time::{Duration, Instant};

use common::TestCluster;
use govfs_core::node::kv::KvOp;

fn members(cluster: &TestCluster) -> Vec<u64> {
    let mut client = cluster.client();
    client
        .map()
        .map(|m| {
            m.ministries
                .get(&1)
                .map(|i| i.members.clone())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_dead_clerk_shrinks_the_ministry_and_a_restarted_node_rejoins() {
    let cluster = TestCluster::up(3, 1);
    assert_eq!(members(&cluster).len(), 3);
    let (_, clerks) = cluster.ministry(1).expect("a ministry");
    let clerk = clerks[0];
    cluster.kill(clerk);
    wait_for(
        "the ministry to drop the dead clerk",
        Duration::from_secs(20),
        || {
            let m = members(&cluster);
            m.len() == 2 && !m.contains(&clerk)
        },
    );
    cluster.wait_serving(1, Duration::from_secs(20));
    let mut client = cluster.client();
    for v in 0..20 {
        let cmd = postcard::to_stdvec(&KvOp::Append { key: 1, value: v }).unwrap();
        client
            .submit(1, cmd, Duration::from_secs(10))
            .expect("writes go on in the smaller ministry");
    }
    cluster.start(clerk);
    wait_for(
        "the restarted node to rejoin the ministry",
        Duration::from_secs(30),
        || {
            let m = members(&cluster);
            m.len() == 3 && m.contains(&clerk)
        },
    );
    cluster.wait_serving(1, Duration::from_secs(20));
}
