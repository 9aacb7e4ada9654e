//! Chunk storage on one disk: the data plane's files (issue 6, item 1).
//!
//! A [`ChunkStore`] keeps each chunk in its own file (`{id:016x}.chunk`,
//! layout in [`format`]), written and read through a [`DiskIo`] backend:
//! io_uring with `O_DIRECT` and registered buffers where it can be set up,
//! `pwrite`/`pread` otherwise. Every 4 KiB block has a crc32c in the
//! chunk's checksum table, checked on every read: a block whose data and
//! checksum disagree (a torn write, a flipped bit, a misplaced write) is
//! reported as [`ChunkError::Corrupt`] with its number and never returned.
//! A write is durable when [`ChunkStore::write`] returns (data, checksums
//! and header, then one `fdatasync`), so an acknowledged write survives a
//! crash. Overwriting a block in place can tear it in a crash before the
//! write returns: that block then reads as corrupt here, and is repaired
//! from another replica (the data plane keeps R copies).
//!
//! The store is one core's: no locks, no threads. Open files are cached,
//! at most [`ChunkOptions::max_open`] of them.

pub mod format;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use zerocopy::IntoBytes;

use crate::io::{
    open_backend_with, AlignedBuf, BackendChoice, Chosen, DiskError, DiskIo, IoFile, OpenMode,
    BLOCK,
};
use format::{block_crc, data_offset, table_blocks, Header};

pub type ChunkId = u64;

/// Default chunk size: 4 MiB (DESIGN.md section 5).
pub const DEFAULT_CHUNK_SIZE: usize = 4 << 20;

#[derive(Clone, Debug)]
pub struct ChunkOptions {
    /// Bytes a chunk may hold: a positive multiple of 4 KiB, at most 1 GiB.
    pub chunk_size: usize,
    /// Chunk files kept open at once.
    pub max_open: usize,
    pub backend: BackendChoice,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_open: 256,
            backend: BackendChoice::Auto,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error("chunk {chunk:016x}: block {block} does not match its checksum")]
    Corrupt { chunk: ChunkId, block: usize },
    #[error("chunk {chunk:016x}: bad header: {why}")]
    BadHeader { chunk: ChunkId, why: &'static str },
    #[error(
        "chunk {chunk:016x}: {len} bytes at {offset} do not fit a chunk of {chunk_size} bytes"
    )]
    OutOfRange {
        chunk: ChunkId,
        offset: u64,
        len: usize,
        chunk_size: usize,
    },
    #[error("chunk {chunk:016x} does not exist")]
    NoSuchChunk { chunk: ChunkId },
    /// A write for an older replica set than the chunk's: refused.
    #[error("chunk {chunk:016x} is at version {have}; a write for version {got} is refused")]
    StaleVersion { chunk: ChunkId, have: u64, got: u64 },
    #[error("chunk store {dir}: {source}")]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("chunk size {0} is not a positive multiple of 4096 up to 1 GiB")]
    BadChunkSize(usize),
}

/// An open chunk: its file, header fields and checksum table.
struct Open {
    file: IoFile,
    version: u64,
    size: u64,
    table: Vec<u32>,
    last_use: u64,
    /// Written since the last sync (`write_unsynced`): not evicted until synced.
    dirty: bool,
    /// File bytes `[from, to)` of blocks a cut cleared, to free after the sync.
    punch: Option<(u64, u64)>,
    /// A write to it failed since the last sync: what is on the disk is
    /// unknown, so the sync fails (nothing written since is acknowledged)
    /// and the chunk is reloaded.
    failed: bool,
    /// Its name in the directory is durable. A new chunk's is made so by
    /// its first sync, after the file's own (see [`ChunkStore::sync`]).
    named: bool,
}

pub struct ChunkStore {
    dir: PathBuf,
    io: Box<dyn DiskIo>,
    chosen: Chosen,
    opts: ChunkOptions,
    open: HashMap<ChunkId, Open>,
    uses: u64,
    buf: AlignedBuf,
    /// Where a write's checksum-table blocks and header are staged.
    meta: (AlignedBuf, AlignedBuf),
    /// Buffers of written batches, for the next ones.
    spare: Vec<AlignedBuf>,
    spare_meta: Vec<(AlignedBuf, AlignedBuf)>,
}

/// One write of [`ChunkStore::write_batch`].
#[derive(Clone, Copy, Debug)]
pub struct BatchWrite<'a> {
    pub chunk: ChunkId,
    pub version: u64,
    pub offset: u64,
    pub data: &'a [u8],
}

/// Writes staged in a batch, submitted together at most.
const GROUP_MAX: usize = 8;

/// A write of a batch, copied and checksummed, not yet on the disk.
struct Staged {
    /// Its place in the batch.
    index: usize,
    chunk: ChunkId,
    blocks: std::ops::Range<usize>,
    /// Where its blocks go in the chunk's file.
    at: u64,
    buf: AlignedBuf,
    /// `buf` is the store's own buffer (`ChunkStore::buf`), to give back.
    own: bool,
}

/// The blocks `len` bytes at `offset` touch (at least one).
fn block_range(offset: u64, len: usize) -> std::ops::Range<usize> {
    let end = offset + len as u64;
    (offset / BLOCK as u64) as usize
        ..(end.div_ceil(BLOCK as u64) as usize).max((offset / BLOCK as u64) as usize + 1)
}

/// Stages the header of an open chunk and its checksum-table blocks
/// holding entries `blocks`: returns where `table` goes in the file and
/// whether it holds the header too. When the table blocks start with the
/// table's first, which lies right after the header (always, for chunks
/// of up to 4 MiB), both go in `table` as one write from offset 0: one IO
/// instead of two for every write batch. Otherwise the header is in
/// `header`, written at offset 0.
fn stage_meta(
    o: &Open,
    chunk: ChunkId,
    cs: usize,
    blocks: std::ops::Range<usize>,
    table: &mut AlignedBuf,
    header: &mut AlignedBuf,
) -> (u64, bool) {
    let per_block = BLOCK / 4;
    let (t0, t1) = (blocks.start / per_block, blocks.end.div_ceil(per_block));
    let with_header = t0 == 0;
    let len = (t1 - t0 + usize::from(with_header)) * BLOCK;
    if table.capacity() < len {
        *table = AlignedBuf::new(len);
    }
    let head = Header::new(chunk, o.version, o.size, cs as u32);
    table.clear();
    if with_header {
        table.fill_from(head.as_bytes());
        table.pad_to_block();
    }
    for c in &o.table[t0 * per_block..(t1 * per_block).min(o.table.len())] {
        table.fill_from(&c.to_le_bytes());
    }
    table.pad_to_block();
    header.clear();
    if with_header {
        return (0, true);
    }
    header.fill_from(head.as_bytes());
    header.pad_to_block();
    (((1 + t0) * BLOCK) as u64, false)
}

/// Writes the checksum-table blocks holding entries `blocks` and the
/// header of an open chunk, with `data` (offset and bytes) if given, all
/// submitted at once, and marks it dirty (synced by the caller). Their
/// order does not matter: none is durable, nor acknowledged, before the
/// sync.
#[allow(clippy::too_many_arguments)]
fn persist_meta(
    io: &mut dyn DiskIo,
    o: &mut Open,
    chunk: ChunkId,
    cs: usize,
    blocks: std::ops::Range<usize>,
    data: Option<(u64, &AlignedBuf)>,
    (table, header): (&mut AlignedBuf, &mut AlignedBuf),
) -> Result<(), ChunkError> {
    let (at, with_header) = stage_meta(o, chunk, cs, blocks, table, header);
    let mut writes = Vec::with_capacity(3);
    writes.extend(data);
    writes.push((at, &*table));
    if !with_header {
        writes.push((0, &*header));
    }
    io.write_all_at(&o.file, &writes)?;
    o.dirty = true;
    Ok(())
}

fn chunk_path(dir: &Path, chunk: ChunkId) -> PathBuf {
    dir.join(format!("{chunk:016x}.chunk"))
}

impl ChunkStore {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: &Path, opts: ChunkOptions) -> Result<ChunkStore, ChunkError> {
        let cs = opts.chunk_size;
        if cs == 0 || !cs.is_multiple_of(BLOCK) || cs > 1 << 30 {
            return Err(ChunkError::BadChunkSize(cs));
        }
        std::fs::create_dir_all(dir).map_err(|source| ChunkError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        // One registered buffer as large as a chunk: every write and read
        // stages in it, so all chunk IO is `WriteFixed`/`ReadFixed`.
        let (mut io, chosen) = open_backend_with(opts.backend, dir, 1, cs)?;
        let buf = io.buffer(BLOCK);
        let meta = (io.buffer(BLOCK), io.buffer(BLOCK));
        Ok(ChunkStore {
            dir: dir.to_path_buf(),
            io,
            chosen,
            opts,
            open: HashMap::new(),
            uses: 0,
            buf,
            meta,
            spare: Vec::new(),
            spare_meta: Vec::new(),
        })
    }

    /// The disk backend in use.
    pub fn chosen(&self) -> &Chosen {
        &self.chosen
    }

    pub fn chunk_size(&self) -> usize {
        self.opts.chunk_size
    }

    /// Every chunk on disk, in id order.
    pub fn list(&self) -> Result<Vec<ChunkId>, ChunkError> {
        let dir_err = |source| ChunkError::Dir {
            dir: self.dir.clone(),
            source,
        };
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).map_err(dir_err)? {
            let name = e.map_err(dir_err)?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name
                .strip_suffix(".chunk")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
            {
                out.push(id);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The chunk's size and version, `None` if it does not exist.
    pub fn stat(&mut self, chunk: ChunkId) -> Result<Option<(u64, u64)>, ChunkError> {
        match self.get(chunk, false) {
            Ok(o) => Ok(Some((o.size, o.version))),
            Err(ChunkError::NoSuchChunk { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A buffer of at least `len` bytes.
    fn buffer(&mut self, len: usize) -> AlignedBuf {
        let mut buf = std::mem::replace(&mut self.buf, AlignedBuf::new(0));
        if buf.capacity() < len {
            buf = self.io.buffer(len);
        }
        buf.clear();
        buf
    }

    /// The open chunk, opening or (with `create`) creating its file.
    fn get(&mut self, chunk: ChunkId, create: bool) -> Result<&mut Open, ChunkError> {
        self.uses += 1;
        if !self.open.contains_key(&chunk) {
            let opened = self.load(chunk, create)?;
            if self.open.len() >= self.opts.max_open {
                // A dirty chunk stays open until its sync: closing it would
                // lose track of what must still be made durable.
                let oldest = self
                    .open
                    .iter()
                    .filter(|(_, o)| !o.dirty)
                    .min_by_key(|(_, o)| o.last_use)
                    .map(|(id, _)| *id);
                if let Some(id) = oldest {
                    self.open.remove(&id);
                }
            }
            self.open.insert(chunk, opened);
        }
        let o = self.open.get_mut(&chunk).expect("inserted above");
        o.last_use = self.uses;
        Ok(o)
    }

    fn load(&mut self, chunk: ChunkId, create: bool) -> Result<Open, ChunkError> {
        let path = chunk_path(&self.dir, chunk);
        let cs = self.opts.chunk_size;
        let blocks = cs / BLOCK;
        if !path.exists() {
            if !create {
                return Err(ChunkError::NoSuchChunk { chunk });
            }
            let file = self.io.open(&path, OpenMode::CreateNew)?;
            // The new name must survive a crash as the data will: the
            // first sync syncs the directory too (`named`). Nothing is on
            // disk until the first write's header: a crash before that
            // sync leaves no file or an empty one, which opens as an empty
            // chunk, and nothing written to it was acknowledged.
            return Ok(Open {
                file,
                version: 0,
                size: 0,
                table: vec![0; blocks],
                last_use: 0,
                dirty: false,
                punch: None,
                failed: false,
                named: false,
            });
        }
        let file = self.io.open(&path, OpenMode::Existing)?;
        let meta_len = (1 + table_blocks(cs)) * BLOCK;
        let mut buf = self.buffer(meta_len);
        self.io.read_at(&file, 0, meta_len, &mut buf)?;
        let bytes = buf.as_slice();
        let result = if bytes.is_empty() {
            Ok(Open {
                file,
                version: 0,
                size: 0,
                table: vec![0; blocks],
                last_use: 0,
                dirty: false,
                punch: None,
                failed: false,
                named: true,
            })
        } else if bytes.len() < meta_len {
            Err(ChunkError::BadHeader {
                chunk,
                why: "file shorter than its header and checksum table",
            })
        } else {
            match Header::decode(&bytes[..BLOCK]) {
                Err(why) => Err(ChunkError::BadHeader { chunk, why }),
                Ok(h) if h.chunk.get() != chunk => Err(ChunkError::BadHeader {
                    chunk,
                    why: "the header names another chunk",
                }),
                Ok(h) if h.chunk_size.get() as usize != cs => Err(ChunkError::BadHeader {
                    chunk,
                    why: "written with another chunk size",
                }),
                Ok(h) => {
                    let table = bytes[BLOCK..BLOCK + blocks * 4]
                        .chunks_exact(4)
                        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    Ok(Open {
                        file,
                        version: h.version.get(),
                        size: h.size.get(),
                        table,
                        last_use: 0,
                        dirty: false,
                        punch: None,
                        failed: false,
                        named: true,
                    })
                }
            }
        };
        self.buf = buf;
        result
    }

    fn check_range(&self, chunk: ChunkId, offset: u64, len: usize) -> Result<(), ChunkError> {
        let cs = self.opts.chunk_size;
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > cs as u64)
        {
            return Err(ChunkError::OutOfRange {
                chunk,
                offset,
                len,
                chunk_size: cs,
            });
        }
        Ok(())
    }

    /// Reads data block `i` of an open chunk into `dst` and verifies it (a
    /// hole reads as zeros).
    fn read_block(&mut self, chunk: ChunkId, i: usize, dst: &mut [u8]) -> Result<(), ChunkError> {
        let cs = self.opts.chunk_size;
        let mut buf = self.buffer(BLOCK);
        let o = self.open.get(&chunk).expect("open");
        let want = o.table[i];
        let result = if want == 0 {
            dst.fill(0);
            Ok(())
        } else {
            self.io
                .read_at(&o.file, data_offset(cs, i), BLOCK, &mut buf)?;
            if buf.len() == BLOCK && block_crc(i, buf.as_slice()) == want {
                dst.copy_from_slice(buf.as_slice());
                Ok(())
            } else {
                Err(ChunkError::Corrupt { chunk, block: i })
            }
        };
        self.buf = buf;
        result
    }

    /// Writes `data` at `offset` of `chunk` (created if new) for replica-set
    /// `version`, durably: on `Ok` it survives a crash. A version older than
    /// the chunk's is refused; a newer one is adopted.
    pub fn write(
        &mut self,
        chunk: ChunkId,
        version: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<(), ChunkError> {
        self.write_unsynced(chunk, version, offset, data)?;
        self.sync(chunk)
    }

    /// Makes every write to `chunk` since its last sync durable (one sync
    /// for a group of writes). Nothing to do for a chunk not written.
    pub fn sync(&mut self, chunk: ChunkId) -> Result<(), ChunkError> {
        let Some(o) = self.open.get_mut(&chunk) else {
            return Ok(());
        };
        if o.failed {
            self.open.remove(&chunk);
            return Err(ChunkError::Disk(DiskError::Os {
                op: "chunk write",
                source: std::io::Error::other("a write since the last sync failed"),
            }));
        }
        if !o.dirty {
            return Ok(());
        }
        match self.io.sync(&o.file) {
            Ok(()) => {
                if !o.named {
                    // A new chunk: its name must be as durable as what is
                    // acknowledged in it. Synced here rather than at
                    // creation, the file's own sync has (on a journaling
                    // file system) usually committed the name already, so
                    // this one is cheap: one journal commit per new chunk,
                    // not two.
                    if let Err(source) = std::fs::File::open(&self.dir).and_then(|d| d.sync_all()) {
                        self.open.remove(&chunk);
                        return Err(ChunkError::Dir {
                            dir: self.dir.clone(),
                            source,
                        });
                    }
                    o.named = true;
                }
                o.dirty = false;
                // Only now: punched before the table said "hole", a crash
                // would leave zeros under old checksums, which read as
                // corrupt. A punch that fails or is lost in a crash costs
                // space only: the blocks read as zeros by their checksums.
                if let Some((from, to)) = o.punch.take() {
                    if let Err(e) = self.io.punch_hole(&o.file, from, to - from) {
                        tracing::debug!(?chunk, "punching a hole: {e}");
                    }
                }
                Ok(())
            }
            Err(e) => {
                // What is on disk is unknown: reload it next time.
                self.open.remove(&chunk);
                Err(e.into())
            }
        }
    }

    /// Whether `chunk` has writes not yet made durable by [`Self::sync`].
    pub fn is_dirty(&self, chunk: ChunkId) -> bool {
        self.open.get(&chunk).is_some_and(|o| o.dirty)
    }

    /// [`Self::write`] without the sync: durable only after [`Self::sync`]
    /// of the chunk (storage shards write a batch, then sync each chunk
    /// once). Reads see it at once.
    pub fn write_unsynced(
        &mut self,
        chunk: ChunkId,
        version: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<(), ChunkError> {
        let write = BatchWrite {
            chunk,
            version,
            offset,
            data,
        };
        self.write_batch(&[write])
            .pop()
            .expect("one result per write")
    }

    /// [`Self::write_unsynced`] of several writes at once, with a result
    /// for each, in order. Their data goes to the disk together (up to 8
    /// writes at a time, so a disk that works on several IOs at once does),
    /// submitted with each touched chunk's checksum table and header, in
    /// one wait (two, past 16 entries). A write overlapping one before it in the same chunk waits
    /// for it, so writes to a chunk land in their order.
    pub fn write_batch(&mut self, writes: &[BatchWrite<'_>]) -> Vec<Result<(), ChunkError>> {
        let mut results: Vec<Option<Result<(), ChunkError>>> =
            writes.iter().map(|_| None).collect();
        let mut group: Vec<Staged> = Vec::new();
        for (index, w) in writes.iter().enumerate() {
            let blocks = block_range(w.offset, w.data.len());
            let overlaps = group.iter().any(|g| {
                g.chunk == w.chunk && g.blocks.start < blocks.end && blocks.start < g.blocks.end
            });
            if overlaps || group.len() == GROUP_MAX {
                self.flush(&mut group, &mut results);
            }
            match self.stage(index, w) {
                Ok(Some(staged)) => group.push(staged),
                Ok(None) => results[index] = Some(Ok(())),
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        self.flush(&mut group, &mut results);
        results
            .into_iter()
            .map(|r| r.expect("every write has a result"))
            .collect()
    }

    /// Checks one write, copies and checksums its blocks into a buffer of
    /// its own and updates the chunk's table, size and version in memory;
    /// `None` for an empty write.
    fn stage(&mut self, index: usize, w: &BatchWrite<'_>) -> Result<Option<Staged>, ChunkError> {
        let BatchWrite {
            chunk,
            version,
            offset,
            data,
        } = *w;
        self.check_range(chunk, offset, data.len())?;
        if data.is_empty() {
            return Ok(None);
        }
        let cs = self.opts.chunk_size;
        let have = self.get(chunk, true)?.version;
        if version < have {
            return Err(ChunkError::StaleVersion {
                chunk,
                have,
                got: version,
            });
        }
        let end = offset + data.len() as u64;
        let blocks = block_range(offset, data.len());
        let (b0, b1) = (blocks.start, blocks.end);
        let n = (b1 - b0) * BLOCK;
        // Partial first and last blocks keep their other bytes: read them
        // (verified) first. With them and the data every byte of the
        // staged blocks is written, so the write buffer is filled in place.
        // (No staged write covers them: `write_batch` flushed any first.)
        let head = (offset % BLOCK as u64) as usize;
        let (read_first, read_last) = (
            head != 0,
            !(end.is_multiple_of(BLOCK as u64) || (b1 - 1 == b0 && head != 0)),
        );
        let (mut first, mut last) = ([0u8; BLOCK], [0u8; BLOCK]);
        if read_first {
            self.read_block(chunk, b0, &mut first)?;
        }
        if read_last {
            self.read_block(chunk, b1 - 1, &mut last)?;
        }
        // The store's own (registered) buffer for the first write of a
        // group, so a lone write is a `WriteFixed`; spares for the others.
        let own = self.buf.capacity() >= n;
        let mut buf = if own {
            std::mem::replace(&mut self.buf, AlignedBuf::new(0))
        } else {
            match self.spare.pop() {
                Some(b) if b.capacity() >= n => b,
                _ => self.io.buffer(n),
            }
        };
        buf.clear();
        let staged = buf.prepare_read(n);
        if read_first {
            staged[..BLOCK].copy_from_slice(&first);
        }
        if read_last {
            staged[n - BLOCK..].copy_from_slice(&last);
        }
        // Copied and checksummed a block at a time, each while it is in
        // the cache, instead of two passes over the whole write.
        let o = self.open.get_mut(&chunk).expect("open");
        for (k, block) in staged.chunks_exact_mut(BLOCK).enumerate() {
            let (lo, hi) = (k * BLOCK, (k + 1) * BLOCK);
            let (from, to) = (lo.max(head), hi.min(head + data.len()));
            if from < to {
                block[from - lo..to - lo].copy_from_slice(&data[from - head..to - head]);
            }
            o.table[b0 + k] = block_crc(b0 + k, block);
        }
        o.size = o.size.max(end);
        o.version = version;
        // A cut not yet synced must not free blocks this write fills: its
        // space is then left to the next cut.
        o.punch = None;
        // Dirty from now: an open chunk with writes on their way is never
        // closed to make room for another.
        o.dirty = true;
        Ok(Some(Staged {
            index,
            chunk,
            blocks,
            at: data_offset(cs, b0),
            buf,
            own,
        }))
    }

    /// Writes the staged writes' data and their chunks' tables and headers,
    /// all submitted at once; records each write's result. On an error
    /// what reached the disk is unknown: the chunks are reloaded from it
    /// next time, and their writes fail.
    fn flush(&mut self, group: &mut Vec<Staged>, results: &mut [Option<Result<(), ChunkError>>]) {
        if group.is_empty() {
            return;
        }
        let cs = self.opts.chunk_size;
        // Each touched chunk's table blocks (covering its writes) and header.
        let mut chunks: Vec<(ChunkId, std::ops::Range<usize>)> = Vec::new();
        for g in group.iter() {
            match chunks.iter_mut().find(|(c, _)| *c == g.chunk) {
                Some((_, r)) => *r = r.start.min(g.blocks.start)..r.end.max(g.blocks.end),
                None => chunks.push((g.chunk, g.blocks.clone())),
            }
        }
        let mut meta = Vec::with_capacity(chunks.len());
        for (chunk, blocks) in &chunks {
            let o = self.open.get(chunk).expect("a staged chunk stays open");
            let (mut table, mut header) = match self.spare_meta.pop() {
                Some(pair) => pair,
                None => (self.io.buffer(BLOCK), self.io.buffer(BLOCK)),
            };
            let (at, with_header) =
                stage_meta(o, *chunk, cs, blocks.clone(), &mut table, &mut header);
            meta.push((*chunk, at, with_header, table, header));
        }
        let mut writes: Vec<(&IoFile, u64, &AlignedBuf)> = Vec::new();
        for g in group.iter() {
            writes.push((&self.open[&g.chunk].file, g.at, &g.buf));
        }
        for (chunk, at, with_header, table, header) in &meta {
            let file = &self.open[chunk].file;
            writes.push((file, *at, table));
            if !with_header {
                writes.push((file, 0, header));
            }
        }
        let written = self.io.write_many(&writes);
        drop(writes);
        for g in group.drain(..) {
            results[g.index] = Some(match &written {
                Ok(()) => Ok(()),
                Err(e) => {
                    if let Some(o) = self.open.get_mut(&g.chunk) {
                        o.failed = true;
                    }
                    Err(ChunkError::Disk(DiskError::Os {
                        op: "chunk write",
                        source: std::io::Error::other(e.to_string()),
                    }))
                }
            });
            if g.own {
                self.buf = g.buf;
            } else {
                self.spare.push(g.buf);
            }
        }
        self.spare.truncate(GROUP_MAX);
        for (_, _, _, table, header) in meta {
            self.spare_meta.push((table, header));
        }
        self.spare_meta.truncate(GROUP_MAX);
    }

    /// Cuts `chunk` to its first `keep` bytes for replica-set `version`,
    /// durable only after [`Self::sync`] (like [`Self::write_unsynced`]):
    /// the bytes past `keep` read as zeros from now on, also once a later
    /// write extends the chunk past them again. The blocks wholly past
    /// `keep` become holes (their checksums are cleared); the block holding
    /// `keep` is rewritten with zeros after it. A chunk not here has
    /// nothing to cut.
    pub fn truncate_unsynced(
        &mut self,
        chunk: ChunkId,
        version: u64,
        keep: u64,
    ) -> Result<(), ChunkError> {
        let cs = self.opts.chunk_size;
        if keep > cs as u64 {
            return Err(ChunkError::OutOfRange {
                chunk,
                offset: keep,
                len: 0,
                chunk_size: cs,
            });
        }
        let o = match self.get(chunk, false) {
            Ok(o) => o,
            Err(ChunkError::NoSuchChunk { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if version < o.version {
            return Err(ChunkError::StaleVersion {
                chunk,
                have: o.version,
                got: version,
            });
        }
        let (kept, cut) = (
            (keep / BLOCK as u64) as usize,
            keep.div_ceil(BLOCK as u64) as usize,
        );
        // Written blocks lie below the size, rounded up to a block.
        let last = (o.size.div_ceil(BLOCK as u64) as usize).max(cut);
        let mut buf = self.buffer(BLOCK);
        let result = (|| -> Result<(), ChunkError> {
            if kept < cut {
                let mut block = [0u8; BLOCK];
                self.read_block(chunk, kept, &mut block)?;
                block[(keep % BLOCK as u64) as usize..].fill(0);
                let o = self.open.get_mut(&chunk).expect("open");
                buf.clear();
                buf.fill_from(&block);
                o.table[kept] = if block.iter().all(|&b| b == 0) {
                    0
                } else {
                    block_crc(kept, &block)
                };
                if o.table[kept] != 0 {
                    self.io.write_at(&o.file, data_offset(cs, kept), &buf)?;
                }
            }
            let o = self.open.get_mut(&chunk).expect("open");
            o.table[cut..last].fill(0);
            if cut < last {
                // Their space goes back to the disk once the cleared
                // checksums are durable (see `sync`).
                let (from, to) = (data_offset(cs, cut), data_offset(cs, last));
                o.punch = Some(
                    o.punch
                        .map_or((from, to), |(f, t)| (f.min(from), t.max(to))),
                );
            }
            o.size = o.size.min(keep);
            o.version = version;
            let (table, header) = &mut self.meta;
            persist_meta(
                &mut *self.io,
                o,
                chunk,
                cs,
                kept..last.max(kept + 1),
                None,
                (table, header),
            )
        })();
        if result.is_err() {
            // The sync must fail: see `Open::failed`.
            if let Some(o) = self.open.get_mut(&chunk) {
                o.failed = true;
            }
        }
        self.buf = buf;
        result
    }

    /// Reads up to `len` bytes at `offset`: fewer past the chunk's size,
    /// none at or after it. Every block read is verified first.
    pub fn read(&mut self, chunk: ChunkId, offset: u64, len: usize) -> Result<Vec<u8>, ChunkError> {
        let mut out = Vec::new();
        self.read_into(chunk, offset, len, &mut out)?;
        Ok(out)
    }

    /// [`ChunkStore::read`] into `out` (cleared first), so a caller can
    /// reuse one buffer. On an error `out` holds nothing.
    pub fn read_into(
        &mut self,
        chunk: ChunkId,
        offset: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ChunkError> {
        out.clear();
        self.check_range(chunk, offset, len)?;
        let size = self.get(chunk, false)?.size;
        let end = (offset + len as u64).min(size);
        if end <= offset {
            return Ok(());
        }
        let cs = self.opts.chunk_size;
        let (b0, b1) = (
            (offset / BLOCK as u64) as usize,
            end.div_ceil(BLOCK as u64) as usize,
        );
        let n = (b1 - b0) * BLOCK;
        let mut buf = self.buffer(n);
        let o = self.open.get(&chunk).expect("open");
        let result = (|| {
            self.io.read_at(&o.file, data_offset(cs, b0), n, &mut buf)?;
            // Each block is verified, then copied out while it is in the
            // cache; on a bad one the caller gets nothing (`out` cleared).
            let head = (offset % BLOCK as u64) as usize;
            let want = (end - offset) as usize;
            out.reserve(want);
            let mut at = head;
            while at < head + want {
                let k = at / BLOCK;
                let stop = ((k + 1) * BLOCK).min(head + want);
                let crc = o.table[b0 + k];
                if crc == 0 {
                    out.resize(out.len() + (stop - at), 0); // a hole
                } else {
                    match buf.as_slice().get(k * BLOCK..(k + 1) * BLOCK) {
                        Some(block) if block_crc(b0 + k, block) == crc => {
                            out.extend_from_slice(&block[at - k * BLOCK..stop - k * BLOCK]);
                        }
                        _ => {
                            return Err(ChunkError::Corrupt {
                                chunk,
                                block: b0 + k,
                            })
                        }
                    }
                }
                at = stop;
            }
            Ok(())
        })();
        if result.is_err() {
            out.clear();
        }
        self.buf = buf;
        result
    }

    /// Verifies every written block of a chunk; returns the bad ones.
    pub fn scrub(&mut self, chunk: ChunkId) -> Result<Vec<usize>, ChunkError> {
        let size = self.get(chunk, false)?.size;
        let mut bad = Vec::new();
        let mut block = vec![0u8; BLOCK];
        for i in 0..(size.div_ceil(BLOCK as u64) as usize) {
            match self.read_block(chunk, i, &mut block) {
                Ok(()) => {}
                Err(ChunkError::Corrupt { .. }) => bad.push(i),
                Err(e) => return Err(e),
            }
        }
        Ok(bad)
    }

    /// Deletes a chunk (no error if it does not exist), durably: the
    /// directory is synced, so a crash cannot bring the chunk back.
    pub fn remove(&mut self, chunk: ChunkId) -> Result<(), ChunkError> {
        self.open.remove(&chunk);
        let dir_error = |source| ChunkError::Dir {
            dir: self.dir.clone(),
            source,
        };
        match std::fs::remove_file(chunk_path(&self.dir, chunk)) {
            Ok(()) => std::fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(dir_error),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(dir_error(source)),
        }
    }

    /// The file of a chunk, for tests and tools that damage or inspect it.
    pub fn path_of(&self, chunk: ChunkId) -> PathBuf {
        chunk_path(&self.dir, chunk)
    }

    /// Forgets cached state, as a restart would.
    pub fn close_all(&mut self) {
        self.open.clear();
    }
}
