//! Message codec: Raft [`Message`]s to bytes and back, sans-IO.
//!
//! The encoding is postcard. Decoding treats its input as hostile: it never
//! panics, rejects trailing bytes (a frame must hold exactly one value, or the
//! framing layer above is broken), and checks the invariants the Raft core
//! relies on but serde cannot express, so a bad peer is stopped at the edge.

use crate::raft::{Entry, Index, Membership, Message, MessageBody, NodeId, Payload, Term};
use serde::{de::DeserializeOwned, Serialize};

/// Largest message [`decode_message`] accepts. Bounds memory per frame; a
/// snapshot larger than this must be sent in chunks.
pub const MAX_MESSAGE_LEN: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("input of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed encoding: {0}")]
    Malformed(#[from] postcard::Error),
    #[error("{0} trailing bytes after a complete value")]
    TrailingBytes(usize),
    #[error("invalid message: {0}")]
    Invalid(#[from] Invalid),
}

/// A well-formed value that breaks an invariant of the Raft types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("entry {position} has index {found}, expected {expected}")]
    IndexGap {
        position: usize,
        expected: Index,
        found: Index,
    },
    #[error("entry index overflows after {prev_index}")]
    IndexOverflow { prev_index: Index },
    #[error("entry {index} has term {term}, below the preceding term {prev}")]
    TermDecreases {
        index: Index,
        term: Term,
        prev: Term,
    },
    #[error("entry {index} has term {term}, above the sender's term {sender}")]
    TermAboveSender {
        index: Index,
        term: Term,
        sender: Term,
    },
    #[error("membership {list} are not sorted without duplicates")]
    Unsorted { list: &'static str },
    #[error("node {0} is both voter and learner")]
    VoterIsLearner(NodeId),
}

/// Appends the postcard encoding of `value` to `out`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail and our types have no fallible Serialize
    // impls (every sequence has a known length), so an error is a bug here.
    postcard::to_io(value, &mut *out).expect("postcard encoding into a Vec cannot fail");
}

/// The postcard encoding of `value` in a buffer of exactly its size: a
/// first pass measures it (no bytes are copied), so a message carrying a
/// megabyte of chunk data is copied once, not again each time a growing
/// buffer doubles (each a fresh allocation the kernel must zero).
pub fn encode_sized<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let len = encoded_len(value);
    let mut out = Vec::with_capacity(len);
    encode_into(value, &mut out);
    debug_assert_eq!(out.len(), len);
    out
}

/// The length of `value`'s postcard encoding, measured without encoding it.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    postcard::experimental::serialized_size(value).expect("postcard measures what it can encode")
}

/// Decodes exactly one `T` from `bytes`: trailing bytes are an error.
pub fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, rest) = postcard::take_from_bytes::<T>(bytes)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

pub fn encode_message(msg: &Message, out: &mut Vec<u8>) {
    encode_into(msg, out);
}

/// Decodes one message and checks its invariants (see [`validate_message`]).
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    let msg: Message = decode_exact(bytes)?;
    validate_message(&msg)?;
    Ok(msg)
}

/// Checks what the Raft core assumes of a message from a peer: appended
/// entries are consecutive after `prev_index`, their terms never decrease (from
/// `prev_term` on) nor exceed the sender's term, and every membership is valid.
pub fn validate_message(msg: &Message) -> Result<(), Invalid> {
    match &msg.body {
        MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            ..
        } => {
            validate_entries(*prev_index, *prev_term, entries)?;
            if let Some(e) = entries.iter().find(|e| e.term > msg.term) {
                return Err(Invalid::TermAboveSender {
                    index: e.index,
                    term: e.term,
                    sender: msg.term,
                });
            }
            Ok(())
        }
        MessageBody::InstallSnapshot { snapshot } => validate_membership(&snapshot.meta.membership),
        MessageBody::PreVote { .. }
        | MessageBody::PreVoteResponse { .. }
        | MessageBody::Vote { .. }
        | MessageBody::VoteResponse { .. }
        | MessageBody::AppendResponse { .. }
        | MessageBody::SnapshotResponse { .. } => Ok(()),
    }
}

/// Entries must follow `(prev_index, prev_term)` without gaps and with
/// non-decreasing terms, as in any Raft log.
pub fn validate_entries(
    prev_index: Index,
    prev_term: Term,
    entries: &[Entry],
) -> Result<(), Invalid> {
    let (mut expected, mut term) = (prev_index, prev_term);
    for (position, e) in entries.iter().enumerate() {
        expected = expected
            .checked_add(1)
            .ok_or(Invalid::IndexOverflow { prev_index })?;
        if e.index != expected {
            return Err(Invalid::IndexGap {
                position,
                expected,
                found: e.index,
            });
        }
        if e.term < term {
            return Err(Invalid::TermDecreases {
                index: e.index,
                term: e.term,
                prev: term,
            });
        }
        term = e.term;
        if let Payload::Config(m) = &e.payload {
            validate_membership(m)?;
        }
    }
    Ok(())
}

/// Voters and learners each strictly increasing, and disjoint.
pub fn validate_membership(m: &Membership) -> Result<(), Invalid> {
    for (list, ids) in [("voters", &m.voters), ("learners", &m.learners)] {
        if ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Invalid::Unsorted { list });
        }
    }
    match m.learners.iter().find(|l| m.is_voter(**l)) {
        Some(l) => Err(Invalid::VoterIsLearner(*l)),
        None => Ok(()),
    }
}

/// Proptest strategies for the Raft types, shared with the WAL tests.
#[cfg(test)]
pub(crate) mod strategies {
    use crate::raft::*;
    use proptest::prelude::*;

    pub fn membership() -> impl Strategy<Value = Membership> {
        (
            proptest::collection::vec(0u64..16, 0..6),
            proptest::collection::vec(0u64..16, 0..4),
        )
            .prop_map(|(v, l)| Membership::new(v, l))
    }

    pub fn payload() -> impl Strategy<Value = Payload> {
        prop_oneof![
            Just(Payload::Noop),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Payload::Command),
            membership().prop_map(Payload::Config),
        ]
    }

    /// `len` consecutive entries after `prev_index`, terms non-decreasing from `prev_term`.
    pub fn entries(
        prev_index: Index,
        prev_term: Term,
        len: usize,
    ) -> impl Strategy<Value = Vec<Entry>> {
        proptest::collection::vec((0u64..3, payload()), len).prop_map(move |steps| {
            let mut term = prev_term;
            (prev_index + 1..)
                .zip(steps)
                .map(|(index, (bump, payload))| {
                    term += bump;
                    Entry {
                        term,
                        index,
                        payload,
                    }
                })
                .collect()
        })
    }

    pub fn hard_state() -> impl Strategy<Value = HardState> {
        (any::<u64>(), proptest::option::of(any::<u64>()))
            .prop_map(|(term, vote)| HardState { term, vote })
    }

    pub fn snapshot_meta() -> impl Strategy<Value = SnapshotMeta> {
        (any::<u64>(), any::<u64>(), membership()).prop_map(|(index, term, membership)| {
            SnapshotMeta {
                index,
                term,
                membership,
            }
        })
    }

    pub fn body() -> impl Strategy<Value = MessageBody> {
        let append = (0u64..1 << 40, 0u64..1 << 20, 0usize..5, any::<u64>()).prop_flat_map(
            |(prev_index, prev_term, n, commit)| {
                entries(prev_index, prev_term, n).prop_map(move |entries| MessageBody::Append {
                    prev_index,
                    prev_term,
                    entries,
                    commit,
                })
            },
        );
        let snapshot = (
            snapshot_meta(),
            proptest::collection::vec(any::<u8>(), 0..128),
        )
            .prop_map(|(meta, data)| MessageBody::InstallSnapshot {
                snapshot: Snapshot { meta, data },
            });
        prop_oneof![
            (any::<u64>(), any::<u64>()).prop_map(|(last_term, last_index)| MessageBody::PreVote {
                last_term,
                last_index
            }),
            any::<bool>().prop_map(|granted| MessageBody::PreVoteResponse { granted }),
            (any::<u64>(), any::<u64>()).prop_map(|(last_term, last_index)| MessageBody::Vote {
                last_term,
                last_index
            }),
            any::<bool>().prop_map(|granted| MessageBody::VoteResponse { granted }),
            append,
            (any::<bool>(), any::<u64>(), any::<u64>()).prop_map(|(success, index, hint)| {
                MessageBody::AppendResponse {
                    success,
                    index,
                    hint,
                }
            }),
            snapshot,
            any::<u64>().prop_map(|index| MessageBody::SnapshotResponse { index }),
        ]
    }

    /// Valid messages: the sender's term is at least every appended entry's term.
    pub fn message() -> impl Strategy<Value = Message> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            0u64..1 << 20,
            body(),
        )
            .prop_map(|(group, from, to, extra, body)| {
                let floor = match &body {
                    MessageBody::Append {
                        prev_term, entries, ..
                    } => entries.last().map_or(*prev_term, |e| e.term),
                    _ => 0,
                };
                Message {
                    group,
                    from,
                    to,
                    term: floor + extra,
                    body,
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{HardState, Snapshot, SnapshotMeta};
    use proptest::prelude::*;

    fn append(prev_index: Index, entries: Vec<Entry>) -> Message {
        Message {
            group: 1,
            from: 2,
            to: 3,
            term: 9,
            body: MessageBody::Append {
                prev_index,
                prev_term: 1,
                entries,
                commit: 4,
            },
        }
    }

    fn entry(term: Term, index: Index) -> Entry {
        Entry {
            term,
            index,
            payload: Payload::Command(vec![index as u8; 3]),
        }
    }

    fn round_trip(msg: &Message) -> Result<Message, DecodeError> {
        let mut buf = Vec::new();
        encode_message(msg, &mut buf);
        decode_message(&buf)
    }

    #[test]
    fn append_round_trips() {
        let msg = append(5, vec![entry(1, 6), entry(2, 7), entry(2, 8)]);
        assert_eq!(round_trip(&msg), Ok(msg));
    }

    #[test]
    fn snapshot_round_trips() {
        let meta = SnapshotMeta {
            index: 10,
            term: 3,
            membership: Membership::new(vec![1, 2, 3], vec![4]),
        };
        let msg = Message {
            group: 0,
            from: 1,
            to: 2,
            term: 3,
            body: MessageBody::InstallSnapshot {
                snapshot: Snapshot {
                    meta,
                    data: vec![7; 100],
                },
            },
        };
        assert_eq!(round_trip(&msg), Ok(msg));
    }

    #[test]
    fn encode_appends_to_existing_bytes() {
        let msg = append(0, vec![]);
        let mut buf = vec![0xAA];
        encode_message(&msg, &mut buf);
        assert_eq!(buf[0], 0xAA);
        assert_eq!(decode_message(&buf[1..]), Ok(msg));
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut buf = Vec::new();
        encode_message(&append(0, vec![]), &mut buf);
        buf.extend_from_slice(&[0, 0]);
        assert_eq!(decode_message(&buf), Err(DecodeError::TrailingBytes(2)));
    }

    #[test]
    fn rejects_truncated_input() {
        let mut buf = Vec::new();
        encode_message(&append(5, vec![entry(1, 6)]), &mut buf);
        for cut in 0..buf.len() {
            assert!(
                matches!(decode_message(&buf[..cut]), Err(DecodeError::Malformed(_))),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn rejects_oversized_input() {
        let buf = vec![0; MAX_MESSAGE_LEN + 1];
        assert!(matches!(
            decode_message(&buf),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn rejects_gap_in_entries() {
        let msg = append(5, vec![entry(1, 6), entry(1, 8)]);
        assert_eq!(
            round_trip(&msg),
            Err(DecodeError::Invalid(Invalid::IndexGap {
                position: 1,
                expected: 7,
                found: 8
            }))
        );
        let msg = append(5, vec![entry(1, 5)]);
        assert!(matches!(
            round_trip(&msg),
            Err(DecodeError::Invalid(Invalid::IndexGap { .. }))
        ));
    }

    #[test]
    fn rejects_decreasing_terms() {
        let msg = append(5, vec![entry(2, 6), entry(1, 7)]);
        assert_eq!(
            round_trip(&msg),
            Err(DecodeError::Invalid(Invalid::TermDecreases {
                index: 7,
                term: 1,
                prev: 2
            }))
        );
        // The first entry may not fall below prev_term either.
        let msg = append(5, vec![entry(0, 6)]);
        assert!(matches!(
            round_trip(&msg),
            Err(DecodeError::Invalid(Invalid::TermDecreases { .. }))
        ));
    }

    #[test]
    fn rejects_entry_term_above_sender() {
        let msg = append(5, vec![entry(10, 6)]);
        assert!(matches!(
            round_trip(&msg),
            Err(DecodeError::Invalid(Invalid::TermAboveSender { .. }))
        ));
    }

    #[test]
    fn rejects_index_overflow() {
        let msg = append(u64::MAX, vec![entry(1, 0)]);
        assert!(matches!(
            round_trip(&msg),
            Err(DecodeError::Invalid(Invalid::IndexOverflow { .. }))
        ));
    }

    #[test]
    fn rejects_bad_membership() {
        let bad = |voters, learners| {
            let e = Entry {
                term: 1,
                index: 1,
                payload: Payload::Config(Membership { voters, learners }),
            };
            round_trip(&append(0, vec![e]))
        };
        assert_eq!(
            bad(vec![2, 1], vec![]),
            Err(Invalid::Unsorted { list: "voters" }.into())
        );
        assert_eq!(
            bad(vec![1, 1], vec![]),
            Err(Invalid::Unsorted { list: "voters" }.into())
        );
        assert_eq!(
            bad(vec![1], vec![3, 3]),
            Err(Invalid::Unsorted { list: "learners" }.into())
        );
        assert_eq!(
            bad(vec![1, 2], vec![2]),
            Err(Invalid::VoterIsLearner(2).into())
        );
        assert!(bad(vec![1, 2], vec![3]).is_ok());
    }

    #[test]
    fn decode_exact_reuses_for_other_types() {
        let hs = HardState {
            term: 4,
            vote: Some(2),
        };
        let mut buf = Vec::new();
        encode_into(&hs, &mut buf);
        assert_eq!(decode_exact::<HardState>(&buf), Ok(hs));
        buf.push(1);
        assert_eq!(
            decode_exact::<HardState>(&buf),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_message(&bytes);
        }

        #[test]
        fn valid_messages_round_trip(msg in strategies::message()) {
            prop_assert_eq!(round_trip(&msg), Ok(msg));
        }

        #[test]
        fn mutated_encodings_never_panic(msg in strategies::message(), pos in any::<usize>(), byte in any::<u8>()) {
            let mut buf = Vec::new();
            encode_message(&msg, &mut buf);
            let pos = pos % buf.len();
            buf[pos] = byte;
            if let Ok(decoded) = decode_message(&buf) {
                prop_assert!(validate_message(&decoded).is_ok());
            }
        }
    }
}
