//! The client against a mock node in the same process: answers that come
//! back in any order reach their requests, many requests share one
//! connection, in-flight requests are bounded, a silent connection is
//! dropped and the request resent with the same id, a wrong key is refused,
//! and a deadline ends in a `Timeout` naming the request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use govfs_client::{Client, ClientError, ClientOptions};
use govfs_core::node::{ClientMsg, ClientReply, NodeStatus, ServerMsg};
use govfs_core::raft::{Role as RaftRole, Status};
use govfs_net::{random_nonce, ClusterKey, ConnEvent, Connection, FrameKind, Identity, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy)]
enum Behaviour {
    /// Hold answers until the connection is idle for a moment, then send
    /// them newest first.
    Reverse,
    /// Never answer a change on the first connection; answer normally on
    /// the others.
    SilentFirstConnection,
    /// Never answer a change.
    Silent,
}

#[derive(Default)]
struct Seen {
    /// (client, seq) of every change received, in order.
    requests: Mutex<Vec<(u64, u64)>>,
    connections: AtomicUsize,
    /// Most requests answered in one batch.
    max_batch: AtomicUsize,
}

fn status() -> NodeStatus {
    let member = Status {
        id: 1,
        group: 0,
        role: RaftRole::Leader,
        term: 1,
        leader: Some(1),
        last_index: 0,
        last_term: 0,
        commit: 0,
        applied: 0,
        durable: 0,
    };
    NodeStatus {
        id: 1,
        president: member,
        shards: Vec::new(),
    }
}

async fn mock(key: ClusterKey, behaviour: Behaviour) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let n = s.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, key.clone(), behaviour, n, s.clone()));
        }
    });
    (addr, seen)
}

async fn serve(
    mut stream: TcpStream,
    key: ClusterKey,
    behaviour: Behaviour,
    index: usize,
    seen: Arc<Seen>,
) {
    let local = Identity {
        node_id: 1,
        role: Role::Node,
    };
    let mut conn = Connection::new_acceptor(&key, local, random_nonce().unwrap());
    let mut buf = vec![0u8; 64 * 1024];
    let mut held: Vec<(u64, ServerMsg)> = Vec::new();
    let mut index_counter = 0;
    loop {
        let read = tokio::time::timeout(Duration::from_millis(30), stream.read(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => {
                if conn.receive(&buf[..n]).is_err() {
                    return;
                }
            }
            // Idle: release what is held, newest first.
            Err(_) => {
                seen.max_batch.fetch_max(held.len(), Ordering::SeqCst);
                for (id, msg) in held.drain(..).rev() {
                    let body = postcard::to_stdvec(&msg).unwrap();
                    conn.queue_frame(FrameKind::Client, id, &body).unwrap();
                }
            }
        }
        while let Some(ev) = conn.poll_event() {
            let ConnEvent::Frame(frame) = ev else {
                continue;
            };
            let msg: ClientMsg = postcard::from_bytes(&frame.body).unwrap();
            let answer = match msg {
                ClientMsg::Status => Some(ServerMsg::Status(status())),
                ClientMsg::Map => Some(ServerMsg::Error("no map here".into())),
                ClientMsg::Request(r) => {
                    seen.requests.lock().unwrap().push((r.client, r.seq));
                    index_counter += 1;
                    let silent = match behaviour {
                        Behaviour::Reverse => false,
                        Behaviour::SilentFirstConnection => index == 0,
                        Behaviour::Silent => true,
                    };
                    (!silent).then_some(ServerMsg::Reply(ClientReply::Done {
                        seq: r.seq,
                        index: index_counter,
                        output: r.command,
                    }))
                }
            };
            match (answer, behaviour) {
                (Some(ServerMsg::Reply(reply)), Behaviour::Reverse) => {
                    held.push((frame.request_id, ServerMsg::Reply(reply)))
                }
                (Some(msg), _) => {
                    let body = postcard::to_stdvec(&msg).unwrap();
                    conn.queue_frame(FrameKind::Client, frame.request_id, &body)
                        .unwrap();
                }
                (None, _) => {}
            }
        }
        let out = conn.take_transmit();
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn key() -> ClusterKey {
    ClusterKey::from_bytes(&[7; 32]).unwrap()
}

async fn client(addr: SocketAddr, options: ClientOptions) -> Client {
    Client::connect(vec![addr], key(), options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_in_any_order_reach_their_requests_over_one_connection() {
    let (addr, seen) = mock(key(), Behaviour::Reverse).await;
    let client = client(addr, ClientOptions::default()).await;
    assert_eq!(client.node_addr(1), Some(addr));
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let mut session = client.session();
        tasks.push(tokio::spawn(async move {
            for i in 0..5u64 {
                let command = (t * 100 + i).to_le_bytes().to_vec();
                let (_, out) = session
                    .submit(1, command.clone(), Duration::from_secs(5))
                    .await
                    .unwrap();
                assert_eq!(out, command, "an answer reached the wrong request");
                assert_eq!(session.last_answer_from(), Some(addr));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    assert!(
        seen.max_batch.load(Ordering::SeqCst) > 1,
        "requests were pipelined on the connection"
    );
    let requests = seen.requests.lock().unwrap();
    assert_eq!(requests.len(), 80, "no resends needed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_per_connection_are_bounded() {
    let (addr, seen) = mock(key(), Behaviour::Reverse).await;
    let client = client(addr, ClientOptions::default().max_in_flight(2)).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let mut session = client.session();
        tasks.push(tokio::spawn(async move {
            session
                .submit(1, vec![1], Duration::from_secs(5))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let max = seen.max_batch.load(Ordering::SeqCst);
    assert!((1..=2).contains(&max), "at most 2 in flight, saw {max}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_dropped_and_the_request_resent_with_the_same_id() {
    let (addr, seen) = mock(key(), Behaviour::SilentFirstConnection).await;
    let options = ClientOptions::with_timeout(Duration::from_millis(300));
    let client = client(addr, options).await;
    let mut session = client.session();
    let (_, out) = session
        .submit(1, b"x".to_vec(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out, b"x");
    assert!(seen.connections.load(Ordering::SeqCst) >= 2, "redialed");
    let requests = seen.requests.lock().unwrap();
    assert!(requests.len() >= 2, "resent: {requests:?}");
    assert!(
        requests.iter().all(|r| *r == (session.id(), 1)),
        "every resend carries the same (client, seq): {requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_ends_in_a_timeout_naming_the_request() {
    let (addr, _) = mock(key(), Behaviour::Silent).await;
    let options = ClientOptions::with_timeout(Duration::from_millis(200));
    let client = client(addr, options).await;
    let mut session = client.session();
    match session
        .submit(3, b"x".to_vec(), Duration::from_millis(700))
        .await
    {
        Err(ClientError::Timeout {
            ministry,
            client,
            seq,
            ..
        }) => {
            assert_eq!((ministry, client, seq), (3, session.id(), 1));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The session moves on to its next request id.
    assert!(session
        .submit(3, b"y".to_vec(), Duration::from_millis(100))
        .await
        .is_err());
    assert_eq!(session.seq(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused() {
    let (addr, _) = mock(key(), Behaviour::Reverse).await;
    let wrong = ClusterKey::from_bytes(&[8; 32]).unwrap();
    match Client::connect(vec![addr], wrong, ClientOptions::default()).await {
        Err(e @ ClientError::NoNode { .. }) => assert!(e.is_bad_key(), "{e}"),
        other => panic!("expected NoNode, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_node_is_reported_per_address() {
    let (addr, _) = mock(key(), Behaviour::Reverse).await;
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client = Client::connect(vec![addr, closed], key(), ClientOptions::default())
        .await
        .unwrap();
    let rows = client.status_all().await;
    assert_eq!(rows.len(), 2);
    assert!(rows[0].1.is_ok());
    assert!(matches!(rows[1].1, Err(ClientError::Net { addr, .. }) if addr == closed));
}
