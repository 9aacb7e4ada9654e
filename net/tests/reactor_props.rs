//! Random operation sequences against two reactors over a real socket, on
//! both backends. The conn and frame proptests already cut byte streams at
//! random; what this adds is the reactor's own bookkeeping under real IO:
//! a 7-byte receive buffer (every frame arrives in many reads), an output
//! bound small enough that sends are refused and retried, and a close at
//! any point. Checked: frames arrive in order, a prefix of what was sent
//! (all of it unless closed), and every connection ends with exactly one
//! `Closed` on each side.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use govfs_net::{
    BackendKind, ClusterKey, ConnId, ConnLimits, FrameKind, Identity, NetEvent, Reactor,
    ReactorConfig, Role,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    /// A frame with this body length from the client (true) or server.
    Send { from_client: bool, len: usize },
    /// One short poll of each side.
    Poll,
    /// The client closes the connection.
    Close,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (any::<bool>(), 0usize..1500).prop_map(|(from_client, len)| Step::Send { from_client, len }),
        3 => Just(Step::Poll),
        1 => Just(Step::Close),
    ]
}

fn cfg() -> ReactorConfig {
    ReactorConfig {
        limits: ConnLimits {
            max_body_len: 2048,
            max_pending_out: 4096,
        },
        recv_buf_len: 7,
        ..ReactorConfig::default()
    }
}

fn reactor(kind: BackendKind, node_id: u64) -> Option<Reactor> {
    let key = ClusterKey::from_bytes(&[3; 32]).unwrap();
    let local = Identity {
        node_id,
        role: Role::Node,
    };
    Reactor::with_backend(kind, key, local, cfg()).ok()
}

/// One side: its reactor, its connection, frames waiting for room, what it
/// sent and what it received.
struct Side {
    reactor: Reactor,
    conn: Option<ConnId>,
    waiting: VecDeque<(u64, Vec<u8>)>,
    sent: Vec<(u64, Vec<u8>)>,
    received: Vec<(u64, Vec<u8>)>,
    closed: usize,
}

impl Side {
    fn new(reactor: Reactor) -> Self {
        Side {
            reactor,
            conn: None,
            waiting: VecDeque::new(),
            sent: Vec::new(),
            received: Vec::new(),
            closed: 0,
        }
    }

    fn pump(&mut self) {
        if let Some(conn) = self.conn {
            while let Some((id, body)) = self.waiting.front() {
                match self.reactor.send(conn, FrameKind::Data, *id, body) {
                    Ok(()) => {
                        self.sent.extend(self.waiting.pop_front());
                    }
                    Err(err) if err.is_output_full() => break,
                    // Closed: what never left stays unsent.
                    Err(_) => break,
                }
            }
        }
        let mut events = Vec::new();
        self.reactor
            .poll(Duration::from_millis(1), &mut events)
            .unwrap();
        for event in events {
            match event {
                NetEvent::Accepted { conn, .. } | NetEvent::Connected { conn, .. } => {
                    assert!(self.conn.is_none());
                    self.conn = Some(conn);
                }
                NetEvent::Frame { conn, frame } => {
                    assert_eq!(Some(conn), self.conn);
                    self.received.push((frame.request_id, frame.body));
                }
                NetEvent::Closed { conn, reason } => {
                    assert_eq!(Some(conn), self.conn, "{reason}");
                    self.closed += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

fn run(kind: BackendKind, steps: &[Step]) -> Result<(), TestCaseError> {
    let (Some(server), Some(client)) = (reactor(kind, 2), reactor(kind, 1)) else {
        eprintln!("SKIPPED: {kind:?} cannot be set up on this machine");
        return Ok(());
    };
    let mut server = Side::new(server);
    let mut client = Side::new(client);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    server.reactor.listen(listener).unwrap();
    let conn = client.reactor.connect(addr);
    let start = Instant::now();
    while client.conn.is_none() || server.conn.is_none() {
        prop_assert!(start.elapsed() < Duration::from_secs(10), "no handshake");
        client.pump();
        server.pump();
    }
    prop_assert_eq!(client.conn, Some(conn));
    let mut closed = false;
    let mut next_id = 0u64;
    for step in steps {
        match step {
            Step::Send { from_client, len } if !closed => {
                let side = if *from_client {
                    &mut client
                } else {
                    &mut server
                };
                let body: Vec<u8> = (0..*len).map(|i| (i as u64 + next_id) as u8).collect();
                side.waiting.push_back((next_id, body));
                next_id += 1;
            }
            Step::Send { .. } => {}
            Step::Poll => {
                client.pump();
                server.pump();
            }
            Step::Close => {
                if !closed {
                    client.reactor.close(conn);
                    closed = true;
                }
            }
        }
    }
    // Let everything settle: all frames through, or both sides closed.
    let start = Instant::now();
    loop {
        let done = if closed {
            client.closed == 1 && server.closed == 1
        } else {
            client.waiting.is_empty()
                && server.waiting.is_empty()
                && client.received.len() == server.sent.len()
                && server.received.len() == client.sent.len()
        };
        if done {
            break;
        }
        prop_assert!(
            start.elapsed() < Duration::from_secs(10),
            "did not settle: closed {}/{}, received {}/{} of {}/{}",
            client.closed,
            server.closed,
            client.received.len(),
            server.received.len(),
            server.sent.len(),
            client.sent.len()
        );
        client.pump();
        server.pump();
    }
    // A few more turns: nothing else may happen.
    for _ in 0..3 {
        client.pump();
        server.pump();
    }
    for (from, to) in [(&client, &server), (&server, &client)] {
        prop_assert!(to.received.len() <= from.sent.len());
        prop_assert!(
            to.received[..] == from.sent[..to.received.len()],
            "frames out of order or corrupted"
        );
        if !closed {
            prop_assert_eq!(to.received.len(), from.sent.len());
        }
    }
    let expect_closed = usize::from(closed);
    prop_assert_eq!(
        (client.closed, server.closed),
        (expect_closed, expect_closed)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_steps_epoll(steps in prop::collection::vec(step(), 1..60)) {
        run(BackendKind::Epoll, &steps)?;
    }

    #[test]
    fn random_steps_io_uring(steps in prop::collection::vec(step(), 1..60)) {
        run(BackendKind::IoUring, &steps)?;
    }
}
