//! The async client against real `govfs node` processes on 127.0.0.1 (the
//! key-value app): many sessions pipelined over one connection per node get
//! their own answers, a small in-flight bound makes requests wait rather
//! than fail, a stuck (SIGSTOPped) minister is timed out and its request
//! applied once through its successor, a deadline ends in a `Timeout`
//! naming the request, a wrong key is refused, an unreachable address
//! is reported alone, and a call dropped early by its caller leaves the
//! others on its connection alone.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{tcp_connections_to, TestCluster};
use govfs_client::{Client, ClientError, ClientOptions, Session};
use govfs_core::node::kv::{decode_len, decode_values, KvOp};
use govfs_core::node::{
    ClientMsg, ClientReply, ClientRequest, LeaseReply, LeaseRequest, ServerMsg,
};
use govfs_net::ClusterKey;

const MINISTRY: u64 = 1;

fn append(key: u8, value: u64) -> Vec<u8> {
    postcard::to_stdvec(&KvOp::Append { key, value }).unwrap()
}

/// Appends `value` to `key`; returns the key's length after it.
async fn submit_append(session: &mut Session, key: u8, value: u64, deadline: Duration) -> u64 {
    let (_, out) = session
        .submit(MINISTRY, append(key, value), deadline)
        .await
        .unwrap_or_else(|e| panic!("append {value}: {e}"));
    decode_len(&out).expect("an append answers a length")
}

/// The key's list, read through the log.
async fn read(session: &mut Session, key: u8) -> Vec<u64> {
    let cmd = postcard::to_stdvec(&KvOp::Read { key }).unwrap();
    let (_, out) = session
        .submit(MINISTRY, cmd, Duration::from_secs(20))
        .await
        .expect("read");
    decode_values(&out).expect("a read answers values")
}

async fn connect(cluster: &TestCluster, options: ClientOptions) -> Client {
    Client::connect(cluster.addrs.clone(), cluster.key.clone(), options)
        .await
        .expect("connect")
}

/// Resumes every node when a test ends, even by a panic, so the cluster's
/// drop stops live processes rather than waiting out stopped ones.
struct ResumeOnDrop<'a>(&'a TestCluster);

impl Drop for ResumeOnDrop<'_> {
    fn drop(&mut self) {
        self.0.cont_all();
    }
}

/// A port nobody listens on (bound, then let go).
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// An append that counts how many are outstanding at once; returns the
/// value, the length answered and who answered.
async fn counted_append(
    session: &mut Session,
    key: u8,
    value: u64,
    in_flight: &AtomicUsize,
    most: &AtomicUsize,
) -> (u64, u64, Option<SocketAddr>) {
    let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    most.fetch_max(n, Ordering::SeqCst);
    let len = submit_append(session, key, value, Duration::from_secs(20)).await;
    in_flight.fetch_sub(1, Ordering::SeqCst);
    (value, len, session.last_answer_from())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_over_one_connection_per_node_get_their_own_answers() {
    const KEY: u8 = 1;
    let cluster = TestCluster::up(3, 1);
    let client = connect(&cluster, ClientOptions::default().connections_per_node(1)).await;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most_in_flight = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    // 50 tasks, each with 4 sessions submitting at once: 200 outstanding.
    for t in 0..50u64 {
        let sessions: Vec<Session> = (0..4).map(|_| client.session()).collect();
        let (in_flight, most) = (in_flight.clone(), most_in_flight.clone());
        tasks.push(tokio::spawn(async move {
            let [mut a, mut b, mut c, mut d]: [Session; 4] = sessions.try_into().unwrap();
            let v = t * 4;
            let (ra, rb, rc, rd) = tokio::join!(
                counted_append(&mut a, KEY, v + 1, &in_flight, &most),
                counted_append(&mut b, KEY, v + 2, &in_flight, &most),
                counted_append(&mut c, KEY, v + 3, &in_flight, &most),
                counted_append(&mut d, KEY, v + 4, &in_flight, &most)
            );
            [ra, rb, rc, rd]
        }));
    }
    let mut answers: BTreeMap<u64, u64> = BTreeMap::new();
    let mut answered_by = BTreeSet::new();
    for t in tasks {
        for (value, len, from) in t.await.expect("task") {
            answers.insert(value, len);
            answered_by.extend(from);
        }
    }
    assert_eq!(answers.len(), 200);
    let most = most_in_flight.load(Ordering::SeqCst);
    assert!(
        most > 50,
        "submits were outstanding together: at most {most}"
    );
    // Every node has at most the one connection; the minister's carried all.
    for &addr in &cluster.addrs {
        let n = tcp_connections_to(addr);
        assert!(n <= 1, "{n} connections to {addr}");
    }
    assert_eq!(
        answered_by.len(),
        1,
        "one minister answered: {answered_by:?}"
    );
    let minister = *answered_by.first().unwrap();
    assert_eq!(
        tcp_connections_to(minister),
        1,
        "one connection to the minister"
    );

    // Each append's answer is the key's length right after it: a value whose
    // answer is n sits at position n of the list, so an answer that reached
    // the wrong request would point at another value.
    let values = read(&mut client.session(), KEY).await;
    assert_eq!(values.len(), 200, "every append applied once");
    let distinct: BTreeSet<u64> = values.iter().copied().collect();
    assert_eq!(distinct.len(), 200, "no append applied twice");
    for (value, len) in &answers {
        assert_eq!(
            values.get(*len as usize - 1),
            Some(value),
            "append {value} was answered with length {len}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_bound_of_two_makes_requests_wait_not_fail() {
    const KEY: u8 = 2;
    let cluster = TestCluster::up(3, 1);
    let client = connect(&cluster, ClientOptions::default().max_in_flight(2)).await;
    assert_eq!(client.options().max_in_flight, 2);
    let mut tasks = Vec::new();
    for value in 1..=100u64 {
        let mut session = client.session();
        tasks.push(tokio::spawn(async move {
            let len = submit_append(&mut session, KEY, value, Duration::from_secs(30)).await;
            (value, len)
        }));
    }
    let mut lens = BTreeSet::new();
    for t in tasks {
        let (_, len) = t.await.expect("every submit completes");
        lens.insert(len);
    }
    assert_eq!(
        lens,
        (1..=100).collect(),
        "each append answered its own length"
    );
    let values = read(&mut client.session(), KEY).await;
    let distinct: BTreeSet<u64> = values.iter().copied().collect();
    assert_eq!(values.len(), 100);
    assert_eq!(distinct, (1..=100).collect(), "each applied exactly once");
}

#[derive(Default)]
struct Acks {
    /// (value, length answered, answered by, time taken), in order.
    rows: Vec<(u64, u64, SocketAddr, Duration)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_minister_is_timed_out_and_its_request_applied_once_elsewhere() {
    const KEY: u8 = 3;
    let timeout = Duration::from_millis(300);
    let cluster = TestCluster::up(3, 1);
    let _resume = ResumeOnDrop(&cluster);
    let client = connect(&cluster, ClientOptions::with_timeout(timeout)).await;
    let mut session = client.session();
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Acks::default()));
    let (s, log) = (stop.clone(), acks.clone());
    let writer = tokio::spawn(async move {
        let mut value = 0;
        while !s.load(Ordering::Relaxed) {
            value += 1;
            let started = Instant::now();
            // A generous deadline: every append must be answered.
            let len = submit_append(&mut session, KEY, value, Duration::from_secs(20)).await;
            let from = session.last_answer_from().expect("answered");
            log.lock()
                .unwrap()
                .rows
                .push((value, len, from, started.elapsed()));
        }
        session
    });
    let acked = |acks: &Mutex<Acks>| acks.lock().unwrap().rows.len();
    let wait_for = |n: usize, what: &str| {
        let (acks, what) = (acks.clone(), what.to_string());
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while acked(&acks) < n {
                assert!(Instant::now() < deadline, "{what}: {} acked", acked(&acks));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_for(20, "writing before the stop").await;

    let (minister, _) = cluster.ministry(MINISTRY).await.expect("a minister");
    let minister_addr = client.node_addr(minister).expect("minister's address");
    let before = acked(&acks);
    eprintln!("stopping minister {minister} ({minister_addr}) after {before} appends");
    cluster.stop(minister);
    // The writer carries on through another member once the president
    // appointed a successor.
    wait_for(before + 20, "writing after the stop").await;
    let (successor, _) = cluster
        .ministry(MINISTRY)
        .await
        .expect("a serving minister");
    assert_ne!(successor, minister, "the president appointed a successor");

    cluster.cont(minister);
    cluster.wait_serving(1, Duration::from_secs(20)).await;
    let resumed = acked(&acks);
    wait_for(resumed + 10, "writing after the resume").await;
    stop.store(true, Ordering::Relaxed);
    let mut session = writer.await.expect("writer");

    let rows = std::mem::take(&mut acks.lock().unwrap().rows);
    let slowest = rows.iter().map(|r| r.3).max().unwrap();
    assert!(
        slowest > timeout,
        "one append outlived a try on the stopped minister: slowest {slowest:?}"
    );
    assert!(
        rows[before..]
            .iter()
            .any(|&(_, _, from, _)| from != minister_addr),
        "appends after the stop were answered by another node"
    );
    // What the client relies on to resend: the same (client, seq) sent
    // again is answered from the session table (with its first answer),
    // not applied again.
    let last = rows.last().unwrap().0;
    let resend = ClientMsg::Request(ClientRequest {
        ministry: MINISTRY,
        client: session.id(),
        seq: session.seq(),
        command: append(KEY, last),
        term: None,
    });
    let mut answered = false;
    for &addr in &cluster.addrs {
        match client.call(addr, &resend).await {
            Ok(ServerMsg::Reply(ClientReply::Done { seq, output, .. })) => {
                assert_eq!(seq, session.seq());
                assert_eq!(decode_len(&output).unwrap(), last, "its first answer");
                answered = true;
            }
            Ok(ServerMsg::Reply(ClientReply::NotLeader { .. })) => {}
            other => panic!("resend to {addr}: {other:?}"),
        }
    }
    assert!(answered, "the minister answered the resend");

    // Every append applied exactly once, in order, and each answer is its
    // own length: nothing resent was applied twice.
    let values = read(&mut session, KEY).await;
    let expected: Vec<u64> = (1..=rows.len() as u64).collect();
    assert_eq!(values, expected, "each append applied once, in order");
    for &(value, len, _, _) in &rows {
        assert_eq!(len, value, "append {value} answered length {len}");
    }
    eprintln!(
        "{} appends, slowest {slowest:?}, minister {minister} -> {successor}",
        rows.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_with_every_node_stopped_ends_in_a_timeout_naming_the_request() {
    const KEY: u8 = 4;
    let cluster = TestCluster::up(3, 1);
    let _resume = ResumeOnDrop(&cluster);
    let options = ClientOptions::with_timeout(Duration::from_millis(300));
    let client = connect(&cluster, options).await;
    let mut session = client.session();
    assert_eq!(
        submit_append(&mut session, KEY, 1, Duration::from_secs(20)).await,
        1
    );

    for node in 1..=cluster.nodes {
        cluster.stop(node);
    }
    let started = Instant::now();
    let deadline = Duration::from_secs(1);
    match session.submit(MINISTRY, append(KEY, 2), deadline).await {
        Err(ClientError::Timeout {
            ministry,
            waited,
            client,
            seq,
        }) => {
            assert_eq!((ministry, client, seq), (MINISTRY, session.id(), 2));
            assert_eq!(waited, deadline);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= deadline && took < deadline + Duration::from_secs(1),
        "the deadline ended the submit: {took:?}"
    );
    cluster.cont_all();

    // The same session goes on with its next request id.
    assert!(submit_append(&mut session, KEY, 3, Duration::from_secs(20)).await >= 2);
    assert_eq!(session.seq(), 3);
    // The timed-out append may still have applied, but at most once.
    let values = read(&mut session, KEY).await;
    assert!(
        values == [1, 3] || values == [1, 2, 3],
        "appends after the timeout: {values:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cluster_key_is_refused() {
    let cluster = TestCluster::up(3, 1);
    let wrong = ClusterKey::from_bytes(&[8; 32]).unwrap();
    match Client::connect(cluster.addrs.clone(), wrong, ClientOptions::default()).await {
        Err(e @ ClientError::NoNode { .. }) => assert!(e.is_bad_key(), "{e}"),
        other => panic!("expected NoNode, got {:?}", other.map(|_| ())),
    }
    // The right key still gets in.
    let client = connect(&cluster, ClientOptions::default()).await;
    assert_eq!(client.status_all().await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_address_is_reported_alone() {
    let cluster = TestCluster::up(3, 1);
    let closed = closed_port();
    let mut addrs = cluster.addrs.clone();
    addrs.insert(1, closed);
    let client = Client::connect(addrs.clone(), cluster.key.clone(), ClientOptions::default())
        .await
        .expect("the reachable nodes answer");
    let rows = client.status_all().await;
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        addrs,
        "in the order given"
    );
    let mut ids = BTreeSet::new();
    for (addr, row) in &rows {
        match row {
            Err(ClientError::Net { addr: a, .. }) if *addr == closed => assert_eq!(*a, closed),
            Ok(st) if *addr != closed => {
                assert_eq!(client.node_addr(st.id), Some(*addr));
                ids.insert(st.id);
            }
            other => panic!("{addr}: {other:?}"),
        }
    }
    assert_eq!(ids, (1..=3).collect(), "every real node answered");

    match Client::connect(
        vec![closed, closed_port()],
        cluster.key.clone(),
        ClientOptions::default(),
    )
    .await
    {
        Err(ClientError::NoNode { last: Some(_) }) => {}
        other => panic!("expected NoNode, got {:?}", other.map(|_| ())),
    }
}

/// A call its caller drops before the timeout (a read ahead no longer
/// wanted, a `select!` that took another branch) leaves the connection to
/// the calls still waiting on it: only a call that timed out with nothing
/// received meanwhile declares the node stuck (and fails them all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_early_does_not_fail_the_others_on_its_connection() {
    let cluster = TestCluster::up(3, 1);
    let client = connect(&cluster, ClientOptions::default().connections_per_node(1)).await;
    let mut warm = client.session();
    submit_append(&mut warm, 9, 0, Duration::from_secs(20)).await;
    let minister = warm.last_answer_from().expect("answered");
    for round in 0..3u64 {
        // A lease watch with nothing to report is parked by the minister
        // until its wait ends: in flight while `dropped` is sent and
        // dropped, with nothing received in between.
        let watch = ClientMsg::Lease(LeaseRequest::Watch {
            ministry: MINISTRY,
            session: 4242 + round,
        });
        let c = client.clone();
        let waiting = tokio::spawn(async move { c.call(minister, &watch).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut dropped = Box::pin(client.call(minister, &ClientMsg::Status));
        std::future::poll_fn(|cx| {
            let _ = std::future::Future::poll(dropped.as_mut(), cx);
            std::task::Poll::Ready(())
        })
        .await;
        drop(dropped);
        match waiting.await.expect("task") {
            Ok(ServerMsg::Lease(LeaseReply::Done)) => {}
            other => panic!("round {round}: the watch ended with {other:?}"),
        }
    }
}
