//! Mutual challenge-response authentication with the cluster key, sans-IO.
//!
//! Each side sends a [`Hello`] carrying a fresh random nonce, then proves it
//! holds the key with an HMAC-SHA256 over both hellos. Because both nonces
//! are in the MAC input, a proof recorded on one connection is worthless on
//! any other; because the sender's direction is in it too, a peer cannot
//! answer us with our own proof (reflection). The key itself never crosses
//! the wire. Byte layouts are in the crate documentation.
//!
//! The acceptor proves itself first (together with its hello), and the
//! initiator proves itself only after checking that proof: a client with the
//! wrong key learns so from a typed [`AuthError::BadProof`] instead of an
//! unexplained close, and a server without the key never gets a proof out of
//! a real node.
//!
//! [`Handshake`] does no IO and reads no clock or random source: the caller
//! passes the nonce in and enforces the timeout, using
//! [`Handshake::awaiting`] to say what was missing.

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;
use zerocopy::little_endian::{U16, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

type HmacSha256 = Hmac<Sha256>;

/// Version of the handshake carried in every [`Hello`].
pub const AUTH_VERSION: u16 = 1;
/// Bytes of the random nonce in a [`Hello`].
pub const NONCE_LEN: usize = 32;
/// Bytes of an HMAC-SHA256 proof.
pub const PROOF_LEN: usize = 32;
/// Fewest bytes of key material [`ClusterKey`] accepts: the HMAC-SHA256
/// output size, so the key is never the weak point.
pub const MIN_KEY_LEN: usize = 32;
/// First bytes of every MAC input, so these MACs can never be confused with
/// MACs the same key makes for another purpose (e.g. storage grants).
pub const TRANSCRIPT_CONTEXT: &[u8] = b"govfs-auth-v1";
/// Last bytes of the MAC input of the initiator's proof.
pub const INITIATOR_TAG: &[u8] = b"initiator";
/// Last bytes of the MAC input of the acceptor's proof.
pub const ACCEPTOR_TAG: &[u8] = b"acceptor";
/// Encoded size of a hello message (an Auth frame body).
pub const HELLO_LEN: usize = 44;
/// Encoded size of a proof message (an Auth frame body).
pub const PROOF_MSG_LEN: usize = 1 + PROOF_LEN;
/// Largest Auth frame body; the decoder limit while the handshake runs.
pub const MAX_AUTH_BODY_LEN: u32 = HELLO_LEN as u32;

/// A handshake nonce. Must be fresh and unpredictable for every connection
/// (see [`random_nonce`]); tests pass fixed values.
pub type Nonce = [u8; NONCE_LEN];

/// A fresh nonce from the operating system's random source.
pub fn random_nonce() -> Result<Nonce, getrandom::Error> {
    let mut nonce = [0; NONCE_LEN];
    getrandom::fill(&mut nonce)?;
    Ok(nonce)
}

/// Why a key could not be loaded. Never contains key material.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cluster key has {len} bytes, at least {min} are required")]
    TooShort { len: usize, min: usize },
    #[error("cluster key is not hex: bad character at offset {offset}")]
    InvalidHex { offset: usize },
    #[error("cluster key hex has an odd number of digits ({digits})")]
    OddHexLength { digits: usize },
    #[error("cannot read cluster key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot get random bytes for a new cluster key: {0}")]
    Random(getrandom::Error),
}

/// The shared secret of a cluster: every node and client holds it, and a
/// process without it cannot complete a handshake.
///
/// `Debug` prints only the length. The bytes are overwritten when dropped,
/// which keeps them out of freed heap memory (not out of swap or core dumps).
#[derive(Clone)]
pub struct ClusterKey {
    bytes: Box<[u8]>,
}

impl ClusterKey {
    /// Raw key material, at least [`MIN_KEY_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort {
                len: bytes.len(),
                min: MIN_KEY_LEN,
            });
        }
        Ok(ClusterKey {
            bytes: bytes.into(),
        })
    }

    /// Key material written as hex digits (either case), surrounding
    /// whitespace ignored: at least 64 digits.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let text = text.trim_ascii();
        let digits = text.as_bytes();
        let pairs = digits.chunks_exact(2);
        if !pairs.remainder().is_empty() {
            return Err(KeyError::OddHexLength {
                digits: digits.len(),
            });
        }
        let mut bytes = Vec::with_capacity(digits.len() / 2);
        for (pair_index, pair) in pairs.enumerate() {
            let offset = pair_index * 2;
            let high = hex_value(pair[0]).ok_or(KeyError::InvalidHex { offset })?;
            let low = hex_value(pair[1]).ok_or(KeyError::InvalidHex { offset: offset + 1 })?;
            bytes.push(high << 4 | low);
        }
        let key = Self::from_bytes(&bytes);
        wipe(&mut bytes);
        key
    }

    /// Reads a key file holding the key as hex (as written by
    /// [`to_hex`](Self::to_hex), e.g. `openssl rand -hex 32 > cluster.key`).
    /// Hex rather than raw bytes so the file can be checked and copied by
    /// hand without a stray newline silently becoming key material.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let mut contents = std::fs::read(path).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let key = match std::str::from_utf8(&contents) {
            Ok(text) => Self::from_hex(text),
            Err(err) => Err(KeyError::InvalidHex {
                offset: err.valid_up_to(),
            }),
        };
        wipe(&mut contents);
        key
    }

    /// A new random key of [`MIN_KEY_LEN`] bytes, for setting up a cluster.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0; MIN_KEY_LEN];
        getrandom::fill(&mut bytes).map_err(KeyError::Random)?;
        let key = Self::from_bytes(&bytes);
        wipe(&mut bytes);
        key
    }

    /// The key as lowercase hex, for writing a key file. Handle with care.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(self.bytes.len() * 2);
        for byte in self.bytes.iter() {
            text.push(char::from(DIGITS[usize::from(byte >> 4)]));
            text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        text
    }

    /// The key material, for deriving keys for other purposes (write
    /// grants) with a label of their own. Never send or log it.
    pub fn secret(&self) -> &[u8] {
        &self.bytes
    }

    /// Bytes of key material.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a key has at least [`MIN_KEY_LEN`] bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// An HMAC-SHA256 instance keyed with this key, to be cloned per MAC.
    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail.
        HmacSha256::new_from_slice(&self.bytes)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterKey")
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl Drop for ClusterKey {
    fn drop(&mut self) {
        wipe(&mut self.bytes);
    }
}

/// Overwrites `bytes` with zeros in a way the optimizer may not remove.
fn wipe(bytes: &mut [u8]) {
    for byte in bytes.iter_mut() {
        // SAFETY: `byte` is a valid, aligned, exclusive reference.
        unsafe { std::ptr::write_volatile(byte, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// What the sender of a [`Hello`] is: the acceptor may treat nodes and
/// clients differently once authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Role {
    Node = 1,
    Client = 2,
}

impl TryFrom<u8> for Role {
    type Error = AuthError;

    fn try_from(value: u8) -> Result<Self, AuthError> {
        match value {
            1 => Ok(Role::Node),
            2 => Ok(Role::Client),
            found => Err(AuthError::UnknownRole { found }),
        }
    }
}

/// Who a process says it is; proven by the handshake only in the sense that
/// it holds the cluster key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub node_id: u64,
    pub role: Role,
}

/// Which end of the connection: the initiator dialed, the acceptor accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Initiator,
    Acceptor,
}

impl Side {
    /// The tag that ends the MAC input of a proof sent by this side.
    pub const fn tag(self) -> &'static [u8] {
        match self {
            Side::Initiator => INITIATOR_TAG,
            Side::Acceptor => ACCEPTOR_TAG,
        }
    }
}

/// The two handshake messages, by the first byte of an Auth frame body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    Hello = 1,
    Proof = 2,
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageType::Hello => "hello",
            MessageType::Proof => "proof",
        })
    }
}

/// What a handshake waits for next; a driver's timeout reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Awaiting {
    PeerHello,
    PeerProof,
    /// The handshake is over (done or failed).
    Nothing,
}

impl fmt::Display for Awaiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Awaiting::PeerHello => "the peer's hello",
            Awaiting::PeerProof => "the peer's proof",
            Awaiting::Nothing => "nothing",
        })
    }
}

/// Why a handshake failed. Every variant means the connection must close.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AuthError {
    /// The peer's MAC is wrong: it does not hold our cluster key (or the
    /// messages were tampered with).
    #[error("peer's proof is wrong: it does not hold the cluster key")]
    BadProof,
    #[error(
        "peer speaks handshake version {found}, this node speaks {}",
        AUTH_VERSION
    )]
    UnsupportedVersion { found: u16 },
    #[error("peer sent unknown role {found}")]
    UnknownRole { found: u8 },
    #[error("unknown handshake message type {found}")]
    UnknownMessage { found: u8 },
    #[error("handshake message is empty")]
    EmptyMessage,
    #[error("{message} message of {len} bytes, expected {expected}")]
    BadLength {
        message: MessageType,
        len: usize,
        expected: usize,
    },
    #[error("received a {found} message while waiting for {awaiting}")]
    UnexpectedMessage {
        awaiting: Awaiting,
        found: MessageType,
    },
    /// The peer's hello carries our own nonce: someone is replaying our
    /// hello back at us.
    #[error("peer's hello carries our own nonce")]
    ReflectedNonce,
}

/// Hello as it lies in an Auth frame body (little-endian, no padding).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct HelloWire {
    message: u8,
    version: U16,
    role: u8,
    node_id: U64,
    nonce: [u8; NONCE_LEN],
}

const _: () = assert!(size_of::<HelloWire>() == HELLO_LEN);

/// The first message of each side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub version: u16,
    pub identity: Identity,
    pub nonce: Nonce,
}

impl Hello {
    /// Our hello at the current [`AUTH_VERSION`].
    pub fn new(identity: Identity, nonce: Nonce) -> Self {
        Hello {
            version: AUTH_VERSION,
            identity,
            nonce,
        }
    }

    /// The exact bytes sent, which are also what the proofs cover.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let wire = HelloWire {
            message: MessageType::Hello as u8,
            version: U16::new(self.version),
            role: self.identity.role as u8,
            node_id: U64::new(self.identity.node_id),
            nonce: self.nonce,
        };
        let mut out = [0; HELLO_LEN];
        out.copy_from_slice(wire.as_bytes());
        out
    }
}

/// One handshake message, decoded from or encoded into an Auth frame body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMessage {
    Hello(Hello),
    Proof([u8; PROOF_LEN]),
}

impl AuthMessage {
    pub fn message_type(&self) -> MessageType {
        match self {
            AuthMessage::Hello(_) => MessageType::Hello,
            AuthMessage::Proof(_) => MessageType::Proof,
        }
    }

    /// The Auth frame body.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            AuthMessage::Hello(hello) => hello.encode().to_vec(),
            AuthMessage::Proof(mac) => {
                let mut out = Vec::with_capacity(PROOF_MSG_LEN);
                out.push(MessageType::Proof as u8);
                out.extend_from_slice(mac);
                out
            }
        }
    }

    /// Parses an Auth frame body. The hello's version is checked here, so a
    /// peer on another version fails with a clear error, not a bad proof.
    pub fn decode(body: &[u8]) -> Result<Self, AuthError> {
        let (&first, rest) = body.split_first().ok_or(AuthError::EmptyMessage)?;
        let check_len = |message, expected| {
            if body.len() == expected {
                Ok(())
            } else {
                Err(AuthError::BadLength {
                    message,
                    len: body.len(),
                    expected,
                })
            }
        };
        match first {
            1 => {
                check_len(MessageType::Hello, HELLO_LEN)?;
                let wire = HelloWire::read_from_bytes(body).map_err(|_| AuthError::BadLength {
                    message: MessageType::Hello,
                    len: body.len(),
                    expected: HELLO_LEN,
                })?;
                let version = wire.version.get();
                if version != AUTH_VERSION {
                    return Err(AuthError::UnsupportedVersion { found: version });
                }
                Ok(AuthMessage::Hello(Hello {
                    version,
                    identity: Identity {
                        node_id: wire.node_id.get(),
                        role: Role::try_from(wire.role)?,
                    },
                    nonce: wire.nonce,
                }))
            }
            2 => {
                check_len(MessageType::Proof, PROOF_MSG_LEN)?;
                let mut mac = [0; PROOF_LEN];
                mac.copy_from_slice(rest);
                Ok(AuthMessage::Proof(mac))
            }
            found => Err(AuthError::UnknownMessage { found }),
        }
    }
}

/// MAC input: `TRANSCRIPT_CONTEXT || initiator hello || acceptor hello ||
/// sender's tag`, keyed with the cluster key.
fn transcript_mac(
    key_mac: &HmacSha256,
    initiator_hello: &[u8; HELLO_LEN],
    acceptor_hello: &[u8; HELLO_LEN],
    sender: Side,
) -> HmacSha256 {
    key_mac
        .clone()
        .chain_update(TRANSCRIPT_CONTEXT)
        .chain_update(initiator_hello)
        .chain_update(acceptor_hello)
        .chain_update(sender.tag())
}

/// The proof `sender` sends for this pair of hellos. Public so tools and
/// tests can build (or forge) handshake messages by hand.
pub fn compute_proof(
    key: &ClusterKey,
    initiator_hello: &Hello,
    acceptor_hello: &Hello,
    sender: Side,
) -> [u8; PROOF_LEN] {
    transcript_mac(
        &key.mac(),
        &initiator_hello.encode(),
        &acceptor_hello.encode(),
        sender,
    )
    .finalize()
    .into_bytes()
    .into()
}

#[derive(Clone, Debug)]
enum Stage {
    AwaitHello,
    /// Holds the peer's hello, as sent.
    AwaitProof {
        peer: Identity,
        peer_hello: [u8; HELLO_LEN],
    },
    Done {
        peer: Identity,
    },
    Failed(AuthError),
}

/// One side of the handshake. Feed it the body of every Auth frame with
/// [`receive`](Self::receive); send what [`poll_transmit`](Self::poll_transmit)
/// returns, in order, as Auth frames.
///
/// Message flow (I = initiator, A = acceptor):
///
/// ```text
/// I -> A  Hello_I
/// A -> I  Hello_A, Proof_A      (A has both hellos, proves first)
/// I -> A  Proof_I               (only once Proof_A is verified)
/// ```
///
/// The initiator is done when Proof_A verifies, the acceptor when Proof_I
/// does. After an error the handshake stays failed.
pub struct Handshake {
    side: Side,
    key_mac: HmacSha256,
    local: Hello,
    local_hello: [u8; HELLO_LEN],
    stage: Stage,
    outbox: VecDeque<AuthMessage>,
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("side", &self.side)
            .field("local", &self.local.identity)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// A handshake for `side`, with our identity and a fresh nonce. The
    /// initiator's hello is ready in [`poll_transmit`](Self::poll_transmit)
    /// at once.
    pub fn new(side: Side, key: &ClusterKey, local: Identity, nonce: Nonce) -> Self {
        let local = Hello::new(local, nonce);
        let mut outbox = VecDeque::with_capacity(2);
        if side == Side::Initiator {
            outbox.push_back(AuthMessage::Hello(local));
        }
        Handshake {
            side,
            key_mac: key.mac(),
            local,
            local_hello: local.encode(),
            stage: Stage::AwaitHello,
            outbox,
        }
    }

    pub fn side(&self) -> Side {
        self.side
    }

    /// What the handshake waits for: what a timeout should report.
    pub fn awaiting(&self) -> Awaiting {
        match self.stage {
            Stage::AwaitHello => Awaiting::PeerHello,
            Stage::AwaitProof { .. } => Awaiting::PeerProof,
            Stage::Done { .. } | Stage::Failed(_) => Awaiting::Nothing,
        }
    }

    /// The peer, once its proof has verified.
    pub fn peer(&self) -> Option<Identity> {
        match self.stage {
            Stage::Done { peer } => Some(peer),
            _ => None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.peer().is_some()
    }

    /// The error that failed this handshake, if any.
    pub fn error(&self) -> Option<&AuthError> {
        match &self.stage {
            Stage::Failed(err) => Some(err),
            _ => None,
        }
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<AuthMessage> {
        self.outbox.pop_front()
    }

    /// Handles the body of one Auth frame from the peer. Any error fails
    /// the handshake for good; the caller must close the connection.
    pub fn receive(&mut self, body: &[u8]) -> Result<(), AuthError> {
        if let Stage::Failed(err) = &self.stage {
            return Err(err.clone());
        }
        match self.step(body) {
            Ok(()) => Ok(()),
            Err(err) => {
                self.stage = Stage::Failed(err.clone());
                self.outbox.clear();
                Err(err)
            }
        }
    }

    fn step(&mut self, body: &[u8]) -> Result<(), AuthError> {
        let message = AuthMessage::decode(body)?;
        match (&self.stage, message) {
            (Stage::AwaitHello, AuthMessage::Hello(hello)) => {
                if hello.nonce == self.local.nonce {
                    return Err(AuthError::ReflectedNonce);
                }
                let peer_hello = hello.encode();
                if self.side == Side::Acceptor {
                    let proof = self.proof(&peer_hello);
                    self.outbox.push_back(AuthMessage::Hello(self.local));
                    self.outbox.push_back(AuthMessage::Proof(proof));
                }
                self.stage = Stage::AwaitProof {
                    peer: hello.identity,
                    peer_hello,
                };
                Ok(())
            }
            (&Stage::AwaitProof { peer, peer_hello }, AuthMessage::Proof(mac)) => {
                let (initiator_hello, acceptor_hello) = self.ordered(&peer_hello);
                let peer_side = match self.side {
                    Side::Initiator => Side::Acceptor,
                    Side::Acceptor => Side::Initiator,
                };
                transcript_mac(&self.key_mac, initiator_hello, acceptor_hello, peer_side)
                    .verify_slice(&mac)
                    .map_err(|_| AuthError::BadProof)?;
                if self.side == Side::Initiator {
                    let proof = self.proof(&peer_hello);
                    self.outbox.push_back(AuthMessage::Proof(proof));
                }
                self.stage = Stage::Done { peer };
                Ok(())
            }
            (_, message) => Err(AuthError::UnexpectedMessage {
                awaiting: self.awaiting(),
                found: message.message_type(),
            }),
        }
    }

    /// Our proof over our hello and `peer_hello`.
    fn proof(&self, peer_hello: &[u8; HELLO_LEN]) -> [u8; PROOF_LEN] {
        let (initiator_hello, acceptor_hello) = self.ordered(peer_hello);
        transcript_mac(&self.key_mac, initiator_hello, acceptor_hello, self.side)
            .finalize()
            .into_bytes()
            .into()
    }

    /// (initiator hello, acceptor hello): the fixed order of the transcript.
    fn ordered<'a>(
        &'a self,
        peer_hello: &'a [u8; HELLO_LEN],
    ) -> (&'a [u8; HELLO_LEN], &'a [u8; HELLO_LEN]) {
        match self.side {
            Side::Initiator => (&self.local_hello, peer_hello),
            Side::Acceptor => (peer_hello, &self.local_hello),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn key() -> ClusterKey {
        ClusterKey::from_hex(KEY_HEX).unwrap()
    }

    fn other_key() -> ClusterKey {
        ClusterKey::from_bytes(&[0x55; 32]).unwrap()
    }

    fn node(node_id: u64) -> Identity {
        Identity {
            node_id,
            role: Role::Node,
        }
    }

    /// Moves messages between the two sides until neither has anything to
    /// send; returns the first error, tagged with the side that raised it.
    fn run(a: &mut Handshake, b: &mut Handshake) -> Result<(), (Side, AuthError)> {
        fn deliver(from: &mut Handshake, to: &mut Handshake) -> Result<bool, (Side, AuthError)> {
            let mut moved = false;
            while let Some(message) = from.poll_transmit() {
                moved = true;
                to.receive(&message.encode()).map_err(|e| (to.side(), e))?;
            }
            Ok(moved)
        }
        while deliver(a, b)? | deliver(b, a)? {}
        Ok(())
    }

    #[test]
    fn equal_keys_authenticate_both_sides() {
        let mut i = Handshake::new(Side::Initiator, &key(), node(1), [1; 32]);
        let mut a = Handshake::new(Side::Acceptor, &key(), node(2), [2; 32]);
        assert_eq!(i.awaiting(), Awaiting::PeerHello);
        assert_eq!(a.awaiting(), Awaiting::PeerHello);
        run(&mut i, &mut a).unwrap();
        assert_eq!(i.peer(), Some(node(2)));
        assert_eq!(a.peer(), Some(node(1)));
        assert_eq!(i.awaiting(), Awaiting::Nothing);
    }

    #[test]
    fn initiator_with_wrong_key_fails_first_and_sends_no_proof() {
        let mut i = Handshake::new(Side::Initiator, &other_key(), node(1), [1; 32]);
        let mut a = Handshake::new(Side::Acceptor, &key(), node(2), [2; 32]);
        assert_eq!(
            run(&mut i, &mut a),
            Err((Side::Initiator, AuthError::BadProof))
        );
        assert_eq!(i.poll_transmit(), None);
        assert_eq!(a.awaiting(), Awaiting::PeerProof);
        assert_eq!(i.receive(&[]), Err(AuthError::BadProof), "stays failed");
    }

    #[test]
    fn acceptor_rejects_a_forged_initiator_proof() {
        let i_hello = Hello::new(node(1), [1; 32]);
        let mut a = Handshake::new(Side::Acceptor, &key(), node(2), [2; 32]);
        a.receive(&AuthMessage::Hello(i_hello).encode()).unwrap();
        let Some(AuthMessage::Hello(a_hello)) = a.poll_transmit() else {
            panic!("acceptor must answer with its hello");
        };
        let forged = compute_proof(&other_key(), &i_hello, &a_hello, Side::Initiator);
        assert_eq!(
            a.receive(&AuthMessage::Proof(forged).encode()),
            Err(AuthError::BadProof)
        );
        assert_eq!(a.peer(), None);
    }

    #[test]
    fn reflected_acceptor_proof_is_rejected() {
        // An attacker without the key gets Proof_A and sends it back as
        // Proof_I: the direction tag makes it wrong.
        let i_hello = Hello::new(node(1), [1; 32]);
        let mut a = Handshake::new(Side::Acceptor, &key(), node(2), [2; 32]);
        a.receive(&AuthMessage::Hello(i_hello).encode()).unwrap();
        let _hello = a.poll_transmit();
        let Some(proof_a) = a.poll_transmit() else {
            panic!("acceptor must prove itself");
        };
        assert_eq!(a.receive(&proof_a.encode()), Err(AuthError::BadProof));
    }

    #[test]
    fn reflected_hello_is_rejected() {
        let mut a = Handshake::new(Side::Acceptor, &key(), node(2), [2; 32]);
        let mirror = Hello::new(node(9), [2; 32]);
        assert_eq!(
            a.receive(&AuthMessage::Hello(mirror).encode()),
            Err(AuthError::ReflectedNonce)
        );
    }

    #[test]
    fn proof_before_hello_is_unexpected() {
        let mut a = Handshake::new(Side::Acceptor, &key(), node(2), [2; 32]);
        assert_eq!(
            a.receive(&AuthMessage::Proof([0; 32]).encode()),
            Err(AuthError::UnexpectedMessage {
                awaiting: Awaiting::PeerHello,
                found: MessageType::Proof
            })
        );
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        let hello = AuthMessage::Hello(Hello::new(node(1), [1; 32])).encode();
        let cases: [(&[u8], AuthError); 5] = [
            (&[], AuthError::EmptyMessage),
            (&[9], AuthError::UnknownMessage { found: 9 }),
            (
                &hello[..HELLO_LEN - 1],
                AuthError::BadLength {
                    message: MessageType::Hello,
                    len: HELLO_LEN - 1,
                    expected: HELLO_LEN,
                },
            ),
            (
                &[2, 0, 0],
                AuthError::BadLength {
                    message: MessageType::Proof,
                    len: 3,
                    expected: PROOF_MSG_LEN,
                },
            ),
            (
                &[1; HELLO_LEN],
                AuthError::UnsupportedVersion { found: 0x0101 },
            ),
        ];
        for (body, err) in cases {
            assert_eq!(AuthMessage::decode(body), Err(err));
        }
        let mut bad_role = hello;
        bad_role[3] = 7;
        assert_eq!(
            AuthMessage::decode(&bad_role),
            Err(AuthError::UnknownRole { found: 7 })
        );
    }

    #[test]
    fn hello_layout_is_as_documented() {
        let hello = Hello::new(
            Identity {
                node_id: 0x0102_0304_0506_0708,
                role: Role::Client,
            },
            [0xAA; 32],
        );
        let bytes = hello.encode();
        assert_eq!(bytes[0], 1);
        assert_eq!(&bytes[1..3], &[1, 0]);
        assert_eq!(bytes[3], 2);
        assert_eq!(&bytes[4..12], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&bytes[12..44], &[0xAA; 32]);
        assert_eq!(
            AuthMessage::decode(&bytes),
            Ok(AuthMessage::Hello(hello)),
            "round trip"
        );
    }

    /// Pins the transcript layout to values computed independently (Python's
    /// `hmac` over the bytes documented in lib.rs), so a layout change cannot
    /// go unnoticed.
    #[test]
    fn proof_matches_independent_hmac() {
        let i_hello = Hello::new(node(1), [0x11; 32]);
        let a_hello = Hello::new(
            Identity {
                node_id: 2,
                role: Role::Client,
            },
            [0x22; 32],
        );
        let proof_i = compute_proof(&key(), &i_hello, &a_hello, Side::Initiator);
        let proof_a = compute_proof(&key(), &i_hello, &a_hello, Side::Acceptor);
        assert_eq!(to_hex(&proof_i), EXPECTED_PROOF_I);
        assert_eq!(to_hex(&proof_a), EXPECTED_PROOF_A);
    }

    const EXPECTED_PROOF_I: &str =
        "c1ea3046994ba7e7298c93d10bc04238d530c25733b8482df5fd19764743e6a2";
    const EXPECTED_PROOF_A: &str =
        "22b2f4179565cc242a4e162e3af2d269490e9185ca852e5bffeef77a423cdd8a";

    fn to_hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn key_parsing() {
        assert_eq!(key().len(), 32);
        assert_eq!(key().to_hex(), KEY_HEX);
        let upper = format!("  {}\n", KEY_HEX.to_uppercase());
        assert_eq!(ClusterKey::from_hex(&upper).unwrap().to_hex(), KEY_HEX);
        assert!(matches!(
            ClusterKey::from_hex(&KEY_HEX[..62]),
            Err(KeyError::TooShort { len: 31, min: 32 })
        ));
        assert!(matches!(
            ClusterKey::from_hex(&KEY_HEX[..63]),
            Err(KeyError::OddHexLength { digits: 63 })
        ));
        let bad = format!("{}zz", &KEY_HEX[..62]);
        assert!(matches!(
            ClusterKey::from_hex(&bad),
            Err(KeyError::InvalidHex { offset: 62 })
        ));
        assert!(matches!(
            ClusterKey::from_bytes(&[]),
            Err(KeyError::TooShort { len: 0, .. })
        ));
        let generated = ClusterKey::generate().unwrap();
        assert_eq!(generated.len(), MIN_KEY_LEN);
        assert_eq!(
            ClusterKey::from_hex(&generated.to_hex()).unwrap().to_hex(),
            generated.to_hex()
        );
    }

    #[test]
    fn key_file_holds_hex() {
        let dir = std::env::temp_dir().join(format!("govfs-net-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cluster.key");
        std::fs::write(&path, format!("{KEY_HEX}\n")).unwrap();
        assert_eq!(ClusterKey::from_file(&path).unwrap().to_hex(), KEY_HEX);
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            ClusterKey::from_file(&path),
            Err(KeyError::InvalidHex { offset: 0 })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
        let err = ClusterKey::from_file(&path).unwrap_err();
        assert!(matches!(err, KeyError::Io { .. }));
        assert!(err.to_string().contains("cluster.key"));
    }

    #[test]
    fn debug_never_prints_the_key() {
        let debug = format!("{:?}", key());
        assert_eq!(debug, "ClusterKey { len: 32, .. }");
        let handshake = Handshake::new(Side::Initiator, &key(), node(1), [1; 32]);
        let debug = format!("{handshake:?}");
        assert!(!debug.contains("0, 1, 2, 3"), "{debug}");
        // The Debug of an error never holds key bytes either: invalid hex
        // reports an offset, not the character.
        let err = ClusterKey::from_hex(&format!("{}g", &KEY_HEX[..63])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cluster key is not hex: bad character at offset 63"
        );
    }
}
