//! Which way chunk requests travel, on real `govfs node` processes (issue
//! 6, item 7): over the RDMA data path where the build has the `rdma`
//! feature and the machine an RDMA device, over TCP otherwise. Built and
//! run in every build: without a device it checks that every node says it
//! has no data path, that the client stays on TCP for the stated reason,
//! and that the data is right; it prints what it could not check.

mod common;

use std::time::{Duration, Instant};

use common::{pattern, round_trip, TestCluster};
use govfs_client::{FileSystem, FsOptions};
use govfs_core::node::{ClientMsg, ServerMsg};
use govfs_net::rdma_choice::LocalRdma;

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_requests_take_rdma_where_both_ends_have_a_device_and_tcp_otherwise() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    cluster.wait_serving(1, Duration::from_secs(30)).await;
    let rdma = cfg!(feature = "rdma") && LocalRdma::probe() == LocalRdma::Available;
    let mut fs = FileSystem::new(cluster.client().await, FsOptions::default());
    let client = fs.client().clone();

    // Every node says whether it has a data path, and only where it can.
    for &addr in &cluster.addrs {
        match client
            .call(addr, &ClientMsg::DataPath)
            .await
            .expect("data path")
        {
            ServerMsg::DataPath(info) => assert_eq!(
                info.rdma_port.is_some(),
                rdma,
                "{addr}: a data path exactly where the build and the machine allow one"
            ),
            other => panic!("{addr}: a data path answer, not {other:?}"),
        }
    }

    fs.create("/first", 0o644, true).await.expect("create");
    round_trip(&mut fs, "/first", &pattern(9 * MIB + 4321, 1)).await;

    if !rdma {
        for &addr in &cluster.addrs {
            let why = client.data_path(addr);
            assert!(why.starts_with("TCP: "), "{addr}: {why}");
            let expected = if cfg!(feature = "rdma") {
                "no RDMA device here"
            } else {
                "no rdma feature"
            };
            assert!(why.contains(expected), "{addr}: {why}");
        }
        assert_eq!(client.data_path_calls(), 0, "nothing went over RDMA");
        println!(
            "SKIPPED the RDMA part: {} (chunk data went over TCP and was checked)",
            client.data_path(cluster.addrs[0])
        );
        return;
    }

    // The first chunk requests started the setup in the background; once
    // every node's data path is up, the next file's data goes over it.
    let deadline = Instant::now() + Duration::from_secs(20);
    for &addr in &cluster.addrs {
        loop {
            let how = client.data_path(addr);
            if how.starts_with("data path: RDMA") {
                break;
            }
            assert!(Instant::now() < deadline, "{addr}: still {how}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let before = client.data_path_calls();
    fs.create("/second", 0o644, true).await.expect("create");
    round_trip(&mut fs, "/second", &pattern(9 * MIB + 4321, 2)).await;
    // 10 writes to 3 replicas and 10 + 3 reads at the least.
    let calls = client.data_path_calls() - before;
    assert!(calls >= 43, "only {calls} chunk requests went over RDMA");
}
