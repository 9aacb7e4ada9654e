//! Which chunks hold which bytes of a file, and the chunk's id on disk.
//!
//! # Striping
//!
//! With chunk size `C` and stripe count `S` (a file's [`Layout`]), file byte
//! `x` lies in stripe unit `u = x / C` at `x % C` within it. Units go round
//! robin over `S` columns: unit `u` is column `u % S`, row `u / S`. Every unit
//! is exactly one chunk, so the chunk's index is the unit number `u` and its
//! column and row are derived from it ([`ChunkRef::column`],
//! [`ChunkRef::row`]). Column `c` thus holds file bytes
//! `[(r*S + c)*C, (r*S + c + 1)*C)` in its row `r`: RAID 0 with a stripe unit
//! of one chunk. Pieces of a range never depend on `S`; `S` only says which
//! column a chunk belongs to (and so which chunks a placement may group).
//!
//! # Chunk ids
//!
//! A [`ChunkId`] names a chunk on a storage node (its file name there), so it
//! must be unique across the cluster. Inode numbers come from ranges of
//! [`INODE_RANGE`] (2^40) that the president hands out one per ministry, each
//! filled from its start. The id packs, from the high bits down:
//!
//! | bits | field | limit |
//! |---|---|---|
//! | 63..54 | inode range (`ino / 2^40`) | [`MAX_INODE_RANGES`] = 1024 ranges (ministries ever made) |
//! | 53..24 | inode within its range (`ino % 2^40`) | 2^30 inodes per ministry |
//! | 23..0 | chunk index | [`MAX_CHUNKS`] = 2^24 chunks per file (64 TiB at 4 MiB) |
//!
//! Distinct `ChunkRef`s within these limits get distinct ids, and
//! [`ChunkId::chunk_ref`] inverts the packing. Anything outside the limits is
//! a typed error, never a silent collision.

use serde::{Deserialize, Serialize};

use crate::meta::types::{Ino, Layout};
use crate::president::map::INODE_RANGE;

const INDEX_BITS: u32 = 24;
const INO_OFFSET_BITS: u32 = 30;
const RANGE_BITS: u32 = 10;
const _: () = assert!(INDEX_BITS + INO_OFFSET_BITS + RANGE_BITS == 64);
// The packing assumes the president's range size: a change there must show up here.
const _: () = assert!(INODE_RANGE == 1 << 40);

/// Chunks a file may have: indexes are below this.
pub const MAX_CHUNKS: u64 = 1 << INDEX_BITS;
/// Inodes per inode range that have chunk ids.
pub const MAX_INODES_PER_RANGE: u64 = 1 << INO_OFFSET_BITS;
/// Inode ranges (one per ministry ever created) that have chunk ids.
pub const MAX_INODE_RANGES: u64 = 1 << RANGE_BITS;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk index {index} does not fit a chunk id (at most {max})", max = MAX_CHUNKS - 1)]
    IndexTooLarge { index: u64 },
    #[error(
        "inode {0} has no chunk id: at most {MAX_INODE_RANGES} ranges of {MAX_INODES_PER_RANGE} inodes"
    )]
    InoOutOfRange(u64),
    #[error("invalid layout {0:?}")]
    BadLayout(Layout),
    #[error("byte range {offset} + {len} overflows")]
    RangeOverflow { offset: u64, len: u64 },
}

/// Chunk `index` of `file` (see the module doc for the numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChunkRef {
    pub file: Ino,
    pub index: u64,
}

/// A chunk's name on storage nodes; bit layout in the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChunkId(pub u64);

impl ChunkRef {
    /// The chunk's id, if the file and index are within the documented limits.
    pub fn id(&self) -> Result<ChunkId, ChunkError> {
        if self.index >= MAX_CHUNKS {
            return Err(ChunkError::IndexTooLarge { index: self.index });
        }
        let ino = self.file.0;
        let (range, offset) = (ino / INODE_RANGE, ino % INODE_RANGE);
        if range >= MAX_INODE_RANGES || offset >= MAX_INODES_PER_RANGE {
            return Err(ChunkError::InoOutOfRange(ino));
        }
        Ok(ChunkId(
            range << (INO_OFFSET_BITS + INDEX_BITS) | offset << INDEX_BITS | self.index,
        ))
    }

    /// The stripe column this chunk is in: `index % stripe_count`.
    pub fn column(&self, layout: &Layout) -> u16 {
        let s = u64::from(layout.stripe_count.max(1));
        // Below stripe_count, which is a u16.
        (self.index % s) as u16
    }

    /// The chunk's position within its column: `index / stripe_count`.
    pub fn row(&self, layout: &Layout) -> u64 {
        self.index / u64::from(layout.stripe_count.max(1))
    }

    /// File bytes `[start, end)` this chunk holds (`end` saturates at `u64::MAX`).
    pub fn file_range(&self, layout: &Layout) -> (u64, u64) {
        let c = u64::from(layout.chunk_size);
        let start = self.index.saturating_mul(c);
        (start, start.saturating_add(c))
    }
}

impl ChunkId {
    /// The chunk this id names (every `u64` decodes; ids from
    /// [`ChunkRef::id`] decode to what made them).
    pub fn chunk_ref(&self) -> ChunkRef {
        let range = self.0 >> (INO_OFFSET_BITS + INDEX_BITS);
        let offset = (self.0 >> INDEX_BITS) & (MAX_INODES_PER_RANGE - 1);
        ChunkRef {
            file: Ino(range * INODE_RANGE + offset),
            index: self.0 & (MAX_CHUNKS - 1),
        }
    }
}

/// Part of a file range that lies in one chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub chunk: ChunkRef,
    /// Where the piece starts within the chunk.
    pub offset_in_chunk: u64,
    /// Bytes in the piece (positive; never past the chunk's end).
    pub len: u64,
    /// Where the piece starts within the caller's buffer (the range's first byte is 0).
    pub offset_in_buf: u64,
}

/// Splits file bytes `[offset, offset + len)` of `file` into per-chunk pieces,
/// in file order. Refuses an invalid layout, a range past `u64::MAX`, and a
/// range touching a chunk without a [`ChunkId`], so every piece's
/// `chunk.id()` succeeds. An empty range has no pieces.
pub fn pieces(file: Ino, layout: &Layout, offset: u64, len: u64) -> Result<Pieces, ChunkError> {
    if !layout.is_valid() {
        return Err(ChunkError::BadLayout(*layout));
    }
    let end = offset
        .checked_add(len)
        .ok_or(ChunkError::RangeOverflow { offset, len })?;
    let chunk_size = u64::from(layout.chunk_size);
    if len > 0 {
        // The last chunk has the largest index; the file is the same for all.
        ChunkRef {
            file,
            index: (end - 1) / chunk_size,
        }
        .id()?;
    }
    Ok(Pieces {
        file,
        chunk_size,
        start: offset,
        pos: offset,
        end,
    })
}

/// The iterator of [`pieces`].
#[derive(Clone, Debug)]
pub struct Pieces {
    file: Ino,
    chunk_size: u64,
    start: u64,
    pos: u64,
    end: u64,
}

impl Iterator for Pieces {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        if self.pos >= self.end {
            return None;
        }
        let within = self.pos % self.chunk_size;
        let len = (self.chunk_size - within).min(self.end - self.pos);
        let piece = Piece {
            chunk: ChunkRef {
                file: self.file,
                index: self.pos / self.chunk_size,
            },
            offset_in_chunk: within,
            len,
            offset_in_buf: self.pos - self.start,
        };
        debug_assert!(len > 0 && within + len <= self.chunk_size);
        self.pos += len;
        Some(piece)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.pos >= self.end {
            return (0, Some(0));
        }
        let chunks = (self.end - 1) / self.chunk_size - self.pos / self.chunk_size + 1;
        let n = usize::try_from(chunks).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn layout(chunk_size: u32, stripe_count: u16) -> Layout {
        Layout {
            chunk_size,
            stripe_count,
            replicas: 3,
        }
    }

    fn all(file: u64, l: &Layout, offset: u64, len: u64) -> Vec<Piece> {
        pieces(Ino(file), l, offset, len)
            .expect("valid range")
            .collect()
    }

    #[test]
    fn a_range_splits_at_chunk_boundaries() {
        let l = layout(4096, 4);
        let p = all(7, &l, 4000, 5000);
        let got: Vec<_> = p
            .iter()
            .map(|p| (p.chunk.index, p.offset_in_chunk, p.len, p.offset_in_buf))
            .collect();
        assert_eq!(
            got,
            vec![(0, 4000, 96, 0), (1, 0, 4096, 96), (2, 0, 808, 4192)]
        );
        assert!(all(7, &l, 10, 0).is_empty());
    }

    #[test]
    fn columns_go_round_robin() {
        let l = layout(4096, 3);
        let cols: Vec<_> = (0..7)
            .map(|i| {
                let c = ChunkRef {
                    file: Ino(1),
                    index: i,
                };
                (c.column(&l), c.row(&l))
            })
            .collect();
        assert_eq!(
            cols,
            vec![(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2)]
        );
        assert_eq!(
            ChunkRef {
                file: Ino(1),
                index: 2
            }
            .file_range(&l),
            (8192, 12288)
        );
    }

    #[test]
    fn ids_pack_and_unpack() {
        let c = ChunkRef {
            file: Ino(3 * INODE_RANGE + 5),
            index: 9,
        };
        let id = c.id().expect("fits");
        assert_eq!(id.0, 3 << 54 | 5 << 24 | 9);
        assert_eq!(id.chunk_ref(), c);
    }

    #[test]
    fn ids_outside_the_limits_are_refused() {
        let big_index = ChunkRef {
            file: Ino(1),
            index: MAX_CHUNKS,
        };
        assert_eq!(
            big_index.id(),
            Err(ChunkError::IndexTooLarge { index: MAX_CHUNKS })
        );
        for ino in [
            MAX_INODES_PER_RANGE,
            MAX_INODE_RANGES * INODE_RANGE,
            u64::MAX,
        ] {
            let c = ChunkRef {
                file: Ino(ino),
                index: 0,
            };
            assert_eq!(c.id(), Err(ChunkError::InoOutOfRange(ino)));
        }
        let l = layout(4096, 1);
        assert!(matches!(
            pieces(Ino(1), &l, 4096 * MAX_CHUNKS - 1, 2),
            Err(ChunkError::IndexTooLarge { .. })
        ));
        assert!(pieces(Ino(1), &l, 4096 * MAX_CHUNKS - 1, 1).is_ok());
        assert!(matches!(
            pieces(Ino(1), &l, u64::MAX, 1),
            Err(ChunkError::RangeOverflow { .. })
        ));
        assert!(matches!(
            pieces(Ino(1), &layout(4000, 1), 0, 1),
            Err(ChunkError::BadLayout(_))
        ));
    }

    fn any_layout() -> impl Strategy<Value = Layout> {
        (12u32..=20, 1u16..=8).prop_map(|(shift, s)| layout(1 << shift, s))
    }

    fn valid_ino() -> impl Strategy<Value = u64> {
        (0..MAX_INODE_RANGES, 0..MAX_INODES_PER_RANGE).prop_map(|(r, o)| r * INODE_RANGE + o)
    }

    proptest! {
        #[test]
        fn pieces_cover_the_range_once_in_order(
            l in any_layout(),
            offset in 0u64..(1 << 24),
            len in 0u64..(1 << 23),
        ) {
            let p = all(1, &l, offset, len);
            let c = u64::from(l.chunk_size);
            let mut next = offset;
            for piece in &p {
                let file_pos = piece.chunk.index * c + piece.offset_in_chunk;
                prop_assert_eq!(file_pos, next, "contiguous, in order");
                prop_assert_eq!(piece.offset_in_buf, next - offset);
                prop_assert!(piece.len > 0);
                prop_assert!(piece.offset_in_chunk + piece.len <= c, "inside one chunk");
                next += piece.len;
            }
            prop_assert_eq!(next, offset + len);
            let it = pieces(Ino(1), &l, offset, len).expect("valid");
            prop_assert_eq!(it.size_hint(), (p.len(), Some(p.len())));
        }

        #[test]
        fn ids_are_injective_within_limits(
            a in (valid_ino(), 0..MAX_CHUNKS),
            b in (valid_ino(), 0..MAX_CHUNKS),
        ) {
            let ra = ChunkRef { file: Ino(a.0), index: a.1 };
            let rb = ChunkRef { file: Ino(b.0), index: b.1 };
            let (ia, ib) = (ra.id().expect("fits"), rb.id().expect("fits"));
            prop_assert_eq!(ia.chunk_ref(), ra);
            prop_assert_eq!(ia == ib, ra == rb);
        }
    }
}
