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

fn writer(
    cluster: &TestCluster,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Outcomes>>,
) -> std::thread::JoinHandle<()> {
    let mut client = cluster.client();
    std::thread::spawn(move || {
        let mut value = 1u64;
        while !stop.load(Ordering::Relaxed) {
            let cmd = postcard::to_stdvec(&KvOp::Append { key: KEY, value }).unwrap();
            match client.submit(MINISTRY, cmd, Duration::from_secs(15)) {
                Ok(_) => out.lock().unwrap().acked.push(value),
                Err(ClientError::Timeout { .. }) => out.lock().unwrap().unknown.push(value),
                Err(e) => panic!("writer: {e}"),
            }
            value += 1;
        }
    })
}

#[test]
fn sigkill_president_minister_and_clerk_loses_nothing() {
    let cluster = TestCluster::up(5, 1);
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let w = writer(&cluster, stop.clone(), outcomes.clone());
    let pause = || std::thread::sleep(Duration::from_millis(800));
    let recover = Duration::from_secs(20);
    pause();

    let president = cluster.president().expect("a president");
    eprintln!("killing president {president}");
    cluster.kill(president);
    cluster.wait_serving(1, recover);
    assert_ne!(cluster.president(), Some(president));
    cluster.start(president);
    pause();

    let (minister, _) = cluster.ministry(MINISTRY).expect("a minister");
    eprintln!("killing minister {minister}");
    cluster.kill(minister);
    cluster.wait_serving(1, recover);
    let (successor, _) = cluster.ministry(MINISTRY).expect("a new minister");
    assert_ne!(successor, minister, "the president appointed a successor");
    cluster.start(minister);
    pause();

    let (_, clerks) = cluster.ministry(MINISTRY).expect("a ministry");
    let clerk = *clerks.first().expect("a clerk");
    eprintln!("killing clerk {clerk}");
    cluster.kill(clerk);
    pause();
    cluster.wait_serving(1, recover);
    cluster.start(clerk);
    pause();

    stop.store(true, Ordering::Relaxed);
    w.join().expect("writer");
    let outcomes = outcomes.lock().unwrap();
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
    cluster.wait_serving(1, Duration::from_secs(30));
    let mut client = cluster.client();
    let read = postcard::to_stdvec(&KvOp::Read { key: KEY }).unwrap();
    let (_, output) = client
        .submit(MINISTRY, read, Duration::from_secs(20))
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
