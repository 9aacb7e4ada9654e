//! The messages nodes send each other in `Raft` frames, `Stamped<NodeMsg>`,
//! round-trip, and their decoder turns any bytes (random, truncated,
//! bit-flipped real messages) into a value or an error, never a panic.
//! (`Stamped<LeaseMsg>`, in `Control` frames: `lease_wire.rs`.)

use govfs_core::codec::decode_exact;
use govfs_core::node::{NodeMsg, Stamped};
use govfs_core::president::{MemberReport, ShardReport, Step, StorageSpace};
use govfs_core::raft::{Entry, Message, MessageBody, Payload, PollAnswer};
use proptest::prelude::*;

fn body() -> impl Strategy<Value = MessageBody> {
    let entry = (
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..32),
    )
        .prop_map(|(term, index, c)| Entry {
            term,
            index,
            payload: if c.is_empty() {
                Payload::Noop
            } else {
                Payload::Command(c)
            },
        });
    prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(last_term, last_index)| MessageBody::Vote {
            last_term,
            last_index
        }),
        any::<bool>().prop_map(|granted| MessageBody::VoteResponse { granted }),
        (
            any::<u64>(),
            any::<u64>(),
            prop::collection::vec(entry, 0..4),
            any::<u64>()
        )
            .prop_map(
                |(prev_index, prev_term, entries, commit)| MessageBody::Append {
                    prev_index,
                    prev_term,
                    entries,
                    commit,
                }
            ),
        (any::<bool>(), any::<u64>(), any::<u64>()).prop_map(|(success, index, hint)| {
            MessageBody::AppendResponse {
                success,
                index,
                hint,
            }
        }),
    ]
}

fn node_msg() -> impl Strategy<Value = NodeMsg> {
    let ids = (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>());
    prop_oneof![
        (ids, body()).prop_map(|((group, from, to, term), body)| NodeMsg::Raft(Message {
            group,
            from,
            to,
            term,
            body,
        })),
        ids.prop_map(|(group, from, term, last)| NodeMsg::Poll(PollAnswer {
            group,
            from,
            term,
            last_term: term,
            last_index: last,
        })),
        (
            ids,
            any::<bool>(),
            prop::option::of((any::<u64>(), any::<u64>()))
        )
            .prop_map(
                |((shard, group, term, commit), leader, space)| NodeMsg::Report(MemberReport {
                    shard,
                    ministry: Some(ShardReport {
                        group,
                        term,
                        leader,
                        commit,
                        commit_term: term,
                        unreachable: vec![shard],
                    }),
                    space: space.map(|(free, total)| StorageSpace { free, total }),
                })
            ),
        (
            any::<u64>(),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..32)
        )
            .prop_map(|(transfer, ministry, command)| NodeMsg::Step {
                transfer,
                step: Step::Detach,
                ministry,
                command,
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn node_messages_round_trip_with_their_lamport_time(msg in node_msg(), lamport in any::<u64>()) {
        let stamped = Stamped { lamport, msg };
        let bytes = postcard::to_stdvec(&stamped).unwrap();
        prop_assert_eq!(decode_exact::<Stamped<NodeMsg>>(&bytes).unwrap(), stamped);
    }

    #[test]
    fn decoders_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        msg in node_msg(),
        lamport in any::<u64>(),
        cut in any::<usize>(),
        flip in any::<(usize, u8)>(),
    ) {
        let _ = decode_exact::<Stamped<NodeMsg>>(&bytes);
        let mut real = postcard::to_stdvec(&Stamped { lamport, msg }).unwrap();
        let i = flip.0 % real.len();
        real[i] ^= flip.1;
        let _ = decode_exact::<Stamped<NodeMsg>>(&real);
        real.truncate(cut % (real.len() + 1));
        let _ = decode_exact::<Stamped<NodeMsg>>(&real);
    }
}
