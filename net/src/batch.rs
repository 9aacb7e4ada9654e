//! Output batching: during one turn of the event loop every frame for a peer
//! is encoded into that peer's [`OutBatch`], and at the end of the turn the
//! whole batch goes out in one write.

use thiserror::Error;

use crate::frame::{encode_frame, encoded_len, FrameKind};

/// Why a frame was not added to an [`OutBatch`]. The batch is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum BatchError {
    /// The frame fits an empty batch but not this one: flush, then retry.
    #[error("batch full: frame needs {needed} bytes, {remaining} remain")]
    Full { needed: usize, remaining: usize },
    /// The frame is larger than the batch capacity and can never be added.
    #[error("frame of {needed} bytes exceeds the batch capacity of {capacity} bytes")]
    TooLarge { needed: usize, capacity: usize },
}

/// Frames for one peer, encoded back to back into one contiguous buffer of
/// at most `capacity` bytes.
///
/// The buffer is kept across [`clear`](Self::clear), so a long-lived batch
/// stops allocating once it has reached its working size.
#[derive(Debug)]
pub struct OutBatch {
    buf: Vec<u8>,
    frames: usize,
    capacity: usize,
}

impl OutBatch {
    /// An empty batch that holds at most `capacity` bytes of encoded frames.
    pub fn new(capacity: usize) -> Self {
        OutBatch {
            buf: Vec::new(),
            frames: 0,
            capacity,
        }
    }

    /// Encodes one frame at the end of the batch, or leaves the batch
    /// unchanged and says why it does not fit.
    pub fn push(
        &mut self,
        kind: FrameKind,
        request_id: u64,
        body: &[u8],
    ) -> Result<(), BatchError> {
        let needed = encoded_len(body.len());
        if needed > self.capacity {
            return Err(BatchError::TooLarge {
                needed,
                capacity: self.capacity,
            });
        }
        let remaining = self.remaining();
        if needed > remaining {
            return Err(BatchError::Full { needed, remaining });
        }
        encode_frame(kind, request_id, body, &mut self.buf);
        self.frames += 1;
        debug_assert!(self.buf.len() <= self.capacity);
        Ok(())
    }

    /// The encoded frames, ready for one write.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Frames in the batch.
    pub fn frame_count(&self) -> usize {
        self.frames
    }

    /// Encoded bytes in the batch.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Most bytes the batch will hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes still free.
    pub fn remaining(&self) -> usize {
        self.capacity - self.buf.len()
    }

    /// Empties the batch after it was written, keeping its allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.frames = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, FrameDecoder, HEADER_LEN};

    #[test]
    fn gathers_frames_into_one_buffer() {
        let mut batch = OutBatch::new(1024);
        assert!(batch.is_empty());
        batch.push(FrameKind::Raft, 1, b"one").unwrap();
        batch.push(FrameKind::Data, 2, b"").unwrap();
        assert_eq!(batch.frame_count(), 2);
        assert_eq!(batch.len(), 2 * HEADER_LEN + 3);
        assert_eq!(batch.remaining(), 1024 - batch.len());

        let mut decoder = FrameDecoder::new();
        decoder.push(batch.as_bytes());
        assert_eq!(
            decoder.next_frame(),
            Ok(Some(Frame {
                kind: FrameKind::Raft,
                request_id: 1,
                body: b"one".to_vec()
            }))
        );
        assert_eq!(
            decoder.next_frame(),
            Ok(Some(Frame {
                kind: FrameKind::Data,
                request_id: 2,
                body: Vec::new()
            }))
        );
        assert_eq!(decoder.next_frame(), Ok(None));
    }

    #[test]
    fn full_batch_rejects_and_stays_unchanged() {
        let mut batch = OutBatch::new(2 * HEADER_LEN + 10);
        batch.push(FrameKind::Client, 1, &[0; 10]).unwrap();
        let before = batch.as_bytes().to_vec();
        assert_eq!(
            batch.push(FrameKind::Client, 2, &[0; 1]),
            Err(BatchError::Full {
                needed: HEADER_LEN + 1,
                remaining: HEADER_LEN
            })
        );
        assert_eq!(batch.as_bytes(), &before[..]);
        assert_eq!(batch.frame_count(), 1);
        // Exactly filling the capacity is allowed.
        batch.push(FrameKind::Client, 3, b"").unwrap();
        assert_eq!(batch.remaining(), 0);
    }

    #[test]
    fn frame_larger_than_capacity_is_too_large() {
        let mut batch = OutBatch::new(HEADER_LEN + 3);
        assert_eq!(
            batch.push(FrameKind::Data, 1, &[0; 4]),
            Err(BatchError::TooLarge {
                needed: HEADER_LEN + 4,
                capacity: HEADER_LEN + 3
            })
        );
        assert!(batch.is_empty());
    }

    #[test]
    fn clear_resets_counts() {
        let mut batch = OutBatch::new(256);
        batch.push(FrameKind::Auth, 1, b"key").unwrap();
        batch.clear();
        assert!(batch.is_empty());
        assert_eq!(batch.len(), 0);
        assert_eq!(batch.remaining(), 256);
    }
}
