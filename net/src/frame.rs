//! The frame codec: a fixed 24-byte header ([`FrameHeader`]) followed by an
//! opaque body. [`encode_frame`] appends one frame to a buffer;
//! [`FrameDecoder`] turns a byte stream, cut anywhere, back into frames.
//!
//! The checksum covers the first 20 header bytes (magic, version, kind,
//! length, request id) and then the body, so a corrupted kind or request id
//! is caught like a corrupted body, and a reply can never be routed to the
//! wrong waiter because of a flipped bit.

use thiserror::Error;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// First four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"GOVF";
/// The only wire version this code speaks.
pub const VERSION: u16 = 1;
/// Size of [`FrameHeader`] on the wire.
pub const HEADER_LEN: usize = 24;
/// Largest body a [`FrameDecoder`] accepts unless configured otherwise: 16 MiB.
pub const DEFAULT_MAX_BODY_LEN: u32 = 16 * 1024 * 1024;

/// Header bytes covered by the checksum: everything before the `crc` field.
const CRC_COVERED_LEN: usize = HEADER_LEN - 4;

/// What a frame carries; tells the receiver which module decodes the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum FrameKind {
    /// Raft and Group Raft messages between nodes.
    Raft = 1,
    /// Cluster control: membership, cluster map, health.
    Control = 2,
    /// Client requests and their replies (namespace, leases).
    Client = 3,
    /// Bulk data to and from storage shards.
    Data = 4,
    /// Connection authentication handshake.
    Auth = 5,
}

impl FrameKind {
    /// Every kind, in wire-value order.
    pub const ALL: [FrameKind; 5] = [
        FrameKind::Raft,
        FrameKind::Control,
        FrameKind::Client,
        FrameKind::Data,
        FrameKind::Auth,
    ];

    /// The value written in the header's `kind` field.
    pub const fn to_wire(self) -> u16 {
        self as u16
    }
}

impl TryFrom<u16> for FrameKind {
    type Error = FrameError;

    fn try_from(value: u16) -> Result<Self, Self::Error> {
        match value {
            1 => Ok(FrameKind::Raft),
            2 => Ok(FrameKind::Control),
            3 => Ok(FrameKind::Client),
            4 => Ok(FrameKind::Data),
            5 => Ok(FrameKind::Auth),
            found => Err(FrameError::UnknownKind { found }),
        }
    }
}

impl From<FrameKind> for u16 {
    fn from(kind: FrameKind) -> u16 {
        kind.to_wire()
    }
}

/// Why a byte stream is not a valid sequence of frames. Every variant means
/// the connection is broken: see [`FrameDecoder`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("bad frame magic {found:02x?}, expected {:02x?}", MAGIC)]
    BadMagic { found: [u8; 4] },
    #[error("unsupported frame version {found}, this node speaks {}", VERSION)]
    UnsupportedVersion { found: u16 },
    #[error("unknown frame kind {found}")]
    UnknownKind { found: u16 },
    #[error("frame body of {len} bytes exceeds the limit of {max} bytes")]
    BodyTooLarge { len: u32, max: u32 },
    #[error("frame crc mismatch: header says {expected:#010x}, computed {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
}

/// The fixed frame header, exactly as it lies on the wire (24 bytes,
/// little-endian, no padding, any alignment).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct FrameHeader {
    /// [`MAGIC`] read as a little-endian u32, so the wire bytes are `GOVF`.
    pub magic: U32,
    pub version: U16,
    pub kind: U16,
    pub body_len: U32,
    pub request_id: U64,
    /// crc32c of header bytes `0..20`, continued over the body.
    pub crc: U32,
}

const _: () = assert!(size_of::<FrameHeader>() == HEADER_LEN);

impl FrameHeader {
    /// The header for `body`, checksum included.
    ///
    /// # Panics
    /// If `body` is longer than `u32::MAX` bytes: the caller must split it.
    pub fn for_body(kind: FrameKind, request_id: u64, body: &[u8]) -> FrameHeader {
        let body_len = u32::try_from(body.len())
            .unwrap_or_else(|_| panic!("frame body of {} bytes does not fit u32", body.len()));
        let mut header = FrameHeader {
            magic: U32::new(u32::from_le_bytes(MAGIC)),
            version: U16::new(VERSION),
            kind: U16::new(kind.to_wire()),
            body_len: U32::new(body_len),
            request_id: U64::new(request_id),
            crc: U32::new(0),
        };
        header.crc = U32::new(header.checksum(body));
        header
    }

    /// [`for_body`](Self::for_body) from the body's length and
    /// [`body_crc`] instead of the body: a body sent to several peers is
    /// checksummed once, each header's own bytes then combined with it.
    pub fn for_body_crc(
        kind: FrameKind,
        request_id: u64,
        body_len: usize,
        body_crc: u32,
    ) -> FrameHeader {
        let len = u32::try_from(body_len)
            .unwrap_or_else(|_| panic!("frame body of {body_len} bytes does not fit u32"));
        let mut header = FrameHeader {
            magic: U32::new(u32::from_le_bytes(MAGIC)),
            version: U16::new(VERSION),
            kind: U16::new(kind.to_wire()),
            body_len: U32::new(len),
            request_id: U64::new(request_id),
            crc: U32::new(0),
        };
        let head = crc32c::crc32c(&header.as_bytes()[..CRC_COVERED_LEN]);
        header.crc = U32::new(crate::crc::combine(head, body_crc, body_len));
        header
    }

    /// Checks magic, version, kind and length against `max_body_len`; does
    /// not look at the body or the checksum.
    pub fn validate(&self, max_body_len: u32) -> Result<FrameKind, FrameError> {
        let magic = self.magic.get().to_le_bytes();
        if magic != MAGIC {
            return Err(FrameError::BadMagic { found: magic });
        }
        if self.version.get() != VERSION {
            return Err(FrameError::UnsupportedVersion {
                found: self.version.get(),
            });
        }
        let kind = FrameKind::try_from(self.kind.get())?;
        let len = self.body_len.get();
        if len > max_body_len {
            return Err(FrameError::BodyTooLarge {
                len,
                max: max_body_len,
            });
        }
        Ok(kind)
    }

    /// The header's wire bytes.
    pub fn wire_bytes(&self) -> &[u8] {
        self.as_bytes()
    }

    /// crc32c over this header's first 20 bytes and then `body`.
    pub fn checksum(&self, body: &[u8]) -> u32 {
        let head = crc32c::crc32c(&self.as_bytes()[..CRC_COVERED_LEN]);
        crc32c::crc32c_append(head, body)
    }
}

/// The checksum of a frame body alone, for [`FrameHeader::for_body_crc`].
pub fn body_crc(body: &[u8]) -> u32 {
    crc32c::crc32c(body)
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub request_id: u64,
    pub body: Vec<u8>,
}

impl Frame {
    /// Appends this frame's wire bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_frame(self.kind, self.request_id, &self.body, out);
    }
}

/// Bytes a frame with a body of `body_len` bytes takes on the wire.
pub const fn encoded_len(body_len: usize) -> usize {
    HEADER_LEN + body_len
}

/// Appends one frame (header, then `body`) to `out`.
///
/// The encoder does not know the receiver's body limit; a body above it
/// (by default [`DEFAULT_MAX_BODY_LEN`]) makes the receiver close the
/// connection.
///
/// # Panics
/// If `body` is longer than `u32::MAX` bytes.
pub fn encode_frame(kind: FrameKind, request_id: u64, body: &[u8], out: &mut Vec<u8>) {
    let header = FrameHeader::for_body(kind, request_id, body);
    out.reserve(encoded_len(body.len()));
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
}

/// Appends one frame whose body `write` appends to `out` itself, exactly
/// `body_len` bytes: the header's place is kept, then filled in once the
/// body is there to checksum.
///
/// # Panics
/// If `write` appends another number of bytes (the header would lie).
pub fn encode_frame_with(
    kind: FrameKind,
    request_id: u64,
    body_len: usize,
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>),
) {
    out.reserve(encoded_len(body_len));
    let at = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    write(out);
    let body = &out[at + HEADER_LEN..];
    assert_eq!(
        body.len(),
        body_len,
        "a frame body of another length than announced"
    );
    let header = FrameHeader::for_body(kind, request_id, body);
    out[at..at + HEADER_LEN].copy_from_slice(header.as_bytes());
}

/// Streaming frame decoder for one connection: [`push`](Self::push) bytes as
/// they arrive, in pieces of any size, then call
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)`.
///
/// A header is checked as soon as its 24 bytes are in, so a bad magic,
/// version, kind or an oversized length is reported before the body arrives
/// and never makes the decoder wait for (or buffer) a huge body.
///
/// **Poisoning.** After `next_frame` returns an error the decoder is
/// poisoned: it drops its buffer, ignores later pushes, and every later
/// `next_frame` returns the same error. Once one frame is bad the stream has
/// lost its framing (we no longer know where the next header starts), so the
/// only safe response is to close the connection; poisoning makes it
/// impossible to keep reading from it by accident.
///
/// Memory: the buffer holds at most one partial frame (bounded by the body
/// limit plus the header) plus the bytes of the latest push, provided the
/// caller drains with `next_frame` after every push.
///
/// **Large bodies** (from [`DIRECT_BODY_LEN`]) are gathered straight into
/// a buffer of their exact size once their header is in, and handed out as
/// the frame's body, with the checksum computed as the bytes arrive: each
/// byte is copied once, where a small frame's are copied into the stream
/// buffer and then out of it (and a growing buffer copies them again).
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` before this offset are already decoded.
    start: usize,
    max_body_len: u32,
    poisoned: Option<FrameError>,
    /// A large frame whose body is being gathered.
    direct: Option<Direct>,
}

/// Bodies from this size on are gathered in a buffer of their own.
pub const DIRECT_BODY_LEN: usize = 64 * 1024;

#[derive(Debug)]
struct Direct {
    kind: FrameKind,
    request_id: u64,
    expected_crc: u32,
    /// The checksum so far: header bytes, then the body gathered.
    crc: u32,
    body: Vec<u8>,
    body_len: usize,
}

impl Direct {
    /// Takes what it still needs from the front of `bytes`; returns the rest.
    fn gather<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        let take = (self.body_len - self.body.len()).min(bytes.len());
        let (mine, rest) = bytes.split_at(take);
        self.crc = crc32c::crc32c_append(self.crc, mine);
        self.body.extend_from_slice(mine);
        rest
    }

    fn complete(&self) -> bool {
        self.body.len() == self.body_len
    }
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder accepting bodies up to [`DEFAULT_MAX_BODY_LEN`].
    pub fn new() -> Self {
        Self::with_max_body_len(DEFAULT_MAX_BODY_LEN)
    }

    /// A decoder accepting bodies up to `max_body_len` bytes (inclusive).
    pub fn with_max_body_len(max_body_len: u32) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            max_body_len,
            poisoned: None,
            direct: None,
        }
    }

    pub fn max_body_len(&self) -> u32 {
        self.max_body_len
    }

    /// Changes the body limit for every header checked from now on, including
    /// a partial frame already buffered. A connection decodes its handshake
    /// with a tiny limit and raises it once the peer is authenticated, so a
    /// peer without the key cannot make us buffer a large body.
    pub fn set_max_body_len(&mut self, max_body_len: u32) {
        self.max_body_len = max_body_len;
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered_len(&self) -> usize {
        let direct = self
            .direct
            .as_ref()
            .map_or(0, |d| HEADER_LEN + d.body.len());
        self.buf.len() - self.start + direct
    }

    /// The error that poisoned this decoder, if any.
    pub fn poisoned(&self) -> Option<&FrameError> {
        self.poisoned.as_ref()
    }

    /// Appends received bytes. Ignored once the decoder is poisoned.
    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.poisoned.is_some() {
            return;
        }
        if let Some(d) = &mut self.direct {
            if !d.complete() {
                bytes = d.gather(bytes);
            }
            if bytes.is_empty() {
                return;
            }
        }
        // Drop decoded bytes once they are at least half of the buffer, so
        // each byte is moved O(1) times on average.
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or the
    /// error that poisons this decoder (see the type's documentation).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(err) = &self.poisoned {
            return Err(err.clone());
        }
        match self.decode_one() {
            Ok(frame) => Ok(frame),
            Err(err) => {
                self.poisoned = Some(err.clone());
                self.buf = Vec::new();
                self.start = 0;
                self.direct = None;
                Err(err)
            }
        }
    }

    fn decode_one(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(d) = &self.direct {
            if !d.complete() {
                return Ok(None);
            }
            let d = self.direct.take().expect("checked above");
            if d.crc != d.expected_crc {
                return Err(FrameError::CrcMismatch {
                    expected: d.expected_crc,
                    actual: d.crc,
                });
            }
            return Ok(Some(Frame {
                kind: d.kind,
                request_id: d.request_id,
                body: d.body,
            }));
        }
        let pending = &self.buf[self.start..];
        let Ok((header, rest)) = FrameHeader::ref_from_prefix(pending) else {
            return Ok(None);
        };
        let kind = header.validate(self.max_body_len)?;
        let body_len = header.body_len.get() as usize;
        let Some(body) = rest.get(..body_len) else {
            if body_len >= DIRECT_BODY_LEN {
                // Gather the rest straight into the body's own buffer.
                let mut d = Direct {
                    kind,
                    request_id: header.request_id.get(),
                    expected_crc: header.crc.get(),
                    crc: crc32c::crc32c(&header.as_bytes()[..CRC_COVERED_LEN]),
                    body: Vec::with_capacity(body_len),
                    body_len,
                };
                let rest = d.gather(rest);
                debug_assert!(rest.is_empty(), "the body was incomplete");
                self.direct = Some(d);
                self.buf.clear();
                self.start = 0;
            }
            return Ok(None);
        };
        let actual = header.checksum(body);
        let expected = header.crc.get();
        if actual != expected {
            return Err(FrameError::CrcMismatch { expected, actual });
        }
        let frame = Frame {
            kind,
            request_id: header.request_id.get(),
            body: body.to_vec(),
        };
        self.start += encoded_len(body_len);
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(kind: FrameKind, request_id: u64, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(kind, request_id, body, &mut out);
        out
    }

    #[test]
    fn a_header_from_the_body_checksum_is_the_header_from_the_body() {
        for len in [0usize, 1, 4095, 65_536, 1 << 20] {
            let body: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let from_crc = FrameHeader::for_body_crc(FrameKind::Client, 9, len, body_crc(&body));
            assert_eq!(
                from_crc.as_bytes(),
                FrameHeader::for_body(FrameKind::Client, 9, &body).as_bytes(),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn a_body_written_in_place_makes_the_same_frame() {
        let body: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut out = b"queued before".to_vec();
        encode_frame_with(FrameKind::Client, 7, body.len(), &mut out, |o| {
            o.extend_from_slice(&body)
        });
        let mut expected = b"queued before".to_vec();
        encode_frame(FrameKind::Client, 7, &body, &mut expected);
        assert_eq!(out, expected);
    }

    #[test]
    #[should_panic(expected = "another length than announced")]
    fn a_body_written_in_place_must_have_the_announced_length() {
        let mut out = Vec::new();
        encode_frame_with(FrameKind::Client, 7, 5, &mut out, |o| {
            o.extend_from_slice(b"four")
        });
    }

    fn decode_all(decoder: &mut FrameDecoder) -> Result<Vec<Frame>, FrameError> {
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame()? {
            frames.push(frame);
        }
        Ok(frames)
    }

    #[test]
    fn header_is_24_bytes_with_documented_layout() {
        let bytes = encode(FrameKind::Data, 0x0102_0304_0506_0708, b"abc");
        assert_eq!(bytes.len(), HEADER_LEN + 3);
        assert_eq!(&bytes[0..4], b"GOVF");
        assert_eq!(&bytes[4..6], &[1, 0]);
        assert_eq!(&bytes[6..8], &[4, 0]);
        assert_eq!(&bytes[8..12], &[3, 0, 0, 0]);
        assert_eq!(&bytes[12..20], &[8, 7, 6, 5, 4, 3, 2, 1]);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[..20]), b"abc");
        assert_eq!(&bytes[20..24], &crc.to_le_bytes());
        assert_eq!(&bytes[24..], b"abc");
    }

    #[test]
    fn kind_round_trips_and_rejects_unknown() {
        for kind in FrameKind::ALL {
            assert_eq!(FrameKind::try_from(u16::from(kind)), Ok(kind));
        }
        assert_eq!(
            FrameKind::try_from(0),
            Err(FrameError::UnknownKind { found: 0 })
        );
        assert_eq!(
            FrameKind::try_from(6),
            Err(FrameError::UnknownKind { found: 6 })
        );
    }

    #[test]
    fn decodes_frames_pushed_byte_by_byte() {
        let mut bytes = encode(FrameKind::Raft, 7, b"hello");
        encode_frame(FrameKind::Auth, 8, b"", &mut bytes);
        let mut decoder = FrameDecoder::new();
        let mut frames = Vec::new();
        for byte in &bytes {
            decoder.push(std::slice::from_ref(byte));
            frames.extend(decode_all(&mut decoder).unwrap());
        }
        assert_eq!(
            frames,
            vec![
                Frame {
                    kind: FrameKind::Raft,
                    request_id: 7,
                    body: b"hello".to_vec()
                },
                Frame {
                    kind: FrameKind::Auth,
                    request_id: 8,
                    body: Vec::new()
                },
            ]
        );
        assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn incomplete_frame_returns_none() {
        let bytes = encode(FrameKind::Client, 1, b"body");
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes[..HEADER_LEN - 1]);
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.push(&bytes[HEADER_LEN - 1..bytes.len() - 1]);
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.push(&bytes[bytes.len() - 1..]);
        assert!(decoder.next_frame().unwrap().is_some());
        assert_eq!(decoder.next_frame(), Ok(None));
    }

    #[test]
    fn bad_magic_is_rejected_and_poisons() {
        let mut bytes = encode(FrameKind::Raft, 1, b"x");
        bytes[0] = b'X';
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        let err = FrameError::BadMagic { found: *b"XOVF" };
        assert_eq!(decoder.next_frame(), Err(err.clone()));
        decoder.push(&encode(FrameKind::Raft, 2, b"y"));
        assert_eq!(decoder.next_frame(), Err(err.clone()));
        assert_eq!(decoder.poisoned(), Some(&err));
        assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn unsupported_version_is_rejected() {
        let mut bytes = encode(FrameKind::Raft, 1, b"x");
        bytes[4] = 2;
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::UnsupportedVersion { found: 2 })
        );
    }

    #[test]
    fn unknown_kind_is_rejected() {
        let mut bytes = encode(FrameKind::Raft, 1, b"x");
        bytes[6] = 99;
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::UnknownKind { found: 99 })
        );
    }

    #[test]
    fn body_limit_is_inclusive_and_checked_before_the_body_arrives() {
        let max = 16;
        let mut decoder = FrameDecoder::with_max_body_len(max);
        decoder.push(&encode(FrameKind::Data, 1, &[0xAB; 16]));
        assert_eq!(decoder.next_frame().unwrap().unwrap().body.len(), 16);

        let too_big = encode(FrameKind::Data, 2, &[0xAB; 17]);
        let mut decoder = FrameDecoder::with_max_body_len(max);
        decoder.push(&too_big[..HEADER_LEN]);
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::BodyTooLarge { len: 17, max })
        );
    }

    #[test]
    fn default_limit_is_16_mib() {
        assert_eq!(FrameDecoder::new().max_body_len(), 16 << 20);
        let mut header = FrameHeader::for_body(FrameKind::Data, 0, b"");
        header.body_len = U32::new(DEFAULT_MAX_BODY_LEN + 1);
        let mut decoder = FrameDecoder::default();
        decoder.push(header.as_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::BodyTooLarge {
                len: DEFAULT_MAX_BODY_LEN + 1,
                max: DEFAULT_MAX_BODY_LEN
            })
        );
    }

    #[test]
    fn corrupted_body_is_a_crc_mismatch() {
        let mut bytes = encode(FrameKind::Control, 3, b"payload");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        assert!(matches!(
            decoder.next_frame(),
            Err(FrameError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn corrupted_request_id_is_a_crc_mismatch() {
        let mut bytes = encode(FrameKind::Client, 3, b"payload");
        bytes[12] ^= 0x01;
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        assert!(matches!(
            decoder.next_frame(),
            Err(FrameError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn buffer_is_compacted_while_streaming() {
        let frame = encode(FrameKind::Data, 1, &[7; 100]);
        let mut decoder = FrameDecoder::new();
        for _ in 0..1000 {
            // Push one and a half frames at a time, so the buffer never empties.
            decoder.push(&frame);
            decoder.push(&frame[..50]);
            while decoder.next_frame().unwrap().is_some() {}
            decoder.push(&frame[50..]);
            while decoder.next_frame().unwrap().is_some() {}
            assert!(decoder.buf.len() <= 4 * frame.len());
        }
        assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn errors_display_readably() {
        let err = FrameError::BodyTooLarge { len: 20, max: 10 };
        assert_eq!(
            err.to_string(),
            "frame body of 20 bytes exceeds the limit of 10 bytes"
        );
    }
}
