//! Property tests of the authenticated connection: no input makes it panic,
//! a dead connection stays dead, and the handshake authenticates across any
//! split of the byte streams exactly when both sides hold the same key.

use govfs_net::{
    encode_frame, AuthError, ClusterKey, ConnError, ConnEvent, Connection, FrameKind, Identity,
    Role,
};
use proptest::prelude::*;

fn identity(node_id: u64, role: Role) -> Identity {
    Identity { node_id, role }
}

fn key(bytes: &[u8; 32]) -> ClusterKey {
    ClusterKey::from_bytes(bytes).expect("32 bytes is a valid key")
}

/// The bytes a real initiator sends to an acceptor with nonce `[2; 32]`:
/// (its hello, its proof), found by running the handshake once.
fn initiator_stream(key: &ClusterKey) -> (Vec<u8>, Vec<u8>) {
    let mut i = Connection::new_initiator(key, identity(1, Role::Client), [1; 32]);
    let mut a = Connection::new_acceptor(key, identity(2, Role::Node), [2; 32]);
    let hello = i.take_transmit();
    a.receive(&hello).unwrap();
    i.receive(&a.take_transmit()).unwrap();
    (hello, i.take_transmit())
}

/// Random bytes, or random frames of any kind (some with a flipped byte),
/// after nothing, a valid hello, or a complete valid handshake: so the
/// noise reaches every phase of the connection.
fn acceptor_input() -> impl Strategy<Value = Vec<u8>> {
    let frame = (
        0u16..7,
        proptest::collection::vec(any::<u8>(), 0..80),
        proptest::option::of((any::<prop::sample::Index>(), 1u8..=255)),
    )
        .prop_map(|(kind, body, flip)| {
            let mut bytes = Vec::new();
            let kind = FrameKind::try_from(kind).unwrap_or(FrameKind::Auth);
            encode_frame(kind, 0, &body, &mut bytes);
            if let Some((index, mask)) = flip {
                let at = index.index(bytes.len());
                bytes[at] ^= mask;
            }
            bytes
        });
    let noise = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        proptest::collection::vec(frame, 0..6).prop_map(|frames| frames.concat()),
    ];
    (0u8..3, noise).prop_map(|(phase, noise)| {
        let (hello, proof) = initiator_stream(&key(&[7; 32]));
        let mut bytes = match phase {
            0 => Vec::new(),
            1 => hello,
            _ => [hello, proof].concat(),
        };
        bytes.extend_from_slice(&noise);
        bytes
    })
}

/// Cuts `bytes` at the given points (taken modulo its length, in any order).
fn split_at_points<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

/// Two connections joined by a network that delivers each direction's bytes
/// in order, in chunks whose sizes and direction the schedule picks.
/// Returns each side's first error.
fn run_network(
    i: &mut Connection,
    a: &mut Connection,
    schedule: &[(bool, usize)],
) -> (Option<ConnError>, Option<ConnError>) {
    let mut to_a: Vec<u8> = Vec::new();
    let mut to_i: Vec<u8> = Vec::new();
    let (mut err_i, mut err_a) = (None, None);
    for step in 0.. {
        to_a.extend(i.take_transmit());
        to_i.extend(a.take_transmit());
        if to_a.is_empty() && to_i.is_empty() {
            break;
        }
        let (towards_a, size) = schedule[step % schedule.len()];
        // Deliver the direction the schedule asks for if it has bytes.
        let towards_a = if to_a.is_empty() {
            false
        } else if to_i.is_empty() {
            true
        } else {
            towards_a
        };
        let (pending, receiver, err) = if towards_a {
            (&mut to_a, &mut *a, &mut err_a)
        } else {
            (&mut to_i, &mut *i, &mut err_i)
        };
        let chunk: Vec<u8> = pending.drain(..size.clamp(1, pending.len())).collect();
        if let Err(e) = receiver.receive(&chunk) {
            err.get_or_insert(e);
            // A dead side sends nothing more, and what is in flight to it
            // has nowhere to go.
            pending.clear();
        }
    }
    (err_i, err_a)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_an_acceptor(
        bytes in acceptor_input(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let acceptor = || Connection::new_acceptor(&key(&[7; 32]), identity(2, Role::Node), [2; 32]);
        let mut a = acceptor();
        let mut events = Vec::new();
        let mut first_error = None;
        for chunk in split_at_points(&bytes, &cuts) {
            let result = a.receive(chunk);
            while let Some(event) = a.poll_event() {
                if let ConnEvent::Frame(frame) = &event {
                    prop_assert!(a.peer().is_some());
                    prop_assert_ne!(frame.kind, FrameKind::Auth);
                }
                events.push(event);
            }
            if let Err(err) = result {
                first_error = Some(err);
                break;
            }
            let _ = a.take_transmit();
        }

        // The same bytes in one piece give the same events and error: what
        // a peer delivers does not depend on how its stream was cut.
        let mut whole = acceptor();
        let whole_result = whole.receive(&bytes);
        let whole_events: Vec<ConnEvent> = std::iter::from_fn(|| whole.poll_event()).collect();
        prop_assert_eq!(&whole_events, &events);
        prop_assert_eq!(whole_result.err(), first_error.clone());

        if let Some(err) = first_error {
            // Dead for good: same error, no events, nothing to send.
            prop_assert_eq!(a.receive(&bytes), Err(err.clone()));
            prop_assert_eq!(a.error(), Some(&err));
            prop_assert_eq!(a.poll_event(), None);
            prop_assert!(a.transmit().is_empty());
            prop_assert!(a.queue_frame(FrameKind::Raft, 1, b"x").is_err());
        }
    }

    #[test]
    fn handshake_authenticates_iff_keys_are_equal(
        key_bytes in any::<[u8; 32]>(),
        flip in proptest::option::of((0usize..32, 1u8..=255)),
        nonce_i in any::<[u8; 32]>(),
        nonce_a in any::<[u8; 32]>(),
        ids in (any::<u64>(), any::<u64>()),
        schedule in proptest::collection::vec((any::<bool>(), 1usize..100), 1..40),
    ) {
        prop_assume!(nonce_i != nonce_a);
        let mut other_bytes = key_bytes;
        if let Some((at, mask)) = flip {
            other_bytes[at] ^= mask;
        }
        let mut i = Connection::new_initiator(&key(&key_bytes), identity(ids.0, Role::Client), nonce_i);
        let mut a = Connection::new_acceptor(&key(&other_bytes), identity(ids.1, Role::Node), nonce_a);
        let (err_i, err_a) = run_network(&mut i, &mut a, &schedule);

        if flip.is_none() {
            prop_assert_eq!((err_i, err_a), (None, None));
            prop_assert_eq!(
                i.poll_event(),
                Some(ConnEvent::Authenticated { peer_id: ids.1, peer_role: Role::Node })
            );
            prop_assert_eq!(
                a.poll_event(),
                Some(ConnEvent::Authenticated { peer_id: ids.0, peer_role: Role::Client })
            );
            // And the connection carries frames afterwards.
            i.queue_frame(FrameKind::Client, 5, b"after").unwrap();
            a.receive(&i.take_transmit()).unwrap();
            prop_assert!(matches!(a.poll_event(), Some(ConnEvent::Frame(f)) if f.body == b"after"));
        } else {
            prop_assert_eq!(err_i, Some(ConnError::Auth(AuthError::BadProof)));
            prop_assert_eq!(err_a, None, "the acceptor is left waiting, then times out");
            prop_assert!(!i.is_authenticated() && !a.is_authenticated());
            prop_assert_eq!(i.poll_event(), None);
            prop_assert_eq!(a.poll_event(), None);
        }
    }
}
