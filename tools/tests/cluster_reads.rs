//! Reads from clerks with session consistency, on real nodes: a session
//! reads its own writes from any member without asking the minister, reads
//! spread over the members, a read's index never goes back, a change
//! submitted as a command is refused as a read, and the linearizable option
//! (the same query through the log) agrees.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::TestCluster;
use govfs_client::ClientError;
use govfs_core::node::kv::{decode_values, KvOp};

const MINISTRY: u64 = 1;

fn op(o: KvOp) -> Vec<u8> {
    postcard::to_stdvec(&o).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_read_their_writes_from_any_member() {
    let cluster = TestCluster::up(3, 1);
    let client = cluster.client().await;
    let (minister, clerks) = cluster.ministry(MINISTRY).await.expect("a minister");
    assert_eq!(clerks.len(), 2);

    let mut sessions: Vec<_> = (0..8).map(|_| client.session()).collect();
    for round in 0..25u64 {
        for (i, s) in sessions.iter_mut().enumerate() {
            let key = i as u8;
            let value = round * 100 + i as u64;
            let (index, _) = s
                .submit(
                    MINISTRY,
                    op(KvOp::Append { key, value }),
                    Duration::from_secs(10),
                )
                .await
                .expect("append");
            let before = s.seen(MINISTRY);
            assert!(before >= index);
            let (at, out) = s
                .read(MINISTRY, op(KvOp::Read { key }), Duration::from_secs(10))
                .await
                .expect("read");
            // Its own write is there, at an index no older than the write's.
            assert!(at >= index, "read at {at} before the write at {index}");
            let values = decode_values(&out).unwrap();
            assert_eq!(values.last(), Some(&value), "session {i} round {round}");
            assert_eq!(values.len() as u64, round + 1);
            assert!(s.seen(MINISTRY) >= before, "a read went back in time");
        }
    }
    // Which nodes answered reads: their metrics count them.
    let mut readers = 0;
    for node in [minister].iter().chain(clerks.iter()) {
        let text =
            std::fs::read_to_string(cluster.path().join(format!("n{node}/node.toml"))).unwrap();
        let addr = text
            .lines()
            .find(|l| l.starts_with("metrics_listen"))
            .and_then(|l| l.split('"').nth(1))
            .unwrap()
            .to_string();
        let body = http_get(&addr, "/metrics");
        let reads: f64 = body
            .lines()
            .find(|l| l.starts_with("govfs_client_reads_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if reads > 0.0 {
            readers += 1;
        }
        if *node != minister {
            assert!(reads > 0.0, "clerk {node} answered no read");
        }
    }
    assert!(readers >= 2, "reads must spread over the members");

    // A change is not a read: it must go through the log.
    let err = sessions[0]
        .read(
            MINISTRY,
            op(KvOp::Append { key: 9, value: 1 }),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NotARead { .. }), "{err}");
    // The linearizable option: the same query through the log agrees.
    let (_, lin) = sessions[0]
        .submit(MINISTRY, op(KvOp::Read { key: 0 }), Duration::from_secs(10))
        .await
        .expect("linearizable read");
    let (_, sess) = sessions[0]
        .read(MINISTRY, op(KvOp::Read { key: 0 }), Duration::from_secs(10))
        .await
        .expect("session read");
    assert_eq!(decode_values(&lin).unwrap(), decode_values(&sess).unwrap());
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("metrics endpoint");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}
