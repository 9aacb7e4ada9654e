//! The chunk data messages (`ChunkRequest`, `ChunkReply`, carried in
//! `ClientMsg::Chunk` and `ServerMsg::Chunk`) round-trip through postcard,
//! and no byte string, truncation or bit flip of a real one makes their
//! decoders panic.

use govfs_core::codec::decode_exact;
use govfs_core::data::{
    ChunkId, ChunkRef, ChunkRefusal, ChunkReply, ChunkRequest, SignedGrant, WriteGrant,
};
use govfs_core::lease::LeaseId;
use govfs_core::meta::types::Ino;
use govfs_core::node::wire::{decode_client_msg, encode_chunk_write};
use govfs_core::node::{ClientMsg, ServerMsg};
use proptest::prelude::*;

fn grant() -> impl Strategy<Value = SignedGrant> {
    (
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        (any::<u64>(), any::<u64>(), any::<u64>()),
        prop::collection::vec(any::<u64>(), 0..4),
        (any::<u64>(), any::<u64>(), any::<u64>()),
        any::<[u8; 32]>(),
    )
        .prop_map(
            |(
                (ministry, term, lease, session),
                (ino, index, version),
                replicas,
                (a, b, t),
                tag,
            )| {
                SignedGrant {
                    grant: WriteGrant {
                        ministry,
                        term,
                        lease: LeaseId(lease),
                        session,
                        chunk: ChunkRef {
                            file: Ino(ino),
                            index,
                        },
                        chunk_id: ChunkId(ino ^ index),
                        version,
                        replicas,
                        range: (a.min(b), a.max(b)),
                        not_after_unix_us: t,
                    },
                    tag,
                }
            },
        )
}

fn request() -> impl Strategy<Value = ChunkRequest> {
    prop_oneof![
        (
            grant(),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..64),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                |(grant, offset, data, write, lamport)| ChunkRequest::Write {
                    grant,
                    offset,
                    data: data.into(),
                    write,
                    lamport,
                }
            ),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<u64>()
        )
            .prop_map(|(c, version, offset, len, lamport)| ChunkRequest::Read {
                chunk: ChunkId(c),
                version,
                offset,
                len,
                lamport,
            }),
        (grant(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(grant, keep, write, lamport)| ChunkRequest::Truncate {
                grant,
                keep,
                write,
                lamport,
            }
        ),
        (grant(), any::<u64>())
            .prop_map(|(grant, lamport)| ChunkRequest::Delete { grant, lamport }),
    ]
}

fn reply() -> impl Strategy<Value = ChunkReply> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(write, stamp, e)| {
            ChunkReply::Written {
                write,
                stamp,
                earliest_uncommitted: e,
            }
        }),
        (
            prop::collection::vec(any::<u8>(), 0..64),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(data, version, lamport)| ChunkReply::Data {
                data,
                version,
                lamport,
            }),
        ".{0,16}".prop_map(|why| ChunkReply::Refused(ChunkRefusal::Grant(why))),
        any::<u64>().prop_map(|lamport| ChunkReply::Deleted { lamport }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(c, have, want)| {
            ChunkReply::Refused(ChunkRefusal::Version {
                chunk: ChunkId(c),
                have,
                want,
            })
        }),
        (any::<u64>(), any::<u64>()).prop_map(|(c, block)| ChunkReply::Refused(
            ChunkRefusal::Corrupt {
                chunk: ChunkId(c),
                block
            }
        )),
    ]
}

proptest! {
    #[test]
    fn chunk_requests_round_trip(req in request()) {
        let msg = ClientMsg::Chunk(req);
        let bytes = postcard::to_stdvec(&msg).unwrap();
        prop_assert_eq!(decode_exact::<ClientMsg>(&bytes).unwrap(), msg);
    }

    #[test]
    fn chunk_replies_round_trip(reply in reply()) {
        let msg = ServerMsg::Chunk(reply);
        let bytes = postcard::to_stdvec(&msg).unwrap();
        prop_assert_eq!(decode_exact::<ServerMsg>(&bytes).unwrap(), msg);
    }

    /// A write encoded straight from the caller's bytes is the derived
    /// encoding of the message, byte for byte.
    #[test]
    fn writes_encoded_from_a_slice_match_the_message(req in request()) {
        if let ChunkRequest::Write { grant, offset, data, write, lamport } = &req {
            let direct = encode_chunk_write(grant, *offset, data, *write, *lamport);
            prop_assert_eq!(direct, postcard::to_stdvec(&ClientMsg::Chunk(req.clone())).unwrap());
        }
    }

    /// The storage node's decoder, which keeps a write's body instead of
    /// copying its data, agrees with the plain one on every message, and
    /// on every truncation and bit flip of one.
    #[test]
    fn the_body_keeping_decoder_agrees_with_the_plain_one(
        req in request(),
        cut in any::<usize>(),
        flip in any::<(usize, u8)>(),
    ) {
        let real = postcard::to_stdvec(&ClientMsg::Chunk(req.clone())).unwrap();
        prop_assert_eq!(decode_client_msg(real.clone()).unwrap(), ClientMsg::Chunk(req));
        let mut flipped = real.clone();
        let i = flip.0 % flipped.len();
        flipped[i] ^= flip.1;
        let mut cut_short = real;
        cut_short.truncate(cut % (cut_short.len() + 1));
        for bytes in [flipped, cut_short] {
            let plain = decode_exact::<ClientMsg>(&bytes).ok();
            prop_assert_eq!(decode_client_msg(bytes).ok(), plain);
        }
    }

    /// Truncations and bit flips of real messages reach deeper than random
    /// bytes do: an error or a value, never a panic.
    #[test]
    fn decoders_never_panic(
        req in request(),
        reply in reply(),
        cut in any::<usize>(),
        flip in any::<(usize, u8)>(),
    ) {
        for mut real in [
            postcard::to_stdvec(&ClientMsg::Chunk(req)).unwrap(),
            postcard::to_stdvec(&ServerMsg::Chunk(reply)).unwrap(),
        ] {
            let i = flip.0 % real.len();
            real[i] ^= flip.1;
            let _ = decode_exact::<ClientMsg>(&real);
            let _ = decode_exact::<ServerMsg>(&real);
            real.truncate(cut % (real.len() + 1));
            let _ = decode_exact::<ClientMsg>(&real);
            let _ = decode_exact::<ServerMsg>(&real);
        }
    }
}

/// Old encodings still decode: `Truncate` came after `Write` and `Read`,
/// `Delete` after `Truncate`, and the `Deleted` reply after `Refused`.
#[test]
fn existing_chunk_variants_keep_their_tags() {
    let read = ChunkRequest::Read {
        chunk: ChunkId(1),
        version: 2,
        offset: 3,
        len: 4,
        lamport: 5,
    };
    let bytes = postcard::to_stdvec(&read).unwrap();
    assert_eq!(bytes[0], 1, "Read is the second request");
    let refused = ChunkReply::Refused(ChunkRefusal::Busy(String::new()));
    let bytes = postcard::to_stdvec(&refused).unwrap();
    assert_eq!(bytes[0], 2, "Refused is the third reply, before Deleted");
}

proptest! {
    /// The data-path question and its answer round-trip, and cut or
    /// bit-flipped answers decode to an error or to some answer, never a
    /// panic.
    #[test]
    fn data_path_messages_round_trip(port in proptest::option::of(any::<u16>()), cut in any::<usize>(), flip in any::<(usize, u8)>()) {
        let ask = postcard::to_stdvec(&ClientMsg::DataPath).unwrap();
        prop_assert_eq!(decode_client_msg(ask).unwrap(), ClientMsg::DataPath);
        let msg = ServerMsg::DataPath(govfs_core::node::DataPathInfo { rdma_port: port });
        let mut bytes = postcard::to_stdvec(&msg).unwrap();
        prop_assert_eq!(decode_exact::<ServerMsg>(&bytes).unwrap(), msg);
        let i = flip.0 % bytes.len();
        bytes[i] ^= flip.1;
        let _ = decode_exact::<ServerMsg>(&bytes);
        bytes.truncate(cut % (bytes.len() + 1));
        let _ = decode_exact::<ServerMsg>(&bytes);
    }
}
