//! [`Connection`]: one peer connection as a sans-IO state machine. Bytes read
//! from the socket go into [`Connection::receive`]; events come out of
//! [`Connection::poll_event`]; bytes to write come out of
//! [`Connection::transmit`]. The same code runs under the blocking TCP
//! driver, the engine's event loop and the simulator.
//!
//! The connection first runs the cluster-key [`Handshake`] over Auth frames
//! and refuses everything else until it succeeds. Any error (a bad frame, a
//! frame of the wrong kind for the phase, a failed handshake) kills the
//! connection: it keeps the error, drops its buffers and returns the error
//! from every later call, so a driver cannot keep using a connection whose
//! stream it can no longer trust. Frames that arrived whole before the error
//! are still yielded by [`Connection::poll_event`], so what a peer's bytes
//! deliver never depends on how the network cut them into reads.

use std::collections::VecDeque;

use thiserror::Error;

use crate::auth::{
    AuthError, Awaiting, ClusterKey, Handshake, Identity, Nonce, Role, Side, MAX_AUTH_BODY_LEN,
};
use crate::frame::{
    encode_frame, encode_frame_with, encoded_len, Frame, FrameDecoder, FrameError, FrameHeader,
    FrameKind, DEFAULT_MAX_BODY_LEN,
};

/// Bounds of one connection, fixed at creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Largest frame body accepted from the peer once authenticated, and
    /// largest we queue (the peer is assumed to use the same limit).
    pub max_body_len: u32,
    /// Most unwritten bytes the connection holds; beyond it
    /// [`Connection::queue_frame`] says [`QueueError::OutputFull`].
    pub max_pending_out: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_body_len: DEFAULT_MAX_BODY_LEN,
            max_pending_out: 4 * encoded_len(DEFAULT_MAX_BODY_LEN as usize),
        }
    }
}

/// What the peer did, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnEvent {
    /// The handshake succeeded; always the first event, exactly once.
    Authenticated { peer_id: u64, peer_role: Role },
    /// A non-Auth frame from the authenticated peer.
    Frame(Frame),
}

/// Why a connection died. Every variant means: close the socket.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConnError {
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("authentication failed: {0}")]
    Auth(#[from] AuthError),
    /// Only Auth frames may come before the handshake is done.
    #[error("{kind:?} frame received before authentication")]
    FrameBeforeAuth { kind: FrameKind },
    #[error("auth frame received after authentication")]
    AuthAfterHandshake,
    /// Reported by the driver through [`Connection::handshake_timed_out`].
    #[error("handshake timed out waiting for {awaiting}")]
    HandshakeTimeout { awaiting: Awaiting },
}

/// Why [`Connection::queue_frame`] refused a frame. Only `Dead` means the
/// connection is gone; after the others nothing was queued and the
/// connection is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum QueueError {
    /// Nothing but the handshake may be sent before the peer has proven it
    /// holds the key.
    #[error("connection is not authenticated yet")]
    NotAuthenticated,
    /// Auth frames belong to the handshake alone.
    #[error("auth frames are reserved for the handshake")]
    AuthKindReserved,
    /// The peer would refuse this frame and close the connection.
    #[error("frame body of {len} bytes exceeds the limit of {max} bytes")]
    BodyTooLarge { len: usize, max: u32 },
    /// Write out what is pending (see [`Connection::transmit`]), then retry.
    #[error("output full: {pending} bytes pending, frame needs {needed}, limit {limit}")]
    OutputFull {
        pending: usize,
        needed: usize,
        limit: usize,
    },
    #[error("connection is dead: {0}")]
    Dead(ConnError),
}

/// Where the connection is; drivers use it for timeouts and logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnState {
    Handshaking { awaiting: Awaiting },
    Established { peer: Identity },
    Dead(ConnError),
}

/// One connection to a peer. See the module documentation.
///
/// Output is batched: every handshake message and queued frame is appended
/// to one buffer, so a driver that writes [`transmit`](Self::transmit) once
/// per loop turn sends everything of that turn in one write.
#[derive(Debug)]
pub struct Connection {
    handshake: Handshake,
    /// The authenticated peer; `None` while handshaking.
    peer: Option<Identity>,
    decoder: FrameDecoder,
    limits: ConnLimits,
    out: Vec<u8>,
    /// Bytes of `out` before this offset are written.
    out_sent: usize,
    events: VecDeque<ConnEvent>,
    dead: Option<ConnError>,
}

impl Connection {
    /// The dialing side. Its hello is in [`transmit`](Self::transmit) at once.
    /// `nonce` must be fresh and random ([`crate::auth::random_nonce`]).
    pub fn new_initiator(key: &ClusterKey, local: Identity, nonce: Nonce) -> Self {
        Self::new(Side::Initiator, key, local, nonce, ConnLimits::default())
    }

    /// The accepting side: sends nothing until the initiator's hello.
    pub fn new_acceptor(key: &ClusterKey, local: Identity, nonce: Nonce) -> Self {
        Self::new(Side::Acceptor, key, local, nonce, ConnLimits::default())
    }

    /// Either side, with explicit limits.
    pub fn new(
        side: Side,
        key: &ClusterKey,
        local: Identity,
        nonce: Nonce,
        limits: ConnLimits,
    ) -> Self {
        let mut conn = Connection {
            handshake: Handshake::new(side, key, local, nonce),
            peer: None,
            // Until the peer is authenticated only hello-sized bodies are
            // accepted, so a stranger cannot make us buffer megabytes.
            decoder: FrameDecoder::with_max_body_len(MAX_AUTH_BODY_LEN),
            limits,
            out: Vec::new(),
            out_sent: 0,
            events: VecDeque::new(),
            dead: None,
        };
        conn.drain_handshake_output();
        conn
    }

    pub fn side(&self) -> Side {
        self.handshake.side()
    }

    pub fn limits(&self) -> ConnLimits {
        self.limits
    }

    pub fn state(&self) -> ConnState {
        match (&self.dead, self.peer) {
            (Some(err), _) => ConnState::Dead(err.clone()),
            (None, Some(peer)) => ConnState::Established { peer },
            (None, None) => ConnState::Handshaking {
                awaiting: self.handshake.awaiting(),
            },
        }
    }

    /// What the handshake waits for ([`Awaiting::Nothing`] once it is over).
    pub fn awaiting(&self) -> Awaiting {
        if self.dead.is_some() {
            return Awaiting::Nothing;
        }
        self.handshake.awaiting()
    }

    /// The authenticated peer.
    pub fn peer(&self) -> Option<Identity> {
        self.peer
    }

    pub fn is_authenticated(&self) -> bool {
        self.peer.is_some() && self.dead.is_none()
    }

    /// The error that killed this connection, if it is dead.
    pub fn error(&self) -> Option<&ConnError> {
        self.dead.as_ref()
    }

    /// Bytes received but not yet decoded: nonzero at the peer's EOF means
    /// it closed in the middle of a frame.
    pub fn buffered_len(&self) -> usize {
        self.decoder.buffered_len()
    }

    /// Feeds bytes read from the socket, in pieces of any size. Decodes every
    /// complete frame at once: handshake frames advance the handshake (and
    /// may queue output), other frames become events.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.check_alive()?;
        self.decoder.push(bytes);
        loop {
            let step = match self.decoder.next_frame() {
                Ok(Some(frame)) => self.on_frame(frame),
                Ok(None) => return Ok(()),
                Err(err) => Err(ConnError::from(err)),
            };
            if let Err(err) = step {
                return Err(self.kill(err));
            }
        }
    }

    /// The next event, in arrival order. After the connection died this
    /// still yields the frames decoded before the error, then `None`.
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    /// Encodes one frame into the output buffer, behind everything queued
    /// before it.
    pub fn queue_frame(
        &mut self,
        kind: FrameKind,
        request_id: u64,
        body: &[u8],
    ) -> Result<(), QueueError> {
        self.queue_frame_with(kind, request_id, body.len(), |out| {
            out.extend_from_slice(body)
        })
    }

    /// [`queue_frame`](Self::queue_frame) for a body that `write` appends
    /// to the output buffer itself (exactly `body_len` bytes; a message
    /// encoded in place, without a buffer of its own to copy from).
    ///
    /// # Panics
    /// If `write` appends another number of bytes.
    pub fn queue_frame_with(
        &mut self,
        kind: FrameKind,
        request_id: u64,
        body_len: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), QueueError> {
        self.check_frame(kind, body_len)?;
        let pending = self.transmit().len();
        let needed = encoded_len(body_len);
        // An empty buffer takes any frame the body limit allows, so a
        // frame is never refused for good.
        if pending > 0 && pending + needed > self.limits.max_pending_out {
            return Err(QueueError::OutputFull {
                pending,
                needed,
                limit: self.limits.max_pending_out,
            });
        }
        self.compact_out();
        encode_frame_with(kind, request_id, body_len, &mut self.out, write);
        Ok(())
    }

    /// The header of a frame carrying `body`, checked like
    /// [`queue_frame`](Self::queue_frame), for drivers that write the body
    /// from their own buffer (a vectored write) instead of copying it into
    /// the output buffer. They must write [`transmit`](Self::transmit)
    /// first, then the header, then the body.
    pub fn frame_header(
        &self,
        kind: FrameKind,
        request_id: u64,
        body: &[u8],
    ) -> Result<FrameHeader, QueueError> {
        self.check_frame(kind, body.len())?;
        Ok(FrameHeader::for_body(kind, request_id, body))
    }

    /// [`frame_header`](Self::frame_header) from the body's length and
    /// checksum ([`crate::frame::body_crc`]), for a body sent on several
    /// connections.
    pub fn frame_header_crc(
        &self,
        kind: FrameKind,
        request_id: u64,
        body_len: usize,
        body_crc: u32,
    ) -> Result<FrameHeader, QueueError> {
        self.check_frame(kind, body_len)?;
        Ok(FrameHeader::for_body_crc(
            kind, request_id, body_len, body_crc,
        ))
    }

    fn check_frame(&self, kind: FrameKind, body_len: usize) -> Result<(), QueueError> {
        if let Some(err) = &self.dead {
            return Err(QueueError::Dead(err.clone()));
        }
        if self.peer.is_none() {
            return Err(QueueError::NotAuthenticated);
        }
        if kind == FrameKind::Auth {
            return Err(QueueError::AuthKindReserved);
        }
        if body_len > self.limits.max_body_len as usize {
            return Err(QueueError::BodyTooLarge {
                len: body_len,
                max: self.limits.max_body_len,
            });
        }
        Ok(())
    }

    /// Bytes waiting to be written, in order. Empty once the connection is
    /// dead: nothing more may be sent on it.
    pub fn transmit(&self) -> &[u8] {
        &self.out[self.out_sent..]
    }

    pub fn has_transmit(&self) -> bool {
        !self.transmit().is_empty()
    }

    /// Marks the first `n` bytes of [`transmit`](Self::transmit) as written.
    ///
    /// # Panics
    /// If `n` is more than `transmit().len()`: the driver lost track of what
    /// it wrote, and continuing would corrupt the stream.
    pub fn consumed(&mut self, n: usize) {
        let pending = self.transmit().len();
        assert!(
            n <= pending,
            "consumed {n} bytes but only {pending} pending"
        );
        self.out_sent += n;
        if self.out_sent == self.out.len() {
            self.out.clear();
            self.out_sent = 0;
        }
    }

    /// Takes every pending byte at once, leaving `spare` (emptied) to queue
    /// what comes next in: a driver that hands its output buffer to the
    /// kernel and gets it back afterwards reuses two buffers, copying
    /// nothing.
    pub fn swap_transmit(&mut self, mut spare: Vec<u8>) -> Vec<u8> {
        spare.clear();
        let mut out = std::mem::replace(&mut self.out, spare);
        out.drain(..self.out_sent);
        self.out_sent = 0;
        out
    }

    /// Takes every pending byte at once, for drivers that hand buffers off.
    pub fn take_transmit(&mut self) -> Vec<u8> {
        self.swap_transmit(Vec::new())
    }

    /// The driver's handshake deadline passed. Kills the connection with
    /// [`ConnError::HandshakeTimeout`] unless it is already established or
    /// dead; returns the error it is dead with, if any.
    pub fn handshake_timed_out(&mut self) -> Option<ConnError> {
        if self.dead.is_none() && self.peer.is_none() {
            let awaiting = self.handshake.awaiting();
            self.kill(ConnError::HandshakeTimeout { awaiting });
        }
        self.dead.clone()
    }

    fn check_alive(&self) -> Result<(), ConnError> {
        match &self.dead {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), ConnError> {
        match (self.peer, frame.kind) {
            (None, FrameKind::Auth) => {
                self.handshake.receive(&frame.body)?;
                self.drain_handshake_output();
                if let Some(peer) = self.handshake.peer() {
                    self.peer = Some(peer);
                    self.decoder.set_max_body_len(self.limits.max_body_len);
                    self.events.push_back(ConnEvent::Authenticated {
                        peer_id: peer.node_id,
                        peer_role: peer.role,
                    });
                }
                Ok(())
            }
            (None, kind) => Err(ConnError::FrameBeforeAuth { kind }),
            (Some(_), FrameKind::Auth) => Err(ConnError::AuthAfterHandshake),
            (Some(_), _) => {
                self.events.push_back(ConnEvent::Frame(frame));
                Ok(())
            }
        }
    }

    fn drain_handshake_output(&mut self) {
        while let Some(message) = self.handshake.poll_transmit() {
            self.compact_out();
            encode_frame(FrameKind::Auth, 0, &message.encode(), &mut self.out);
        }
    }

    /// Drops written bytes before appending, once they are at least half of
    /// the buffer, so each byte moves O(1) times on average.
    fn compact_out(&mut self) {
        if self.out_sent > 0 && self.out_sent * 2 >= self.out.len() {
            self.out.drain(..self.out_sent);
            self.out_sent = 0;
        }
    }

    fn kill(&mut self, err: ConnError) -> ConnError {
        debug_assert!(self.dead.is_none(), "a dead connection was used");
        self.dead = Some(err.clone());
        self.out = Vec::new();
        self.out_sent = 0;
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{compute_proof, AuthMessage, Hello};

    fn key() -> ClusterKey {
        ClusterKey::from_bytes(&[7; 32]).unwrap()
    }

    fn id(node_id: u64) -> Identity {
        Identity {
            node_id,
            role: Role::Node,
        }
    }

    /// Moves all pending bytes both ways until both sides are quiet.
    fn pump(a: &mut Connection, b: &mut Connection) -> Result<(), ConnError> {
        while a.has_transmit() || b.has_transmit() {
            let bytes = a.take_transmit();
            b.receive(&bytes)?;
            let bytes = b.take_transmit();
            a.receive(&bytes)?;
        }
        Ok(())
    }

    fn pair() -> (Connection, Connection) {
        let mut i = Connection::new_initiator(&key(), id(1), [1; 32]);
        let mut a = Connection::new_acceptor(&key(), id(2), [2; 32]);
        pump(&mut i, &mut a).unwrap();
        (i, a)
    }

    #[test]
    fn handshake_then_frames_both_ways() {
        let (mut i, mut a) = pair();
        assert_eq!(
            i.poll_event(),
            Some(ConnEvent::Authenticated {
                peer_id: 2,
                peer_role: Role::Node
            })
        );
        assert_eq!(
            a.poll_event(),
            Some(ConnEvent::Authenticated {
                peer_id: 1,
                peer_role: Role::Node
            })
        );
        i.queue_frame(FrameKind::Raft, 10, b"ping").unwrap();
        i.queue_frame(FrameKind::Data, 11, b"").unwrap();
        // Both frames leave in one buffer.
        a.receive(&i.take_transmit()).unwrap();
        let Some(ConnEvent::Frame(first)) = a.poll_event() else {
            panic!("expected a frame");
        };
        assert_eq!((first.kind, first.request_id), (FrameKind::Raft, 10));
        assert!(matches!(a.poll_event(), Some(ConnEvent::Frame(_))));
        assert_eq!(a.poll_event(), None);
        a.queue_frame(FrameKind::Raft, 10, b"pong").unwrap();
        i.receive(a.transmit()).unwrap();
        assert!(matches!(i.poll_event(), Some(ConnEvent::Frame(f)) if f.body == b"pong"));
    }

    #[test]
    fn initiator_frames_right_after_its_proof_arrive() {
        let mut i = Connection::new_initiator(&key(), id(1), [1; 32]);
        let mut a = Connection::new_acceptor(&key(), id(2), [2; 32]);
        a.receive(&i.take_transmit()).unwrap();
        i.receive(&a.take_transmit()).unwrap();
        assert!(i.is_authenticated());
        // Proof_I and a big frame go out together; the acceptor's limit is
        // raised between them.
        i.queue_frame(FrameKind::Data, 1, &[9; 4096]).unwrap();
        a.receive(&i.take_transmit()).unwrap();
        assert!(matches!(
            a.poll_event(),
            Some(ConnEvent::Authenticated { .. })
        ));
        assert!(matches!(a.poll_event(), Some(ConnEvent::Frame(f)) if f.body.len() == 4096));
    }

    #[test]
    fn queue_before_auth_is_refused() {
        let mut i = Connection::new_initiator(&key(), id(1), [1; 32]);
        let hello = i.transmit().to_vec();
        assert_eq!(
            i.queue_frame(FrameKind::Raft, 1, b"x"),
            Err(QueueError::NotAuthenticated)
        );
        assert_eq!(i.transmit(), &hello[..], "nothing was queued");
        let (mut i, _) = pair();
        assert_eq!(
            i.queue_frame(FrameKind::Auth, 1, b"x"),
            Err(QueueError::AuthKindReserved)
        );
    }

    #[test]
    fn non_auth_frame_before_auth_kills() {
        let mut a = Connection::new_acceptor(&key(), id(2), [2; 32]);
        let mut bytes = Vec::new();
        encode_frame(FrameKind::Client, 1, b"hi", &mut bytes);
        let err = ConnError::FrameBeforeAuth {
            kind: FrameKind::Client,
        };
        assert_eq!(a.receive(&bytes), Err(err.clone()));
        assert_eq!(a.receive(&[]), Err(err.clone()));
        assert_eq!(a.state(), ConnState::Dead(err.clone()));
        assert_eq!(
            a.queue_frame(FrameKind::Raft, 1, b""),
            Err(QueueError::Dead(err))
        );
        assert_eq!(a.poll_event(), None);
    }

    #[test]
    fn frames_before_a_bad_one_are_still_delivered() {
        let (_, mut a) = pair();
        assert!(matches!(
            a.poll_event(),
            Some(ConnEvent::Authenticated { .. })
        ));
        let mut bytes = Vec::new();
        encode_frame(FrameKind::Raft, 1, b"good", &mut bytes);
        encode_frame(FrameKind::Raft, 2, b"bad", &mut bytes);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        encode_frame(FrameKind::Raft, 3, b"after", &mut bytes);
        assert!(matches!(
            a.receive(&bytes),
            Err(ConnError::Frame(FrameError::CrcMismatch { .. }))
        ));
        assert!(matches!(a.poll_event(), Some(ConnEvent::Frame(f)) if f.request_id == 1));
        assert_eq!(a.poll_event(), None);
        assert!(!a.has_transmit());
    }

    #[test]
    fn auth_frame_after_auth_kills() {
        let (mut i, mut a) = pair();
        let mut bytes = Vec::new();
        encode_frame(FrameKind::Auth, 0, &[2; 33], &mut bytes);
        assert_eq!(a.receive(&bytes), Err(ConnError::AuthAfterHandshake));
        assert!(i.receive(&[]).is_ok());
    }

    #[test]
    fn oversized_body_before_auth_is_refused_from_the_header() {
        let mut a = Connection::new_acceptor(&key(), id(2), [2; 32]);
        let mut bytes = Vec::new();
        encode_frame(FrameKind::Auth, 0, &[0; 100], &mut bytes);
        assert_eq!(
            a.receive(&bytes[..crate::frame::HEADER_LEN]),
            Err(ConnError::Frame(FrameError::BodyTooLarge {
                len: 100,
                max: MAX_AUTH_BODY_LEN
            }))
        );
    }

    #[test]
    fn wrong_key_fails_on_the_initiator_and_never_authenticates_the_acceptor() {
        let mut i =
            Connection::new_initiator(&ClusterKey::from_bytes(&[8; 32]).unwrap(), id(1), [1; 32]);
        let mut a = Connection::new_acceptor(&key(), id(2), [2; 32]);
        assert_eq!(
            pump(&mut i, &mut a),
            Err(ConnError::Auth(AuthError::BadProof))
        );
        assert!(!i.has_transmit(), "a failed side sends nothing more");
        assert_eq!(a.awaiting(), Awaiting::PeerProof);
        assert_eq!(
            a.handshake_timed_out(),
            Some(ConnError::HandshakeTimeout {
                awaiting: Awaiting::PeerProof
            })
        );
    }

    #[test]
    fn forged_proof_kills_the_acceptor() {
        let mut a = Connection::new_acceptor(&key(), id(2), [2; 32]);
        let i_hello = Hello::new(id(1), [1; 32]);
        let mut bytes = Vec::new();
        encode_frame(
            FrameKind::Auth,
            0,
            &AuthMessage::Hello(i_hello).encode(),
            &mut bytes,
        );
        a.receive(&bytes).unwrap();
        let reply = a.take_transmit();
        let mut decoder = FrameDecoder::new();
        decoder.push(&reply);
        let hello_frame = decoder.next_frame().unwrap().unwrap();
        let Ok(AuthMessage::Hello(a_hello)) = AuthMessage::decode(&hello_frame.body) else {
            panic!("acceptor must send its hello first");
        };
        let wrong = ClusterKey::from_bytes(&[8; 32]).unwrap();
        let forged = compute_proof(&wrong, &i_hello, &a_hello, Side::Initiator);
        bytes.clear();
        encode_frame(
            FrameKind::Auth,
            0,
            &AuthMessage::Proof(forged).encode(),
            &mut bytes,
        );
        assert_eq!(a.receive(&bytes), Err(ConnError::Auth(AuthError::BadProof)));
        assert_eq!(a.poll_event(), None);
    }

    #[test]
    fn timeout_after_establishment_is_a_no_op() {
        let (mut i, _) = pair();
        assert_eq!(i.handshake_timed_out(), None);
        assert!(i.is_authenticated());
    }

    #[test]
    fn output_is_bounded_and_consumed_in_pieces() {
        let limits = ConnLimits {
            max_body_len: 100,
            max_pending_out: 150,
        };
        let mut i = Connection::new(Side::Initiator, &key(), id(1), [1; 32], limits);
        let mut a = Connection::new(Side::Acceptor, &key(), id(2), [2; 32], limits);
        pump(&mut i, &mut a).unwrap();
        assert_eq!(
            i.queue_frame(FrameKind::Data, 1, &[0; 101]),
            Err(QueueError::BodyTooLarge { len: 101, max: 100 })
        );
        i.queue_frame(FrameKind::Data, 1, &[0; 100]).unwrap();
        assert_eq!(
            i.queue_frame(FrameKind::Data, 2, &[0; 10]),
            Err(QueueError::OutputFull {
                pending: 124,
                needed: 34,
                limit: 150
            })
        );
        let all = i.transmit().to_vec();
        for chunk in all.chunks(7) {
            assert_eq!(i.transmit(), &all[all.len() - i.transmit().len()..]);
            a.receive(chunk).unwrap();
            i.consumed(chunk.len());
        }
        assert!(!i.has_transmit());
        i.queue_frame(FrameKind::Data, 2, &[0; 10]).unwrap();
    }

    #[test]
    #[should_panic(expected = "consumed")]
    fn consuming_more_than_pending_panics() {
        let mut i = Connection::new_initiator(&key(), id(1), [1; 32]);
        let n = i.transmit().len();
        i.consumed(n + 1);
    }
}
