//! The queue-pair endpoint each end sends the other over TCP before the
//! queue pairs connect: who to talk to (qpn, psn, lid, gid, mtu) and which
//! buffer the peer may RDMA-write into (rkey, addr, len).
//!
//! Fixed layout, 64 bytes, little-endian:
//!
//! ```text
//! offset  size  field
//!      0     4  magic             b"GVRE"
//!      4     2  version           1
//!      6     2  reserved          0
//!      8     4  qpn               queue pair number, 24 bits, >= 2
//!     12     4  psn               first packet sequence number, 24 bits
//!     16     2  lid               port LID (0 on RoCE)
//!     18     1  mtu               enum ibv_mtu: 1 (256) ..= 5 (4096)
//!     19     1  reserved          0
//!     20    16  gid               port GID, network order (all zero: no GRH)
//!     36     4  recv_rkey         rkey of the buffer the peer may write into
//!     40     8  recv_addr         its address in the sender's memory
//!     48     8  recv_len          its length; addr + len must not wrap
//!     56     4  control_slot_len  largest control message the sender accepts
//!     60     4  reserved          0
//! ```

use thiserror::Error;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// First four bytes of an endpoint.
pub const ENDPOINT_MAGIC: [u8; 4] = *b"GVRE";
/// The only endpoint version this code speaks.
pub const ENDPOINT_VERSION: u16 = 1;
/// Size of an endpoint on the wire.
pub const ENDPOINT_LEN: usize = 64;
/// Largest control message slot an endpoint may announce (64 KiB).
pub const MAX_CONTROL_SLOT_LEN: u32 = 64 * 1024;

const MAX_24_BITS: u32 = (1 << 24) - 1;

/// One end of a reliable-connected queue pair, as exchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    pub qpn: u32,
    pub psn: u32,
    pub lid: u16,
    /// `enum ibv_mtu` value of the port's active MTU.
    pub mtu: u8,
    pub gid: [u8; 16],
    pub recv_rkey: u32,
    pub recv_addr: u64,
    pub recv_len: u64,
    pub control_slot_len: u32,
}

/// The endpoint exactly as it lies on the wire.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
struct WireEndpoint {
    magic: [u8; 4],
    version: U16,
    reserved0: U16,
    qpn: U32,
    psn: U32,
    lid: U16,
    mtu: u8,
    reserved1: u8,
    gid: [u8; 16],
    recv_rkey: U32,
    recv_addr: U64,
    recv_len: U64,
    control_slot_len: U32,
    reserved2: U32,
}

const _: () = assert!(size_of::<WireEndpoint>() == ENDPOINT_LEN);

/// Why bytes are not a valid endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EndpointError {
    #[error("endpoint is {len} bytes, expected {ENDPOINT_LEN}")]
    WrongLength { len: usize },
    #[error("bad endpoint magic {found:02x?}, expected {ENDPOINT_MAGIC:02x?}")]
    BadMagic { found: [u8; 4] },
    #[error("unsupported endpoint version {found}, this end speaks {ENDPOINT_VERSION}")]
    UnsupportedVersion { found: u16 },
    #[error("reserved endpoint field at offset {offset} is not zero")]
    ReservedNotZero { offset: usize },
    #[error("queue pair number {found:#x} is not a 24-bit number >= 2")]
    BadQpn { found: u32 },
    #[error("packet sequence number {found:#x} does not fit 24 bits")]
    BadPsn { found: u32 },
    #[error("unknown MTU code {found} (expected 1..=5)")]
    BadMtu { found: u8 },
    #[error("receive buffer at {addr:#x} of {len} bytes wraps the address space")]
    BufferWraps { addr: u64, len: u64 },
    #[error("control slot length {found} is not in 1..={MAX_CONTROL_SLOT_LEN}")]
    BadControlSlotLen { found: u32 },
}

impl EndpointInfo {
    /// The 64 wire bytes.
    pub fn encode(&self) -> [u8; ENDPOINT_LEN] {
        let wire = WireEndpoint {
            magic: ENDPOINT_MAGIC,
            version: U16::new(ENDPOINT_VERSION),
            reserved0: U16::new(0),
            qpn: U32::new(self.qpn),
            psn: U32::new(self.psn),
            lid: U16::new(self.lid),
            mtu: self.mtu,
            reserved1: 0,
            gid: self.gid,
            recv_rkey: U32::new(self.recv_rkey),
            recv_addr: U64::new(self.recv_addr),
            recv_len: U64::new(self.recv_len),
            control_slot_len: U32::new(self.control_slot_len),
            reserved2: U32::new(0),
        };
        let mut out = [0u8; ENDPOINT_LEN];
        out.copy_from_slice(wire.as_bytes());
        out
    }

    /// Decodes and checks an endpoint from the peer: every field in range,
    /// reserved fields zero, exactly [`ENDPOINT_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<EndpointInfo, EndpointError> {
        let wire = WireEndpoint::read_from_bytes(bytes)
            .map_err(|_| EndpointError::WrongLength { len: bytes.len() })?;
        if wire.magic != ENDPOINT_MAGIC {
            return Err(EndpointError::BadMagic { found: wire.magic });
        }
        if wire.version.get() != ENDPOINT_VERSION {
            return Err(EndpointError::UnsupportedVersion {
                found: wire.version.get(),
            });
        }
        if wire.reserved0.get() != 0 {
            return Err(EndpointError::ReservedNotZero { offset: 6 });
        }
        if wire.reserved1 != 0 {
            return Err(EndpointError::ReservedNotZero { offset: 19 });
        }
        if wire.reserved2.get() != 0 {
            return Err(EndpointError::ReservedNotZero { offset: 60 });
        }
        let qpn = wire.qpn.get();
        if !(2..=MAX_24_BITS).contains(&qpn) {
            return Err(EndpointError::BadQpn { found: qpn });
        }
        let psn = wire.psn.get();
        if psn > MAX_24_BITS {
            return Err(EndpointError::BadPsn { found: psn });
        }
        if !(1..=5).contains(&wire.mtu) {
            return Err(EndpointError::BadMtu { found: wire.mtu });
        }
        let (recv_addr, recv_len) = (wire.recv_addr.get(), wire.recv_len.get());
        if recv_addr.checked_add(recv_len).is_none() {
            return Err(EndpointError::BufferWraps {
                addr: recv_addr,
                len: recv_len,
            });
        }
        let control_slot_len = wire.control_slot_len.get();
        if !(1..=MAX_CONTROL_SLOT_LEN).contains(&control_slot_len) {
            return Err(EndpointError::BadControlSlotLen {
                found: control_slot_len,
            });
        }
        Ok(EndpointInfo {
            qpn,
            psn,
            lid: wire.lid.get(),
            mtu: wire.mtu,
            gid: wire.gid,
            recv_rkey: wire.recv_rkey.get(),
            recv_addr,
            recv_len,
            control_slot_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> EndpointInfo {
        EndpointInfo {
            qpn: 0x11,
            psn: 0x00ab_cdef,
            lid: 0,
            mtu: 3,
            gid: [
                0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0xfc, 0, 0xff, 0xfe, 0, 0, 1,
            ],
            recv_rkey: 0x1234,
            recv_addr: 0x7f00_0000_1000,
            recv_len: 1 << 20,
            control_slot_len: 4096,
        }
    }

    #[test]
    fn round_trips_with_fixed_layout() {
        let bytes = sample().encode();
        assert_eq!(&bytes[0..4], b"GVRE");
        assert_eq!(&bytes[4..6], &[1, 0]);
        assert_eq!(&bytes[8..12], &[0x11, 0, 0, 0]);
        assert_eq!(&bytes[12..16], &[0xef, 0xcd, 0xab, 0]);
        assert_eq!(bytes[18], 3);
        assert_eq!(bytes[20], 0xfe);
        assert_eq!(&bytes[48..56], &(1u64 << 20).to_le_bytes());
        assert_eq!(EndpointInfo::decode(&bytes), Ok(sample()));
    }

    #[test]
    fn each_bad_field_has_its_error() {
        let good = sample().encode();
        let with = |offset: usize, patch: &[u8]| {
            let mut bytes = good;
            bytes[offset..offset + patch.len()].copy_from_slice(patch);
            EndpointInfo::decode(&bytes)
        };
        assert_eq!(
            EndpointInfo::decode(&good[..63]),
            Err(EndpointError::WrongLength { len: 63 })
        );
        assert!(matches!(
            with(0, b"GOVF"),
            Err(EndpointError::BadMagic { .. })
        ));
        assert_eq!(
            with(4, &[2, 0]),
            Err(EndpointError::UnsupportedVersion { found: 2 })
        );
        assert_eq!(
            with(6, &[1]),
            Err(EndpointError::ReservedNotZero { offset: 6 })
        );
        assert_eq!(
            with(19, &[1]),
            Err(EndpointError::ReservedNotZero { offset: 19 })
        );
        assert_eq!(
            with(63, &[1]),
            Err(EndpointError::ReservedNotZero { offset: 60 })
        );
        assert_eq!(
            with(8, &[1, 0, 0, 0]),
            Err(EndpointError::BadQpn { found: 1 })
        );
        assert_eq!(
            with(8, &[0, 0, 0, 1]),
            Err(EndpointError::BadQpn { found: 1 << 24 })
        );
        assert_eq!(
            with(12, &[0, 0, 0, 1]),
            Err(EndpointError::BadPsn { found: 1 << 24 })
        );
        assert_eq!(with(18, &[0]), Err(EndpointError::BadMtu { found: 0 }));
        assert_eq!(with(18, &[6]), Err(EndpointError::BadMtu { found: 6 }));
        assert_eq!(
            with(40, &u64::MAX.to_le_bytes()),
            Err(EndpointError::BufferWraps {
                addr: u64::MAX,
                len: 1 << 20
            })
        );
        assert_eq!(
            with(56, &[0, 0, 0, 0]),
            Err(EndpointError::BadControlSlotLen { found: 0 })
        );
        assert_eq!(
            with(56, &(MAX_CONTROL_SLOT_LEN + 1).to_le_bytes()),
            Err(EndpointError::BadControlSlotLen {
                found: MAX_CONTROL_SLOT_LEN + 1
            })
        );
    }

    fn valid_endpoint() -> impl Strategy<Value = EndpointInfo> {
        (
            2u32..=MAX_24_BITS,
            0u32..=MAX_24_BITS,
            any::<u16>(),
            1u8..=5,
            any::<[u8; 16]>(),
            any::<u32>(),
            any::<u64>(),
            1u32..=MAX_CONTROL_SLOT_LEN,
        )
            .prop_flat_map(|(qpn, psn, lid, mtu, gid, rkey, addr, slot)| {
                (0..=u64::MAX - addr).prop_map(move |len| EndpointInfo {
                    qpn,
                    psn,
                    lid,
                    mtu,
                    gid,
                    recv_rkey: rkey,
                    recv_addr: addr,
                    recv_len: len,
                    control_slot_len: slot,
                })
            })
    }

    proptest! {
        #[test]
        fn valid_endpoints_round_trip(info in valid_endpoint()) {
            prop_assert_eq!(EndpointInfo::decode(&info.encode()), Ok(info));
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_accepted_ones_re_encode_exactly(
            bytes in proptest::collection::vec(any::<u8>(), 0..80)
        ) {
            if let Ok(info) = EndpointInfo::decode(&bytes) {
                prop_assert_eq!(&info.encode()[..], &bytes[..]);
            }
        }

        #[test]
        fn one_flipped_byte_in_a_checked_field_is_refused_or_decodes_to_what_it_says(
            info in valid_endpoint(), offset in 0usize..ENDPOINT_LEN, flip in 1u8..=255
        ) {
            let mut bytes = info.encode();
            bytes[offset] ^= flip;
            match EndpointInfo::decode(&bytes) {
                // Accepted only if the changed byte is in a field that takes
                // any value, and then the decoded endpoint is the changed one.
                Ok(decoded) => {
                    let fixed = offset < 8 || offset == 19 || offset >= 60;
                    prop_assert!(!fixed, "accepted a change at fixed offset {}", offset);
                    prop_assert_ne!(decoded, info);
                    prop_assert_eq!(&decoded.encode()[..], &bytes[..]);
                }
                Err(_) => {
                    let checked = offset < 8 || offset == 18 || offset == 19 || offset >= 60;
                    let range = (8..16).contains(&offset) || (40..60).contains(&offset);
                    prop_assert!(checked || range, "refused a change at offset {}", offset);
                }
            }
        }
    }
}
