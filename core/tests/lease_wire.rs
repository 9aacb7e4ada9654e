//! The lease wire messages (`LeaseRequest`, `LeaseReply`, `LeaseMsg`, and
//! the `ClientMsg`/`ServerMsg` that carry them) round-trip through postcard,
//! and no byte string makes their decoders panic.

use govfs_core::codec::decode_exact;
use govfs_core::lease::{
    ClerkReply, Echo, Granted, LeaseId, Lock, LockBatch, LockId, LockOp, LockTableSnapshot, Mode,
    NotServing, Region,
};
use govfs_core::meta::types::Ino;
use govfs_core::node::{
    ClientMsg, LeaseMsg, LeaseRefusal, LeaseReply, LeaseRequest, ServerMsg, Stamped,
};
use proptest::prelude::*;

fn region() -> impl Strategy<Value = Region> {
    (any::<u64>(), any::<u64>()).prop_map(|(a, b)| {
        let (s, e) = (a.min(b), a.max(b));
        Region::new(s, e).unwrap_or(Region::WHOLE)
    })
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Read), Just(Mode::Write)]
}

fn request() -> impl Strategy<Value = LeaseRequest> {
    let (g, s, l, d) = (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>());
    prop_oneof![
        (g, any::<u64>(), region(), mode(), s, d, any::<u64>()).prop_map(
            |(ministry, f, region, mode, session, duration, min_index)| LeaseRequest::Acquire {
                ministry,
                file: Ino(f),
                region,
                mode,
                session,
                duration,
                min_index,
            }
        ),
        (g, s, l, mode(), d).prop_map(|(ministry, session, l, mode, duration)| {
            LeaseRequest::Refresh {
                ministry,
                session,
                lease: LeaseId(l),
                mode,
                duration,
            }
        }),
        (g, s, l, mode()).prop_map(|(ministry, session, l, mode)| LeaseRequest::Release {
            ministry,
            session,
            lease: LeaseId(l),
            mode,
        }),
        (g, s).prop_map(|(ministry, session)| LeaseRequest::Watch { ministry, session }),
        (g, s, l, prop::collection::vec(any::<u64>(), 0..8)).prop_map(
            |(ministry, session, l, indexes)| LeaseRequest::Grants {
                ministry,
                session,
                lease: LeaseId(l),
                indexes,
            }
        ),
        (g, any::<u64>(), prop::collection::vec(any::<u64>(), 0..8)).prop_map(
            |(ministry, f, indexes)| LeaseRequest::DeleteGrants {
                ministry,
                file: Ino(f),
                indexes,
                on: (f % 2 == 0).then_some(f / 2),
            }
        ),
    ]
}

fn granted() -> impl Strategy<Value = Granted> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        region(),
        any::<u64>(),
    )
        .prop_map(|(l, session, f, region, duration)| Granted {
            lease: LeaseId(l),
            session,
            file: Ino(f),
            region,
            duration,
        })
}

fn refusal() -> impl Strategy<Value = LeaseRefusal> {
    prop_oneof![
        (any::<u64>(), region(), mode()).prop_map(|(f, region, mode)| LeaseRefusal::Conflict {
            file: Ino(f),
            region,
            mode
        }),
        Just(LeaseRefusal::NotServing(NotServing::NewTermWait)),
        (any::<u64>(), any::<u64>())
            .prop_map(|(got, newest)| LeaseRefusal::StaleTerm { got, newest }),
        any::<u64>().prop_map(|l| LeaseRefusal::Expired(LeaseId(l))),
        any::<u64>().prop_map(|l| LeaseRefusal::Unknown(LeaseId(l))),
        ".{0,20}".prop_map(LeaseRefusal::Full),
        Just(LeaseRefusal::NoClerks),
        Just(LeaseRefusal::Timeout),
    ]
}

fn reply() -> impl Strategy<Value = LeaseReply> {
    prop_oneof![
        (granted(), any::<u64>(), any::<u64>(), any::<u32>()).prop_map(
            |(granted, term, node, drift_ppm)| LeaseReply::Granted {
                granted,
                term,
                node,
                drift_ppm,
            }
        ),
        (any::<u64>(), any::<u64>()).prop_map(|(l, duration)| LeaseReply::Refreshed {
            lease: LeaseId(l),
            duration
        }),
        refusal().prop_map(LeaseReply::Refused),
        (
            proptest::option::of(any::<u64>()),
            proptest::collection::vec(any::<u64>(), 0..4)
        )
            .prop_map(|(hint, members)| LeaseReply::Elsewhere { hint, members }),
        proptest::collection::vec(any::<u64>(), 0..8)
            .prop_map(|v| LeaseReply::Revoked(v.into_iter().map(LeaseId).collect())),
        Just(LeaseReply::Done),
    ]
}

fn lock() -> impl Strategy<Value = Lock> {
    (any::<u64>(), any::<u64>(), region(), any::<u64>()).prop_map(|(id, f, region, index)| Lock {
        id: LockId(id),
        file: Ino(f),
        region,
        index,
    })
}

fn lease_msg() -> impl Strategy<Value = LeaseMsg> {
    let batch = (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(proptest::collection::vec(lock(), 0..4)),
        proptest::collection::vec(
            prop_oneof![
                lock().prop_map(LockOp::Lock),
                any::<u64>().prop_map(|l| LockOp::Unlock(LockId(l)))
            ],
            0..6,
        ),
        proptest::option::of((any::<u64>(), any::<u64>())),
    )
        .prop_map(|(term, minister, sent_at, table, ops, echo)| LockBatch {
            term,
            minister,
            sent_at,
            table: table.map(|locks| LockTableSnapshot {
                next_seq: sent_at / 3,
                locks,
            }),
            first_seq: term ^ sent_at,
            ops,
            awaiting: vec![LockId(minister)],
            echo: echo.map(|(incarnation, sent_at)| Echo {
                incarnation,
                sent_at,
            }),
        });
    let reply = (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(any::<u64>()),
        proptest::collection::vec(any::<u64>(), 0..4),
    )
        .prop_map(|(term, clerk, sent_at, next_seq, clear)| ClerkReply {
            term,
            clerk,
            incarnation: sent_at ^ 7,
            sent_at,
            minister_sent_at: next_seq,
            next_seq,
            clear: clear.into_iter().map(LockId).collect(),
        });
    prop_oneof![
        (any::<u64>(), any::<u64>(), batch).prop_map(|(ministry, to, batch)| LeaseMsg::LockBatch {
            ministry,
            to,
            batch
        }),
        (any::<u64>(), any::<u64>(), reply).prop_map(|(ministry, to, reply)| {
            LeaseMsg::ClerkReply {
                ministry,
                to,
                reply,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn lease_requests_round_trip(req in request()) {
        let msg = ClientMsg::Lease(req);
        let bytes = postcard::to_stdvec(&msg).unwrap();
        prop_assert_eq!(decode_exact::<ClientMsg>(&bytes).unwrap(), msg);
    }

    #[test]
    fn lease_replies_round_trip(reply in reply()) {
        let msg = ServerMsg::Lease(reply);
        let bytes = postcard::to_stdvec(&msg).unwrap();
        prop_assert_eq!(decode_exact::<ServerMsg>(&bytes).unwrap(), msg);
    }

    #[test]
    fn lease_messages_round_trip(msg in lease_msg(), lamport in any::<u64>()) {
        // As nodes send them: with the sender's Lamport time.
        let stamped = Stamped { lamport, msg };
        let bytes = postcard::to_stdvec(&stamped).unwrap();
        prop_assert_eq!(decode_exact::<Stamped<LeaseMsg>>(&bytes).unwrap(), stamped);
    }

    /// Any bytes: an error or a value, never a panic. Truncations and bit
    /// flips of real messages reach deeper than random bytes do.
    #[test]
    fn decoders_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        msg in lease_msg(),
        cut in any::<usize>(),
        flip in any::<(usize, u8)>(),
    ) {
        let _ = decode_exact::<ClientMsg>(&bytes);
        let _ = decode_exact::<ServerMsg>(&bytes);
        let _ = decode_exact::<LeaseMsg>(&bytes);
        let _ = decode_exact::<Stamped<LeaseMsg>>(&bytes);
        let mut real = postcard::to_stdvec(&Stamped { lamport: cut as u64, msg }).unwrap();
        if !real.is_empty() {
            let i = flip.0 % real.len();
            real[i] ^= flip.1;
        }
        let _ = decode_exact::<Stamped<LeaseMsg>>(&real);
        real.truncate(cut % (real.len() + 1));
        let _ = decode_exact::<Stamped<LeaseMsg>>(&real);
    }
}

/// Old encodings still decode: the new variants come last.
#[test]
fn existing_variants_keep_their_tags() {
    let bytes = postcard::to_stdvec(&ClientMsg::Status).unwrap();
    assert_eq!(bytes, vec![0]);
    let bytes = postcard::to_stdvec(&ServerMsg::Error("x".into())).unwrap();
    assert_eq!(bytes[0], 5);
    let bytes = postcard::to_stdvec(&ClientMsg::Lease(LeaseRequest::Watch {
        ministry: 1,
        session: 2,
    }))
    .unwrap();
    assert_eq!(bytes[0], 5, "Lease comes after Transfer");
}
