//! Real TCP on 127.0.0.1: authenticated round trips, and every way a peer
//! can misbehave (wrong key, garbage, bad crc, truncated frame, frames before
//! the handshake, silence) closing only that peer's connection.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use govfs_net::auth::{compute_proof, AuthMessage, Hello};
use govfs_net::{
    encode_frame, random_nonce, AuthError, ClusterKey, ConnError, Connection, Frame, FrameDecoder,
    FrameKind, Identity, ListenerConfig, ListenerCounts, QueueError, Role, Side, TcpConn, TcpError,
    TcpListenerLoop,
};

const TIMEOUT: Duration = Duration::from_secs(5);
const SERVER_ID: u64 = 100;

fn cluster_key() -> ClusterKey {
    ClusterKey::from_hex("5f0c1b2e3d4a59687786958a4b3c2d1e0f1e2d3c4b5a69788796a5b4c3d2e1f0")
        .expect("valid key")
}

fn wrong_key() -> ClusterKey {
    ClusterKey::from_bytes(&[0x42; 32]).expect("valid key")
}

fn client(node_id: u64) -> Identity {
    Identity {
        node_id,
        role: Role::Client,
    }
}

/// Logs of the server go to the test's captured output (shown when a test
/// fails); `RUST_LOG` overrides the level.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("govfs_net=debug"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// An echo server: each frame comes back with the same kind and request id
/// and a body of `"<peer id>:<body>"`. Counts handler calls.
fn echo_server(config: ListenerConfig) -> (TcpListenerLoop, Arc<AtomicUsize>) {
    init_logs();
    let calls = Arc::new(AtomicUsize::new(0));
    let handler_calls = Arc::clone(&calls);
    let server = TcpListenerLoop::bind(
        "127.0.0.1:0".parse().unwrap(),
        cluster_key(),
        Identity {
            node_id: SERVER_ID,
            role: Role::Node,
        },
        config,
        move |peer, frame| {
            handler_calls.fetch_add(1, Ordering::SeqCst);
            let mut body = format!("{}:", peer.identity.node_id).into_bytes();
            body.extend_from_slice(&frame.body);
            Some(Frame { body, ..frame })
        },
    )
    .expect("bind");
    (server, calls)
}

fn connect(addr: SocketAddr, key: &ClusterKey, node_id: u64) -> Result<TcpConn, TcpError> {
    TcpConn::connect(addr, key, client(node_id), TIMEOUT)
}

/// One request and its echo.
fn assert_round_trip(conn: &mut TcpConn, request_id: u64) {
    conn.send(FrameKind::Client, request_id, b"ping").unwrap();
    let reply = conn.recv().unwrap();
    assert_eq!(
        (reply.kind, reply.request_id),
        (FrameKind::Client, request_id)
    );
    assert!(reply.body.ends_with(b":ping"), "{:?}", reply.body);
}

fn wait_for_counts(server: &TcpListenerLoop, what: &str, done: impl Fn(&ListenerCounts) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let counts = server.counts();
        if done(&counts) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {counts:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads until the server closes `stream` (EOF or reset); panics if it
/// stays open.
fn assert_closed_by_server(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("server kept the connection open")
            }
            Err(_) => return, // reset: closed too
        }
    }
}

fn raw_stream(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    // Each write_all should leave at once, as a misbehaving peer's would.
    stream.set_nodelay(true).unwrap();
    stream
}

/// A raw socket that completed the handshake through a sans-IO
/// [`Connection`], so the test can then write arbitrary bytes on it.
fn raw_authenticated(addr: SocketAddr, node_id: u64) -> TcpStream {
    let mut stream = raw_stream(addr);
    let mut conn =
        Connection::new_initiator(&cluster_key(), client(node_id), random_nonce().unwrap());
    let mut buf = [0; 4096];
    while !conn.is_authenticated() {
        stream.write_all(&conn.take_transmit()).unwrap();
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "server closed during the handshake");
        conn.receive(&buf[..n]).unwrap();
    }
    stream.write_all(&conn.take_transmit()).unwrap();
    stream
}

fn frame_bytes(kind: FrameKind, request_id: u64, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_frame(kind, request_id, body, &mut bytes);
    bytes
}

#[test]
fn right_key_round_trips_frames_both_ways() {
    let (server, calls) = echo_server(ListenerConfig::default());
    let mut conn = connect(server.local_addr(), &cluster_key(), 7).unwrap();
    assert_eq!(
        conn.peer(),
        Identity {
            node_id: SERVER_ID,
            role: Role::Node
        }
    );

    // A batch of three frames in one write, answered in order.
    conn.queue(FrameKind::Raft, 1, b"one").unwrap();
    conn.queue(FrameKind::Control, 2, b"").unwrap();
    conn.queue(FrameKind::Client, 3, b"three").unwrap();
    conn.flush().unwrap();
    let replies: Vec<Frame> = (0..3).map(|_| conn.recv().unwrap()).collect();
    assert_eq!(
        replies,
        vec![
            Frame {
                kind: FrameKind::Raft,
                request_id: 1,
                body: b"7:one".to_vec()
            },
            Frame {
                kind: FrameKind::Control,
                request_id: 2,
                body: b"7:".to_vec()
            },
            Frame {
                kind: FrameKind::Client,
                request_id: 3,
                body: b"7:three".to_vec()
            },
        ]
    );

    // A body bigger than any socket buffer, so reads and writes are partial.
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| i as u8).collect();
    conn.send(FrameKind::Data, 4, &big).unwrap();
    let reply = conn.recv().unwrap();
    assert_eq!(&reply.body[..2], b"7:");
    assert!(reply.body[2..] == big[..]);

    // Several clients at once, each seen under its own id.
    let mut others: Vec<TcpConn> = (10..14)
        .map(|id| connect(server.local_addr(), &cluster_key(), id).unwrap())
        .collect();
    for (n, other) in others.iter_mut().enumerate() {
        other.send(FrameKind::Client, 9, b"hi").unwrap();
        let expected = format!("{}:hi", 10 + n);
        assert_eq!(other.recv().unwrap().body, expected.as_bytes());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4 + others.len());

    // Nothing more to read: a timeout leaves the connection usable.
    conn.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    assert!(matches!(conn.recv(), Err(TcpError::Timeout)));
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert_round_trip(&mut conn, 5);

    let counts = server.counts();
    assert_eq!(
        (counts.authenticated, counts.refused, counts.failed),
        (5, 0, 0)
    );
    drop(others);
    drop(conn);
    wait_for_counts(&server, "all closed", |c| c.open() == 0);
    server.shutdown();
}

#[test]
fn wrong_key_is_refused_and_others_still_work() {
    let (server, calls) = echo_server(ListenerConfig::default());
    let addr = server.local_addr();

    // The client learns it from the server's proof, with a typed error.
    let err = connect(addr, &wrong_key(), 7).unwrap_err();
    assert!(
        matches!(err, TcpError::Conn(ConnError::Auth(AuthError::BadProof))),
        "{err:?}"
    );
    assert!(err.is_bad_key());
    assert_eq!(
        err.to_string(),
        "authentication failed: peer's proof is wrong: it does not hold the cluster key"
    );
    wait_for_counts(&server, "first refusal", |c| c.refused == 1);

    // A client that ignores the server's proof and answers with a proof
    // made with the wrong key: the server checks it and hangs up.
    let mut stream = raw_stream(addr);
    let my_hello = Hello::new(client(8), random_nonce().unwrap());
    stream
        .write_all(&frame_bytes(
            FrameKind::Auth,
            0,
            &AuthMessage::Hello(my_hello).encode(),
        ))
        .unwrap();
    let mut decoder = FrameDecoder::new();
    let mut buf = [0; 1024];
    let server_hello = loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0);
        decoder.push(&buf[..n]);
        if let Some(frame) = decoder.next_frame().unwrap() {
            match AuthMessage::decode(&frame.body).unwrap() {
                AuthMessage::Hello(hello) => break hello,
                other => panic!("expected the server's hello, got {other:?}"),
            }
        }
    };
    let forged = compute_proof(&wrong_key(), &my_hello, &server_hello, Side::Initiator);
    stream
        .write_all(&frame_bytes(
            FrameKind::Auth,
            0,
            &AuthMessage::Proof(forged).encode(),
        ))
        .unwrap();
    // Try to sneak a request in behind the forged proof.
    stream
        .write_all(&frame_bytes(FrameKind::Client, 1, b"let me in"))
        .unwrap();
    assert_closed_by_server(&mut stream);
    wait_for_counts(&server, "second refusal", |c| c.refused == 2);

    // The server is still serving clients with the key.
    let mut good = connect(addr, &cluster_key(), 9).unwrap();
    assert_round_trip(&mut good, 1);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no refused frame reached the handler"
    );
    let counts = server.counts();
    assert_eq!((counts.authenticated, counts.refused), (1, 2));
}

#[test]
fn bad_bytes_close_only_that_connection() {
    let (server, calls) = echo_server(ListenerConfig::default());
    let addr = server.local_addr();
    let mut bystander = connect(addr, &cluster_key(), 1).unwrap();
    assert_round_trip(&mut bystander, 1);

    // Garbage instead of a hello.
    let mut stream = raw_stream(addr);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_closed_by_server(&mut stream);
    wait_for_counts(&server, "garbage refused", |c| c.refused == 1);
    assert_round_trip(&mut bystander, 2);

    // Authenticated, then garbage.
    let mut stream = raw_authenticated(addr, 2);
    stream
        .write_all(&[0xde, 0xad, 0xbe, 0xef].repeat(10))
        .unwrap();
    assert_closed_by_server(&mut stream);
    wait_for_counts(&server, "garbage after auth", |c| c.failed == 1);
    assert_round_trip(&mut bystander, 3);

    // Authenticated, a good frame, then a frame with a bad crc: the good
    // one is answered, the bad one closes the connection.
    let mut stream = raw_authenticated(addr, 3);
    stream
        .write_all(&frame_bytes(FrameKind::Client, 1, b"fine"))
        .unwrap();
    let mut bad = frame_bytes(FrameKind::Client, 2, b"corrupted");
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    stream.write_all(&bad).unwrap();
    assert_closed_by_server(&mut stream);
    wait_for_counts(&server, "bad crc", |c| c.failed == 2);
    assert_round_trip(&mut bystander, 4);

    // Authenticated, then half a frame and a hang-up.
    let mut stream = raw_authenticated(addr, 4);
    let frame = frame_bytes(FrameKind::Data, 1, &[5; 100]);
    stream.write_all(&frame[..60]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert_closed_by_server(&mut stream);
    wait_for_counts(&server, "truncated frame", |c| c.failed == 3);
    assert_round_trip(&mut bystander, 5);

    // An oversized length before authentication is refused from the header.
    let mut stream = raw_stream(addr);
    let mut huge = frame_bytes(FrameKind::Auth, 0, &[0; 45]);
    huge.truncate(24);
    stream.write_all(&huge).unwrap();
    assert_closed_by_server(&mut stream);
    wait_for_counts(&server, "oversized hello", |c| c.refused == 2);

    // New clients still get in.
    let mut newcomer = connect(addr, &cluster_key(), 5).unwrap();
    assert_round_trip(&mut newcomer, 1);
    assert_round_trip(&mut bystander, 6);
    let counts = server.counts();
    assert_eq!(
        (counts.authenticated, counts.refused, counts.failed),
        (5, 2, 3),
        "{counts:?}"
    );
    // bystander 6 + newcomer 1 + the good frame before the bad crc.
    assert_eq!(calls.load(Ordering::SeqCst), 8);
}

#[test]
fn frames_before_auth_are_refused() {
    // Sans-IO: nothing can be queued before the handshake completes.
    let mut conn = Connection::new_initiator(&cluster_key(), client(1), random_nonce().unwrap());
    assert_eq!(
        conn.queue_frame(FrameKind::Client, 1, b"too early"),
        Err(QueueError::NotAuthenticated)
    );

    // On the wire: a request instead of a hello closes the connection and
    // never reaches the handler.
    let (server, calls) = echo_server(ListenerConfig::default());
    let mut stream = raw_stream(server.local_addr());
    stream
        .write_all(&frame_bytes(FrameKind::Client, 1, b"too early"))
        .unwrap();
    assert_closed_by_server(&mut stream);
    wait_for_counts(&server, "refusal", |c| c.refused == 1);

    // Same after a valid hello but before the proof.
    let mut stream = raw_stream(server.local_addr());
    let hello = Hello::new(client(2), random_nonce().unwrap());
    let mut bytes = frame_bytes(FrameKind::Auth, 0, &AuthMessage::Hello(hello).encode());
    encode_frame(FrameKind::Raft, 1, b"too early", &mut bytes);
    stream.write_all(&bytes).unwrap();
    assert_closed_by_server(&mut stream);
    wait_for_counts(&server, "second refusal", |c| c.refused == 2);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn silent_peer_is_dropped_at_the_handshake_timeout() {
    let (server, _) = echo_server(ListenerConfig {
        handshake_timeout: Duration::from_millis(200),
        poll_interval: Duration::from_millis(20),
        ..ListenerConfig::default()
    });
    let started = Instant::now();
    let mut stream = raw_stream(server.local_addr());
    assert_closed_by_server(&mut stream);
    assert!(started.elapsed() >= Duration::from_millis(200));
    wait_for_counts(&server, "timeout refusal", |c| c.refused == 1);

    // A client that never hears back times out on its side too.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = TcpConn::connect(
        listener.local_addr().unwrap(),
        &cluster_key(),
        client(1),
        Duration::from_millis(200),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            TcpError::Conn(ConnError::HandshakeTimeout {
                awaiting: govfs_net::Awaiting::PeerHello
            })
        ),
        "{err:?}"
    );
}

#[test]
fn shutdown_closes_connections() {
    let (server, _) = echo_server(ListenerConfig {
        poll_interval: Duration::from_millis(20),
        ..ListenerConfig::default()
    });
    let addr = server.local_addr();
    let mut conn = connect(addr, &cluster_key(), 1).unwrap();
    assert_round_trip(&mut conn, 1);
    server.shutdown();
    assert!(matches!(
        conn.recv(),
        Err(TcpError::Closed | TcpError::Io(_))
    ));
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
}
