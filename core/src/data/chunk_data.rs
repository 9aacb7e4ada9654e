//! Chunk bytes carried by a message without copying them into it: a
//! storage node keeps the frame body a write arrived in and points into it
//! (see `crate::node::wire::decode_client_msg`), instead of copying a megabyte out
//! of the body into a message of its own.

use std::fmt;
use std::ops::{Deref, Range};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Owned bytes: a range of a buffer that may hold more (the rest of the
/// frame body). Encodes as plain bytes, so the wire does not know.
#[derive(Clone, Default)]
pub struct ChunkData {
    buf: Vec<u8>,
    range: Range<usize>,
}

impl ChunkData {
    /// The bytes `buf[range]`, keeping `buf`. `None` if the range is not in it.
    pub fn within(buf: Vec<u8>, range: Range<usize>) -> Option<ChunkData> {
        (range.start <= range.end && range.end <= buf.len()).then_some(ChunkData { buf, range })
    }
}

impl From<Vec<u8>> for ChunkData {
    fn from(buf: Vec<u8>) -> ChunkData {
        let range = 0..buf.len();
        ChunkData { buf, range }
    }
}

impl Deref for ChunkData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }
}

impl PartialEq for ChunkData {
    fn eq(&self, other: &ChunkData) -> bool {
        **self == **other
    }
}

impl Eq for ChunkData {}

impl fmt::Debug for ChunkData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkData({} bytes)", self.len())
    }
}

impl Serialize for ChunkData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self)
    }
}

impl<'de> Deserialize<'de> for ChunkData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ChunkData, D::Error> {
        serde_bytes::ByteBuf::deserialize(d).map(|b| ChunkData::from(b.into_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_data_encodes_as_the_bytes_it_holds() {
        let within = ChunkData::within(b"headDATAtail".to_vec(), 4..8).expect("in range");
        assert_eq!(&*within, b"DATA");
        let plain = crate::codec::encode_sized(&serde_bytes::Bytes::new(b"DATA"));
        assert_eq!(crate::codec::encode_sized(&within), plain);
        let back: ChunkData = crate::codec::decode_exact(&plain).expect("decode");
        assert_eq!(back, within);
        assert!(ChunkData::within(vec![0; 4], 2..5).is_none());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 3..2;
        assert!(ChunkData::within(vec![0; 4], reversed).is_none());
    }
}
