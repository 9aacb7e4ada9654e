//! Requests from an outdated view, on real nodes: a change naming an older
//! term of its ministry is refused with `StaleTerm`, and one from a session
//! the ministry does not know (not starting at request 1) with
//! `UnknownSession`; neither changes anything.

mod common;

use std::time::Duration;

use common::TestCluster;
use govfs_client::ClientError;
use govfs_core::node::kv::{decode_values, KvOp};
use govfs_core::node::{ClientMsg, ClientReply, ClientRequest, ServerMsg};

const MINISTRY: u64 = 1;
const KEY: u8 = 5;

fn append(value: u64) -> Vec<u8> {
    postcard::to_stdvec(&KvOp::Append { key: KEY, value }).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_terms_and_unknown_sessions_change_nothing() {
    let cluster = TestCluster::up(3, 1);
    let client = cluster.client().await;
    let mut session = client.session();
    session
        .submit(MINISTRY, append(1), Duration::from_secs(10))
        .await
        .expect("a first append");
    let map = client.map().await.expect("map");
    let term = map.ministries[&MINISTRY].term;
    assert!(term >= 1);

    // An older term than the ministry's: refused, not applied.
    let err = session
        .submit_at(MINISTRY, Some(term - 1), append(2), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::StaleTerm { term: t, .. } if t == term),
        "{err}"
    );
    // The current term is served.
    session
        .submit_at(MINISTRY, Some(term), append(3), Duration::from_secs(10))
        .await
        .expect("the current term");

    // A session the ministry never saw, starting at request 7: refused.
    let (minister, _) = cluster.ministry(MINISTRY).await.expect("a minister");
    let addr = client.node_addr(minister).expect("the minister's address");
    let unknown = ClientMsg::Request(ClientRequest {
        ministry: MINISTRY,
        client: 0x5eed_0000_0000_0001,
        seq: 7,
        command: append(4),
        term: None,
    });
    match client.call(addr, &unknown).await.expect("an answer") {
        ServerMsg::Reply(ClientReply::UnknownSession { seq: 7 }) => {}
        other => panic!("expected UnknownSession, got {other:?}"),
    }

    let read = postcard::to_stdvec(&KvOp::Read { key: KEY }).unwrap();
    let (_, out) = session
        .submit(MINISTRY, read, Duration::from_secs(10))
        .await
        .expect("read");
    assert_eq!(
        decode_values(&out).unwrap(),
        vec![1, 3],
        "only the accepted appends"
    );
}
