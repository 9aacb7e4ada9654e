//! Which transport a connection uses: RDMA when both ends have a usable
//! RDMA device (and a build with the `rdma` feature), TCP otherwise.
//!
//! Sans-IO at its core: each end states what it can do in a fixed 8-byte
//! [`TransportOffer`], and [`choose`] turns the two offers into a
//! [`Choice`], the same on both ends. [`negotiate`] is the small blocking
//! driver over an already-connected `TcpStream` (write our offer, read the
//! peer's, choose, log which and why). This module is compiled with and
//! without the `rdma` feature, so a default build still answers
//! "TCP: this build has no rdma feature".
//!
//! When the choice is RDMA, the queue-pair endpoint exchange follows on the
//! same stream (`rdma::Connection::establish`, behind the feature).
//!
//! Offer (8 bytes, little-endian):
//!
//! ```text
//! offset  size  field
//!      0     4  magic     b"GVTO"
//!      4     2  version   1
//!      6     1  rdma      0 NotBuilt, 1 NoDevice, 2 Available
//!      7     1  reserved  0
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;

use thiserror::Error;
use zerocopy::little_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// First four bytes of a [`TransportOffer`].
pub const OFFER_MAGIC: [u8; 4] = *b"GVTO";
/// The only offer version this code speaks.
pub const OFFER_VERSION: u16 = 1;
/// Size of a [`TransportOffer`] on the wire.
pub const OFFER_LEN: usize = 8;

/// What one end can do about RDMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalRdma {
    /// This build has no `rdma` feature.
    NotBuilt,
    /// Built with RDMA, but no device with an active port was found.
    NoDevice,
    /// A device with an active port is there.
    Available,
}

impl LocalRdma {
    /// What this process can do: `NotBuilt` without the `rdma` feature,
    /// otherwise whether a device with an active port 1 exists.
    pub fn probe() -> LocalRdma {
        #[cfg(feature = "rdma")]
        {
            match crate::rdma::usable_device() {
                Some(_) => LocalRdma::Available,
                None => LocalRdma::NoDevice,
            }
        }
        #[cfg(not(feature = "rdma"))]
        {
            LocalRdma::NotBuilt
        }
    }

    fn to_wire(self) -> u8 {
        match self {
            LocalRdma::NotBuilt => 0,
            LocalRdma::NoDevice => 1,
            LocalRdma::Available => 2,
        }
    }

    fn from_wire(value: u8) -> Result<LocalRdma, OfferError> {
        match value {
            0 => Ok(LocalRdma::NotBuilt),
            1 => Ok(LocalRdma::NoDevice),
            2 => Ok(LocalRdma::Available),
            found => Err(OfferError::UnknownRdmaState { found }),
        }
    }
}

/// The offer exactly as it lies on the wire.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct TransportOffer {
    pub magic: [u8; 4],
    pub version: U16,
    pub rdma: u8,
    pub reserved: u8,
}

const _: () = assert!(size_of::<TransportOffer>() == OFFER_LEN);

/// Why bytes are not a valid [`TransportOffer`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum OfferError {
    #[error("transport offer is {len} bytes, expected {OFFER_LEN}")]
    WrongLength { len: usize },
    #[error("bad transport offer magic {found:02x?}, expected {OFFER_MAGIC:02x?}")]
    BadMagic { found: [u8; 4] },
    #[error("unsupported transport offer version {found}, this end speaks {OFFER_VERSION}")]
    UnsupportedVersion { found: u16 },
    #[error("unknown rdma state {found} in transport offer")]
    UnknownRdmaState { found: u8 },
    #[error("reserved byte of transport offer is {found}, expected 0")]
    ReservedNotZero { found: u8 },
}

/// Our offer, ready to write.
pub fn encode_offer(local: LocalRdma) -> [u8; OFFER_LEN] {
    let offer = TransportOffer {
        magic: OFFER_MAGIC,
        version: U16::new(OFFER_VERSION),
        rdma: local.to_wire(),
        reserved: 0,
    };
    let mut out = [0u8; OFFER_LEN];
    out.copy_from_slice(offer.as_bytes());
    out
}

/// The peer's offer, checked field by field.
pub fn decode_offer(bytes: &[u8]) -> Result<LocalRdma, OfferError> {
    let offer = TransportOffer::read_from_bytes(bytes)
        .map_err(|_| OfferError::WrongLength { len: bytes.len() })?;
    if offer.magic != OFFER_MAGIC {
        return Err(OfferError::BadMagic { found: offer.magic });
    }
    if offer.version.get() != OFFER_VERSION {
        return Err(OfferError::UnsupportedVersion {
            found: offer.version.get(),
        });
    }
    if offer.reserved != 0 {
        return Err(OfferError::ReservedNotZero {
            found: offer.reserved,
        });
    }
    LocalRdma::from_wire(offer.rdma)
}

/// Why a connection stays on TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpReason {
    /// This build has no `rdma` feature.
    NotBuilt,
    /// This end has no usable RDMA device.
    NoLocalDevice,
    /// The peer's build has no `rdma` feature.
    PeerNotBuilt,
    /// The peer has no usable RDMA device.
    PeerNoDevice,
}

/// The transport both ends use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Both ends have a device: exchange queue-pair endpoints next.
    Rdma,
    Tcp(TcpReason),
}

impl std::fmt::Display for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Choice::Rdma => "RDMA: both ends have an RDMA device",
            Choice::Tcp(TcpReason::NotBuilt) => "TCP: this build has no rdma feature",
            Choice::Tcp(TcpReason::NoLocalDevice) => "TCP: no RDMA device here",
            Choice::Tcp(TcpReason::PeerNotBuilt) => "TCP: peer's build has no rdma feature",
            Choice::Tcp(TcpReason::PeerNoDevice) => "TCP: peer has no RDMA device",
        })
    }
}

/// The transport for a connection whose ends offered `local` and `peer`.
/// Both ends reach the same transport (the reason differs: each names
/// the side that lacks RDMA from its own point of view; when both lack it,
/// this end's reason comes first).
pub fn choose(local: LocalRdma, peer: LocalRdma) -> Choice {
    match (local, peer) {
        (LocalRdma::NotBuilt, _) => Choice::Tcp(TcpReason::NotBuilt),
        (LocalRdma::NoDevice, _) => Choice::Tcp(TcpReason::NoLocalDevice),
        (LocalRdma::Available, LocalRdma::NotBuilt) => Choice::Tcp(TcpReason::PeerNotBuilt),
        (LocalRdma::Available, LocalRdma::NoDevice) => Choice::Tcp(TcpReason::PeerNoDevice),
        (LocalRdma::Available, LocalRdma::Available) => Choice::Rdma,
    }
}

/// Why [`negotiate`] failed.
#[derive(Debug, Error)]
pub enum NegotiateError {
    #[error("transport negotiation I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("peer sent a bad transport offer: {0}")]
    BadOffer(#[from] OfferError),
}

/// Writes our offer to `stream`, reads the peer's, and returns the choice,
/// logging it (`tracing` at info: which transport and why). Both ends call
/// this; each writes before reading, so neither waits on the other.
pub fn negotiate(stream: &mut TcpStream, local: LocalRdma) -> Result<Choice, NegotiateError> {
    stream.write_all(&encode_offer(local))?;
    let mut buf = [0u8; OFFER_LEN];
    stream.read_exact(&mut buf)?;
    chosen(stream, local, decode_offer(&buf)?)
}

/// [`negotiate`] for the end that speaks second: reads the peer's offer
/// before writing ours. The RDMA data path dials this way, so that no byte
/// of the choice can arrive while the node still reads its handshake.
pub fn negotiate_second(
    stream: &mut TcpStream,
    local: LocalRdma,
) -> Result<Choice, NegotiateError> {
    let mut buf = [0u8; OFFER_LEN];
    stream.read_exact(&mut buf)?;
    let peer = decode_offer(&buf)?;
    stream.write_all(&encode_offer(local))?;
    chosen(stream, local, peer)
}

fn chosen(stream: &TcpStream, local: LocalRdma, peer: LocalRdma) -> Result<Choice, NegotiateError> {
    let choice = choose(local, peer);
    let peer_addr = stream
        .peer_addr()
        .map(|addr| addr.to_string())
        .unwrap_or_else(|_| "unknown".to_string());
    tracing::info!(
        peer = %peer_addr,
        local = ?local,
        remote = ?peer,
        "transport chosen: {choice}"
    );
    Ok(choice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [LocalRdma; 3] = [
        LocalRdma::NotBuilt,
        LocalRdma::NoDevice,
        LocalRdma::Available,
    ];

    #[test]
    fn rdma_only_when_both_ends_have_a_device() {
        for local in ALL {
            for peer in ALL {
                let here = choose(local, peer);
                let there = choose(peer, local);
                let both = local == LocalRdma::Available && peer == LocalRdma::Available;
                assert_eq!(here == Choice::Rdma, both, "{local:?} {peer:?}");
                assert_eq!(here == Choice::Rdma, there == Choice::Rdma);
            }
        }
    }

    #[test]
    fn reasons_name_the_side_that_lacks_rdma() {
        let tcp = |local, peer| choose(local, peer).to_string();
        assert_eq!(
            tcp(LocalRdma::NotBuilt, LocalRdma::Available),
            "TCP: this build has no rdma feature"
        );
        assert_eq!(
            tcp(LocalRdma::NoDevice, LocalRdma::Available),
            "TCP: no RDMA device here"
        );
        assert_eq!(
            tcp(LocalRdma::Available, LocalRdma::NoDevice),
            "TCP: peer has no RDMA device"
        );
        assert_eq!(
            tcp(LocalRdma::Available, LocalRdma::NotBuilt),
            "TCP: peer's build has no rdma feature"
        );
        assert_eq!(
            tcp(LocalRdma::Available, LocalRdma::Available),
            "RDMA: both ends have an RDMA device"
        );
    }

    #[test]
    fn offer_layout_is_fixed() {
        assert_eq!(encode_offer(LocalRdma::Available), *b"GVTO\x01\x00\x02\x00");
        for local in ALL {
            assert_eq!(decode_offer(&encode_offer(local)), Ok(local));
        }
    }

    #[test]
    fn malformed_offers_are_refused() {
        let good = encode_offer(LocalRdma::NoDevice);
        assert_eq!(
            decode_offer(&good[..7]),
            Err(OfferError::WrongLength { len: 7 })
        );
        let mut bad = good;
        bad[0] = b'X';
        assert!(matches!(
            decode_offer(&bad),
            Err(OfferError::BadMagic { .. })
        ));
        let mut bad = good;
        bad[4] = 2;
        assert_eq!(
            decode_offer(&bad),
            Err(OfferError::UnsupportedVersion { found: 2 })
        );
        let mut bad = good;
        bad[6] = 3;
        assert_eq!(
            decode_offer(&bad),
            Err(OfferError::UnknownRdmaState { found: 3 })
        );
        let mut bad = good;
        bad[7] = 1;
        assert_eq!(
            decode_offer(&bad),
            Err(OfferError::ReservedNotZero { found: 1 })
        );
    }

    #[cfg(not(feature = "rdma"))]
    #[test]
    fn default_build_reports_not_built() {
        assert_eq!(LocalRdma::probe(), LocalRdma::NotBuilt);
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_accepts_only_valid_offers(
            bytes in proptest::collection::vec(any::<u8>(), 0..16)
        ) {
            match decode_offer(&bytes) {
                Ok(state) => prop_assert_eq!(&encode_offer(state)[..], &bytes[..]),
                Err(_) => prop_assert!(ALL.iter().all(|s| encode_offer(*s)[..] != bytes[..])),
            }
        }
    }
}
