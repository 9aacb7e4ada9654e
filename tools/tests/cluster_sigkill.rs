//! Real `govfs node` processes on 127.0.0.1: SIGKILL the president, a
//! minister and a clerk in turn while a client keeps writing through the
//! ministry; the cluster recovers by itself, and after every node restarts
//! each acknowledged change is there exactly once.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestCluster;
use govfs_client::ClientError;
use govfs_core::node::kv::{decode_values, KvOp};

const MINISTRY: u64 = 1;
const KEY: u8 = 7;

#[derive(Default)]
struct Outcomes {
    acked: Vec<u64>,
    /// Timed out: may or may not have applied, but at most once.
    unknown: Vec<u64>,
}

async fn writer(
    cluster: &TestCluster,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Outcomes>>,
) -> tokio::task::JoinHandle<()> {
    let mut session = cluster.client().await.session();
    tokio::spawn(async move {
        let mut value = 1u64;
        while !stop.load(Ordering::Relaxed) {
            let cmd = postcard::to_stdvec(&KvOp::Append { key: KEY, value }).unwrap();
            match session.submit(MINISTRY, cmd, Duration::from_secs(15)).await {
                Ok(_) => out.lock().unwrap().acked.push(value),
                Err(ClientError::Timeout { .. }) => out.lock().unwrap().unknown.push(value),
                Err(e) => panic!("writer: {e}"),
            }
            value += 1;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_president_minister_and_clerk_loses_nothing() {
    let cluster = TestCluster::up(5, 1);
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let w = writer(&cluster, stop.clone(), outcomes.clone()).await;
    let pause = || tokio::time::sleep(Duration::from_millis(800));
    let recover = Duration::from_secs(20);
    pause().await;

    let president = cluster.president().await.expect("a president");
    eprintln!("killing president {president}");
    cluster.kill(president);
    cluster.wait_serving(1, recover).await;
    assert_ne!(cluster.president().await, Some(president));
    cluster.start(president);
    pause().await;

    let (minister, _) = cluster.ministry(MINISTRY).await.expect("a minister");
    eprintln!("killing minister {minister}");
    cluster.kill(minister);
    cluster.wait_serving(1, recover).await;
    let (successor, _) = cluster.ministry(MINISTRY).await.expect("a new minister");
    assert_ne!(successor, minister, "the president appointed a successor");
    cluster.start(minister);
    pause().await;

    let (_, clerks) = cluster.ministry(MINISTRY).await.expect("a ministry");
    let clerk = *clerks.first().expect("a clerk");
    eprintln!("killing clerk {clerk}");
    cluster.kill(clerk);
    pause().await;
    cluster.wait_serving(1, recover).await;
    cluster.start(clerk);
    pause().await;

    stop.store(true, Ordering::Relaxed);
    w.await.expect("writer");
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    assert!(
        outcomes.acked.len() > 20,
        "the writer made progress: {} acked",
        outcomes.acked.len()
    );

    // Every node restarts: everything acknowledged must still be there.
    cluster.govfs(&["cluster", "down"]);
    for node in 1..=cluster.nodes {
        cluster.start(node);
    }
    cluster.wait_serving(1, Duration::from_secs(30)).await;
    let mut session = cluster.client().await.session();
    let read = postcard::to_stdvec(&KvOp::Read { key: KEY }).unwrap();
    let (_, output) = session
        .submit(MINISTRY, read, Duration::from_secs(20))
        .await
        .expect("read after restart");
    let values = decode_values(&output).expect("values");
    let seen: BTreeSet<u64> = values.iter().copied().collect();
    assert_eq!(seen.len(), values.len(), "no append applied twice");
    for v in &outcomes.acked {
        assert!(seen.contains(v), "acknowledged append {v} lost");
    }
    let known: BTreeSet<u64> = outcomes
        .acked
        .iter()
        .chain(&outcomes.unknown)
        .copied()
        .collect();
    assert!(seen.is_subset(&known), "values nobody wrote appeared");
    eprintln!(
        "{} acknowledged, {} unknown, {} present after restart",
        outcomes.acked.len(),
        outcomes.unknown.len(),
        values.len()
    );
}
