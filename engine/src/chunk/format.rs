//! A chunk file on disk, block by block (every block is [`BLOCK`] bytes):
//!
//! ```text
//! block 0                      header: magic "GVCH", format, chunk id,
//!                              chunk version, size, chunk size, crc32c
//! blocks 1 ..= table_blocks    checksum table: one u32 LE per data block
//! the rest                     data blocks, block i at (1 + table_blocks + i) * BLOCK
//! ```
//!
//! A table entry is [`block_crc`] of its data block (the block's index is
//! mixed in, so a block written at the wrong place fails too), and 0 for a
//! block never written (a hole, read as zeros). Header, table and data are
//! written, then made durable with one `fdatasync`, before a write is
//! acknowledged; a crash before that may leave a block whose data and entry
//! disagree, which a read reports as corrupt instead of returning it.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::io::BLOCK;

pub const MAGIC: [u8; 4] = *b"GVCH";
pub const FORMAT: u16 = 1;

#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Header {
    pub magic: [u8; 4],
    pub format: U16,
    pub _reserved: [u8; 2],
    pub chunk: U64,
    /// Changes with the chunk's replica set (placement, issue 6).
    pub version: U64,
    /// Bytes written up to (the highest offset + length written).
    pub size: U64,
    /// The most this chunk may hold.
    pub chunk_size: U32,
    /// crc32c of the bytes before it.
    pub crc: U32,
}

pub const HEADER_LEN: usize = std::mem::size_of::<Header>();
const _: () = assert!(HEADER_LEN == 40 && HEADER_LEN <= BLOCK);

impl Header {
    pub fn new(chunk: u64, version: u64, size: u64, chunk_size: u32) -> Header {
        let mut h = Header {
            magic: MAGIC,
            format: U16::new(FORMAT),
            _reserved: [0; 2],
            chunk: U64::new(chunk),
            version: U64::new(version),
            size: U64::new(size),
            chunk_size: U32::new(chunk_size),
            crc: U32::new(0),
        };
        h.crc = U32::new(h.compute_crc());
        h
    }

    fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.as_bytes()[..HEADER_LEN - 4])
    }

    /// Decodes and checks a header block.
    pub fn decode(block: &[u8]) -> Result<Header, &'static str> {
        let (h, _) = Header::read_from_prefix(block).map_err(|_| "short header")?;
        if h.magic != MAGIC {
            return Err("not a chunk file (bad magic)");
        }
        if h.crc.get() != h.compute_crc() {
            return Err("header checksum mismatch");
        }
        if h.format.get() != FORMAT {
            return Err("unknown chunk format");
        }
        let cs = h.chunk_size.get() as usize;
        if cs == 0 || !cs.is_multiple_of(BLOCK) || h.size.get() > cs as u64 {
            return Err("inconsistent sizes");
        }
        Ok(h)
    }
}

/// Blocks of checksum table a chunk of `chunk_size` bytes needs.
pub fn table_blocks(chunk_size: usize) -> usize {
    (chunk_size / BLOCK * 4).div_ceil(BLOCK)
}

/// The file offset of data block `i`.
pub fn data_offset(chunk_size: usize, i: usize) -> u64 {
    ((1 + table_blocks(chunk_size) + i) * BLOCK) as u64
}

/// The table entry of data block `index` holding `data`: never 0, which
/// marks a hole.
pub fn block_crc(index: usize, data: &[u8]) -> u32 {
    debug_assert_eq!(data.len(), BLOCK);
    let seed = crc32c::crc32c(&(index as u64).to_le_bytes());
    match crc32c::crc32c_append(seed, data) {
        0 => 1,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = Header::new(7, 3, 8192, 4 << 20);
        let mut block = vec![0u8; BLOCK];
        block[..HEADER_LEN].copy_from_slice(h.as_bytes());
        let back = Header::decode(&block).unwrap();
        assert_eq!(
            (back.chunk.get(), back.version.get(), back.size.get()),
            (7, 3, 8192)
        );
        for i in 0..HEADER_LEN {
            let mut bad = block.clone();
            bad[i] ^= 0x10;
            assert!(Header::decode(&bad).is_err(), "flip at byte {i} accepted");
        }
        assert!(Header::decode(&block[..10]).is_err());
    }

    #[test]
    fn layout_and_checksums() {
        assert_eq!(table_blocks(4 << 20), 1);
        assert_eq!(table_blocks(64 << 20), 16);
        assert_eq!(data_offset(4 << 20, 0), 2 * BLOCK as u64);
        let zeros = vec![0u8; BLOCK];
        assert_ne!(block_crc(0, &zeros), 0);
        assert_ne!(
            block_crc(0, &zeros),
            block_crc(1, &zeros),
            "the index is mixed in"
        );
    }
}
