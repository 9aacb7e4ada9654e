//! The reactor over real sockets on 127.0.0.1. Every test body runs once per
//! backend (`io_uring` and `epoll` submodules); where io_uring cannot be set
//! up the io_uring variant says so and passes.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use govfs_net::{
    random_nonce, BackendKind, ClusterKey, ConnId, ConnLimits, Connection, FrameKind, Identity,
    NetEvent, Reactor, ReactorConfig, Role, SendError,
};

const LIMIT: Duration = Duration::from_secs(20);

fn key() -> ClusterKey {
    ClusterKey::from_bytes(&[7; 32]).unwrap()
}

fn other_key() -> ClusterKey {
    ClusterKey::from_bytes(&[8; 32]).unwrap()
}

fn node(node_id: u64) -> Identity {
    Identity {
        node_id,
        role: Role::Node,
    }
}

/// A reactor on `kind`, or `None` (after saying why) if io_uring cannot be
/// set up here.
fn make(kind: BackendKind, key: ClusterKey, id: u64, cfg: ReactorConfig) -> Option<Reactor> {
    match Reactor::with_backend(kind, key, node(id), cfg) {
        Ok(reactor) => Some(reactor),
        Err(err) if kind == BackendKind::IoUring => {
            eprintln!("SKIPPED: io_uring cannot be set up on this machine: {err}");
            None
        }
        Err(err) => panic!("cannot set up {kind:?}: {err}"),
    }
}

fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Runs every test body once per backend.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn io_uring() {
                super::$name(govfs_net::BackendKind::IoUring);
            }
            #[test]
            fn epoll() {
                super::$name(govfs_net::BackendKind::Epoll);
            }
        }
    )*};
}

both_backends!(
    two_threads_exchange_many_frames_in_order,
    wrong_key_closes_only_that_dialer,
    garbage_before_and_after_the_handshake_closes_only_that_connection,
    adopted_stream_serves_a_dialer,
    waker_and_watched_fd_end_a_long_poll,
    vanished_peer_is_closed_and_refuses_sends,
    refused_dial_and_silent_peer_are_closed,
    connection_limit_drops_the_extra_connection,
);

/// Several reactors driven in turn on one thread, each with its event log.
struct Net<'a> {
    reactors: Vec<&'a mut Reactor>,
    logs: Vec<Vec<NetEvent>>,
}

impl<'a> Net<'a> {
    fn new(reactors: Vec<&'a mut Reactor>) -> Self {
        let logs = reactors.iter().map(|_| Vec::new()).collect();
        Net { reactors, logs }
    }

    /// Polls every reactor in turn until `done` holds, or panics after
    /// [`LIMIT`].
    fn run_until(&mut self, what: &str, mut done: impl FnMut(&[Vec<NetEvent>]) -> bool) {
        let start = Instant::now();
        while !done(&self.logs) {
            assert!(
                start.elapsed() < LIMIT,
                "timed out waiting for {what}; events: {:#?}",
                self.logs
            );
            for (reactor, log) in self.reactors.iter_mut().zip(&mut self.logs) {
                reactor.poll(Duration::from_millis(2), log).unwrap();
            }
        }
    }
}

fn closed_reason(log: &[NetEvent], conn: ConnId) -> Option<&str> {
    log.iter().find_map(|event| match event {
        NetEvent::Closed { conn: c, reason } if *c == conn => Some(reason.as_str()),
        _ => None,
    })
}

fn accepted(log: &[NetEvent]) -> Vec<ConnId> {
    log.iter()
        .filter_map(|event| match event {
            NetEvent::Accepted { conn, .. } => Some(*conn),
            _ => None,
        })
        .collect()
}

fn connected(log: &[NetEvent], conn: ConnId) -> bool {
    log.iter()
        .any(|event| matches!(event, NetEvent::Connected { conn: c, .. } if *c == conn))
}

fn frames(log: &[NetEvent], conn: ConnId) -> Vec<(FrameKind, u64, Vec<u8>)> {
    log.iter()
        .filter_map(|event| match event {
            NetEvent::Frame { conn: c, frame } if *c == conn => {
                Some((frame.kind, frame.request_id, frame.body.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Frames waiting for room in a connection's output buffer.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<(ConnId, FrameKind, u64, Vec<u8>)>,
}

impl Outbox {
    fn push(&mut self, conn: ConnId, kind: FrameKind, request_id: u64, body: Vec<u8>) {
        self.queue.push_back((conn, kind, request_id, body));
    }

    /// Queues in order until one does not fit; the rest waits for a poll.
    fn drain(&mut self, reactor: &mut Reactor) {
        while let Some((conn, kind, request_id, body)) = self.queue.front() {
            match reactor.send(*conn, *kind, *request_id, body) {
                Ok(()) => {
                    self.queue.pop_front();
                }
                Err(err) if err.is_output_full() => return,
                Err(err) => panic!("send failed: {err}"),
            }
        }
    }
}

fn body_for(request_id: u64) -> Vec<u8> {
    let len = (request_id % 97) as usize;
    (0..len).map(|i| (request_id as usize + i) as u8).collect()
}

fn two_threads_exchange_many_frames_in_order(kind: BackendKind) {
    exchange(kind, ReactorConfig::default());
}

/// The same over io_uring with zero-copy sends from 4 KiB on, loopback
/// included (where the kernel copies after all, but the completions and
/// notifications are those of a remote peer).
#[test]
fn zero_copy_sends_arrive_intact_and_in_order() {
    let cfg = ReactorConfig {
        zero_copy: Some(govfs_net::ZeroCopy {
            min_len: 4096,
            loopback: true,
        }),
        ..ReactorConfig::default()
    };
    let zero_copy = exchange(BackendKind::IoUring, cfg);
    if let Some(n) = zero_copy {
        assert!(n > 0, "no send was zero-copy");
    }
}

/// Echoes thousands of small frames and a 1 MiB one between two threads;
/// returns how many sends the client made zero-copy (`None`: the backend
/// cannot be set up here).
fn exchange(kind: BackendKind, cfg: ReactorConfig) -> Option<u64> {
    const SMALL: u64 = 5_000;
    const SERVER_OWN: u64 = 2_000;
    const BIG_ID: u64 = 1 << 40;
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut server = make(kind, key(), 2, cfg.clone())?;
    let mut client = make(kind, key(), 1, cfg)?;
    eprintln!("backend: {}", server.chosen());
    let (listener, addr) = listener();
    server.listen(listener).unwrap();

    // The server echoes every Raft frame and sends its own Control frames;
    // it stops when the client hangs up.
    let server_thread = thread::spawn(move || {
        let mut outbox = Outbox::default();
        let mut events = Vec::new();
        let mut echoed = 0u64;
        let start = Instant::now();
        loop {
            assert!(start.elapsed() < LIMIT, "server timed out");
            outbox.drain(&mut server);
            events.clear();
            server.poll(Duration::from_millis(50), &mut events).unwrap();
            for event in events.drain(..) {
                match event {
                    NetEvent::Accepted { conn, peer } => {
                        assert_eq!(peer, node(1));
                        assert_eq!(server.peer(conn), Some(node(1)));
                        for request_id in 0..SERVER_OWN {
                            outbox.push(conn, FrameKind::Control, request_id, body_for(request_id));
                        }
                    }
                    NetEvent::Frame { conn, frame } => {
                        assert_eq!(frame.kind, FrameKind::Raft);
                        echoed += 1;
                        outbox.push(conn, frame.kind, frame.request_id, frame.body);
                    }
                    NetEvent::Closed { reason, .. } => {
                        assert_eq!(reason, "peer closed the connection");
                        return echoed;
                    }
                    other => panic!("server: unexpected {other:?}"),
                }
            }
        }
    });

    let conn = client.connect(addr);
    let mut events = Vec::new();
    let start = Instant::now();
    while !connected(&events, conn) {
        assert!(start.elapsed() < LIMIT, "no handshake: {events:?}");
        client.poll(Duration::from_millis(50), &mut events).unwrap();
    }
    assert_eq!(client.peer(conn), Some(node(2)));
    let mut outbox = Outbox::default();
    for request_id in 0..SMALL / 2 {
        outbox.push(conn, FrameKind::Raft, request_id, body_for(request_id));
    }
    outbox.push(conn, FrameKind::Raft, BIG_ID, big.clone());
    for request_id in SMALL / 2..SMALL {
        outbox.push(conn, FrameKind::Raft, request_id, body_for(request_id));
    }
    let mut echoes = Vec::new();
    let mut own = Vec::new();
    while echoes.len() < SMALL as usize + 1 || own.len() < SERVER_OWN as usize {
        assert!(
            start.elapsed() < LIMIT,
            "client got {} echoes and {} server frames",
            echoes.len(),
            own.len()
        );
        outbox.drain(&mut client);
        events.clear();
        client.poll(Duration::from_millis(50), &mut events).unwrap();
        for event in events.drain(..) {
            match event {
                NetEvent::Frame { conn: c, frame } => {
                    assert_eq!(c, conn);
                    match frame.kind {
                        FrameKind::Raft => echoes.push((frame.request_id, frame.body)),
                        FrameKind::Control => own.push((frame.request_id, frame.body)),
                        other => panic!("unexpected kind {other:?}"),
                    }
                }
                other => panic!("client: unexpected {other:?}"),
            }
        }
    }
    // In order per connection, bodies intact.
    let mut want = Vec::new();
    want.extend((0..SMALL / 2).map(|id| (id, body_for(id))));
    want.push((BIG_ID, big));
    want.extend((SMALL / 2..SMALL).map(|id| (id, body_for(id))));
    assert!(echoes == want, "echoes out of order or corrupted");
    let want_own: Vec<_> = (0..SERVER_OWN).map(|id| (id, body_for(id))).collect();
    assert!(own == want_own, "server frames out of order or corrupted");

    client.close(conn);
    events.clear();
    client.poll(Duration::from_millis(50), &mut events).unwrap();
    assert_eq!(
        events,
        vec![NetEvent::Closed {
            conn,
            reason: "closed by this node".to_string()
        }]
    );
    assert_eq!(client.open_connections(), 0);
    assert_eq!(server_thread.join().unwrap(), SMALL + 1);
    Some(client.zero_copy_sends())
}

fn wrong_key_closes_only_that_dialer(kind: BackendKind) {
    let Some(mut server) = make(kind, key(), 2, ReactorConfig::default()) else {
        return;
    };
    let mut good = make(kind, key(), 1, ReactorConfig::default()).unwrap();
    let mut bad = make(kind, other_key(), 3, ReactorConfig::default()).unwrap();
    let (listener, addr) = listener();
    server.listen(listener).unwrap();
    let good_conn = good.connect(addr);
    let bad_conn = bad.connect(addr);
    let mut net = Net::new(vec![&mut server, &mut good, &mut bad]);
    net.run_until("the bad dialer to be refused", |logs| {
        connected(&logs[1], good_conn) && closed_reason(&logs[2], bad_conn).is_some()
    });
    let reason = closed_reason(&net.logs[2], bad_conn).unwrap().to_string();
    assert!(reason.contains("authentication"), "reason: {reason}");
    assert!(!net.logs[2]
        .iter()
        .any(|e| matches!(e, NetEvent::Connected { .. })));
    // The server dropped the bad one too (the dialer hung up mid-handshake).
    net.run_until("the server to drop the bad dialer", |logs| {
        logs[0]
            .iter()
            .filter(|e| matches!(e, NetEvent::Closed { .. }))
            .count()
            == 1
            && !accepted(&logs[0]).is_empty()
    });
    let server_conn = accepted(&net.logs[0]);
    assert_eq!(server_conn.len(), 1, "only the good dialer authenticated");
    // The good connection still works both ways.
    net.reactors[1]
        .send(good_conn, FrameKind::Client, 5, b"still here")
        .unwrap();
    net.run_until("the frame", |logs| {
        !frames(&logs[0], server_conn[0]).is_empty()
    });
    net.reactors[0]
        .send(server_conn[0], FrameKind::Client, 5, b"yes")
        .unwrap();
    net.run_until("the reply", |logs| !frames(&logs[1], good_conn).is_empty());
    assert_eq!(
        frames(&net.logs[1], good_conn),
        vec![(FrameKind::Client, 5, b"yes".to_vec())]
    );
}

/// Runs the initiator side of the handshake over a blocking std stream and
/// returns once authenticated (with any extra bytes the peer sent dropped).
fn std_handshake(stream: &mut TcpStream) {
    let mut conn = Connection::new_initiator(&key(), node(9), random_nonce().unwrap());
    let mut buf = [0u8; 4096];
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    while !conn.is_authenticated() {
        stream.write_all(&conn.take_transmit()).unwrap();
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "reactor hung up during the handshake");
        conn.receive(&buf[..n]).unwrap();
    }
    stream.write_all(&conn.take_transmit()).unwrap();
}

fn garbage_before_and_after_the_handshake_closes_only_that_connection(kind: BackendKind) {
    let Some(mut server) = make(kind, key(), 2, ReactorConfig::default()) else {
        return;
    };
    let mut good = make(kind, key(), 1, ReactorConfig::default()).unwrap();
    let (listener, addr) = listener();
    server.listen(listener).unwrap();
    let good_conn = good.connect(addr);
    let mut before = TcpStream::connect(addr).unwrap();
    before
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut after = TcpStream::connect(addr).unwrap();

    let mut net = Net::new(vec![&mut server, &mut good]);
    net.run_until("the good dialer and the garbage", |logs| {
        connected(&logs[1], good_conn)
            && logs[0].iter().any(|e| matches!(e, NetEvent::Closed { .. }))
    });
    let reasons: Vec<String> = net.logs[0]
        .iter()
        .filter_map(|e| match e {
            NetEvent::Closed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("bad frame magic"), "{reasons:?}");

    // Authenticate properly, then send garbage. The handshake runs on this
    // thread while another one polls the reactors.
    let handshake = thread::spawn(move || {
        std_handshake(&mut after);
        after.write_all(&[0xde; 64]).unwrap();
        after
    });
    net.run_until("the authenticated garbage sender to be closed", |logs| {
        logs[0]
            .iter()
            .filter(|e| matches!(e, NetEvent::Closed { .. }))
            .count()
            == 2
    });
    let mut after = handshake.join().unwrap();
    assert_eq!(
        accepted(&net.logs[0]).len(),
        2,
        "good dialer and std handshake"
    );
    let last_reason = net.logs[0]
        .iter()
        .rev()
        .find_map(|e| match e {
            NetEvent::Closed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    assert!(last_reason.contains("bad frame"), "{last_reason}");
    // The garbage senders see their connection end (not a read timeout).
    for stream in [&mut before, &mut after] {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        match stream.read_to_end(&mut Vec::new()) {
            Ok(_) => {}
            Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}"),
        }
    }

    // The good connection is untouched.
    net.reactors[1]
        .send(good_conn, FrameKind::Raft, 1, b"ok")
        .unwrap();
    let server_good = net.logs[0]
        .iter()
        .find_map(|e| match e {
            NetEvent::Accepted { conn, peer } if *peer == node(1) => Some(*conn),
            _ => None,
        })
        .unwrap();
    net.run_until("the good frame", |logs| {
        !frames(&logs[0], server_good).is_empty()
    });
    assert_eq!(net.reactors[0].open_connections(), 1);
}

fn adopted_stream_serves_a_dialer(kind: BackendKind) {
    let Some(mut server) = make(kind, key(), 2, ReactorConfig::default()) else {
        return;
    };
    let mut client = make(kind, key(), 1, ReactorConfig::default()).unwrap();
    let (listener, addr) = listener();
    let (tx, rx) = mpsc::channel();
    let acceptor = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        tx.send(stream).unwrap();
    });
    let conn = client.connect(addr);
    let mut net = Net::new(vec![&mut client]);
    // The dial completes against the std listener's backlog.
    let start = Instant::now();
    let stream = loop {
        net.run_until("a poll", |_| true);
        net.reactors[0]
            .poll(Duration::from_millis(5), &mut net.logs[0])
            .unwrap();
        if let Ok(stream) = rx.try_recv() {
            break stream;
        }
        assert!(start.elapsed() < LIMIT, "std listener accepted nothing");
    };
    acceptor.join().unwrap();
    let adopted = server.adopt(stream).unwrap();
    net.reactors.push(&mut server);
    net.logs.push(Vec::new());
    net.run_until("both handshakes", |logs| {
        connected(&logs[0], conn) && accepted(&logs[1]) == vec![adopted]
    });
    assert_eq!(net.reactors[1].peer(adopted), Some(node(1)));
    net.reactors[1]
        .send(adopted, FrameKind::Data, 77, b"from the adopter")
        .unwrap();
    net.run_until("the frame", |logs| !frames(&logs[0], conn).is_empty());
    assert_eq!(
        frames(&net.logs[0], conn),
        vec![(FrameKind::Data, 77, b"from the adopter".to_vec())]
    );
}

fn waker_and_watched_fd_end_a_long_poll(kind: BackendKind) {
    let Some(mut reactor) = make(kind, key(), 1, ReactorConfig::default()) else {
        return;
    };
    let waker = reactor.waker();
    let waking = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        waker.wake();
        waker.wake();
    });
    let start = Instant::now();
    let mut events = Vec::new();
    while events.is_empty() {
        reactor.poll(Duration::from_secs(30), &mut events).unwrap();
    }
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(events[0], NetEvent::Woken);
    waking.join().unwrap();
    // A wake while nobody polls is kept for the next poll.
    // Also with a timeout past `Instant`'s range.
    reactor.waker().wake();
    events.clear();
    reactor.poll(Duration::MAX, &mut events).unwrap();
    assert_eq!(events, vec![NetEvent::Woken]);

    let (reader, mut writer) = std::io::pipe().unwrap();
    reactor.watch_readable(reader.as_raw_fd(), 42).unwrap();
    events.clear();
    reactor
        .poll(Duration::from_millis(50), &mut events)
        .unwrap();
    assert_eq!(events, vec![], "nothing to read yet");
    let writing = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        writer.write_all(b"x").unwrap();
        writer
    });
    let start = Instant::now();
    while events.is_empty() {
        reactor.poll(Duration::from_secs(30), &mut events).unwrap();
    }
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(events, vec![NetEvent::Readable { token: 42 }]);
    let _writer = writing.join().unwrap();
    // One-shot: the byte is still unread, but nothing more is reported
    // until the fd is watched again.
    events.clear();
    reactor
        .poll(Duration::from_millis(50), &mut events)
        .unwrap();
    assert_eq!(events, vec![]);
    reactor.watch_readable(reader.as_raw_fd(), 43).unwrap();
    reactor.poll(Duration::from_secs(5), &mut events).unwrap();
    assert_eq!(events, vec![NetEvent::Readable { token: 43 }]);
}

fn vanished_peer_is_closed_and_refuses_sends(kind: BackendKind) {
    let Some(mut server) = make(kind, key(), 2, ReactorConfig::default()) else {
        return;
    };
    let mut client = make(kind, key(), 1, ReactorConfig::default()).unwrap();
    let (listener, addr) = listener();
    server.listen(listener).unwrap();
    let conn = client.connect(addr);
    {
        let mut net = Net::new(vec![&mut server, &mut client]);
        net.run_until("the handshake", |logs| {
            connected(&logs[1], conn) && accepted(&logs[0]).len() == 1
        });
    }
    drop(server);
    let mut events = Vec::new();
    let start = Instant::now();
    while closed_reason(&events, conn).is_none() {
        assert!(start.elapsed() < LIMIT, "no Closed: {events:?}");
        client.poll(Duration::from_millis(50), &mut events).unwrap();
    }
    let reason = closed_reason(&events, conn).unwrap();
    assert!(
        reason.contains("peer closed") || reason.contains("reset"),
        "{reason}"
    );
    assert_eq!(
        client.send(conn, FrameKind::Raft, 1, b"anyone?"),
        Err(SendError::Closed(conn))
    );
    assert_eq!(
        client.send(ConnId(999), FrameKind::Raft, 1, b""),
        Err(SendError::Unknown(ConnId(999)))
    );
    client.close(conn);
    events.clear();
    client.poll(Duration::from_millis(20), &mut events).unwrap();
    assert_eq!(events, vec![], "exactly one Closed per connection");
    assert_eq!(client.open_connections(), 0);
}

fn refused_dial_and_silent_peer_are_closed(kind: BackendKind) {
    let cfg = ReactorConfig {
        handshake_timeout: Duration::from_millis(300),
        ..ReactorConfig::default()
    };
    let Some(mut server) = make(kind, key(), 2, cfg.clone()) else {
        return;
    };
    let mut client = make(kind, key(), 1, cfg).unwrap();
    let (dead_listener, dead_addr) = listener();
    drop(dead_listener);
    let refused = client.connect(dead_addr);
    // A dialer that never speaks, and a listener that never answers.
    let (listener, addr) = listener();
    server.listen(listener).unwrap();
    let _silent = TcpStream::connect(addr).unwrap();
    let (mute_listener, mute_addr) = self::listener();
    let mute = client.connect(mute_addr);
    let mut net = Net::new(vec![&mut server, &mut client]);
    net.run_until("refusal and timeouts", |logs| {
        closed_reason(&logs[1], refused).is_some()
            && closed_reason(&logs[1], mute).is_some()
            && logs[0].iter().any(|e| matches!(e, NetEvent::Closed { .. }))
    });
    let reason = closed_reason(&net.logs[1], refused).unwrap();
    assert!(
        reason.contains("connect") && reason.contains("refused"),
        "{reason}"
    );
    let reason = closed_reason(&net.logs[1], mute).unwrap();
    assert!(reason.contains("handshake timed out"), "{reason}");
    let NetEvent::Closed { reason, .. } = net.logs[0].last().unwrap() else {
        panic!("{:?}", net.logs[0]);
    };
    assert!(reason.contains("handshake timed out"), "{reason}");
    assert_eq!(net.reactors[0].open_connections(), 0);
    assert_eq!(net.reactors[1].open_connections(), 0);
    drop(mute_listener);
}

fn connection_limit_drops_the_extra_connection(kind: BackendKind) {
    let cfg = ReactorConfig {
        max_connections: 1,
        limits: ConnLimits {
            max_body_len: 1024,
            max_pending_out: 4096,
        },
        ..ReactorConfig::default()
    };
    let Some(mut server) = make(kind, key(), 2, cfg.clone()) else {
        return;
    };
    let mut client = make(kind, key(), 1, cfg).unwrap();
    let (listener, addr) = listener();
    server.listen(listener).unwrap();
    let first = client.connect(addr);
    let second = client.connect(addr);
    let mut net = Net::new(vec![&mut server, &mut client]);
    net.run_until("the first handshake", |logs| connected(&logs[1], first));
    let reason = closed_reason(&net.logs[1], second).unwrap();
    assert!(reason.contains("limit"), "{reason}");
    // A stranger beyond the server's limit is hung up on.
    let mut extra = TcpStream::connect(addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let start = Instant::now();
    loop {
        net.run_until("a poll", |_| true);
        for (reactor, log) in net.reactors.iter_mut().zip(&mut net.logs) {
            reactor.poll(Duration::from_millis(2), log).unwrap();
        }
        match extra.read(&mut [0; 16]) {
            Ok(0) => break,
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => break,
            _ => assert!(start.elapsed() < LIMIT, "extra connection kept"),
        }
    }
    assert_eq!(net.reactors[0].open_connections(), 1);
    // Bounded output: a body over the limit and a full buffer are typed.
    let err = net.reactors[1]
        .send(first, FrameKind::Data, 1, &[0; 1025])
        .unwrap_err();
    assert!(matches!(err, SendError::Refused { .. }) && !err.is_output_full());
    let mut queued = 0;
    let err = loop {
        match net.reactors[1].send(first, FrameKind::Data, 1, &[0; 1000]) {
            Ok(()) => queued += 1,
            Err(err) => break err,
        }
    };
    assert!(err.is_output_full(), "{err}");
    assert_eq!(queued, 4);
    net.run_until("the queued frames", |logs| {
        accepted(&logs[0])
            .first()
            .is_some_and(|&c| frames(&logs[0], c).len() == 4)
    });
}
