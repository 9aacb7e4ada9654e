//! Files with data (issue 6): [`FileSystem::open_file`] gives a [`File`]
//! whose writes go straight to the storage nodes.
//!
//! A write under the file's write lease: the chunks it touches are placed
//! by the ministry if they are new (`MetaOp::PlaceChunks`, through the log,
//! once), the minister signs a write grant per chunk (`LeaseRequest::Grants`,
//! kept until the lease changes or the grant nears its end), and the data
//! goes to every replica of every chunk at once: one round trip. The write
//! returns when every replica made it durable; on a failure the caller
//! still holds its data and may write again. The size and mtime reach the
//! ministry in one `MetaOp::Written` on [`File::flush`] or
//! [`File::close`] and with the write lease's renewals (the durable writes
//! since the last report), not per write.
//!
//! A read asks the ministry (any member) where the chunks are and reads each
//! from a replica, trying the next one when a replica fails (a block that
//! fails its checksum, a node that is down); unwritten parts read as zeros.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use govfs_core::data::{pieces, ChunkRef, ChunkRefusal, Piece, SignedGrant, Stamp, Watermark};
use govfs_core::lease::{Mode, Region};
use govfs_core::meta::{
    encode_request, Attr, ChunkPlace, Ino, Layout, MetaOp, MetaReply, MetaRequest, PLACE_MAX,
};
use govfs_core::node::{ClientMsg, LeaseRefusal, LeaseReply, LeaseRequest, ServerMsg, MAX_GRANTS};
use govfs_core::raft::{GroupId, NodeId};
use tokio::sync::{mpsc, Mutex as AsyncMutex};
use tokio::time::Instant;

use crate::chunks::join_all;
use crate::error::ClientError;
use crate::fs::{FileSystem, FsError};
use crate::lease::{LeaseOptions, OnRefresh, RegionLease};
use crate::readahead::{Fetch, Readahead};

/// Rounds of resending a write (after expired grants or replaced replicas).
const MAX_WRITE_ROUNDS: usize = 4;
/// A grant this close to its end is renewed before use.
const GRANT_MARGIN: Duration = Duration::from_millis(100);
/// Bytes read from one replica at once.
const READ_PIECE: u64 = 4 << 20;
/// Chunks placed and granted ahead of a writer appending to the file, in
/// the same log entry and grant request as the chunk it needs: a stream of
/// writes stops for the ministry once per this many chunks, not per chunk.
const PLACE_AHEAD: u64 = 4;

/// How to open a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    Read,
    /// Writes under a write lease on the whole file.
    Write,
}

/// An open file. Calls on one handle are sequential (`&mut self`).
pub struct File {
    fs: FileSystem,
    path: String,
    ministry: GroupId,
    ino: Ino,
    layout: Layout,
    /// The size as last seen from the ministry.
    size: u64,
    lease: Option<RegionLease>,
    places: BTreeMap<u64, ChunkPlace>,
    /// Grants of the current lease, by chunk index, with when the holder
    /// stops trusting them.
    grants: BTreeMap<u64, (SignedGrant, Instant)>,
    next_write: u64,
    /// The lease is this handle's own (taken again when lost).
    own_lease: bool,
    /// Past the end of the furthest write not yet reported to the ministry.
    written_end: u64,
    /// Async writes (`write_async`): in flight by id with their byte range,
    /// their outcomes, and the low watermark.
    inflight: BTreeMap<u64, (u64, u64)>,
    /// The last async write id sent.
    last_async: Option<u64>,
    /// Chunks a read found a corrupt replica of, to repair.
    bad: std::collections::BTreeSet<u64>,
    done: Vec<Completion>,
    done_tx: mpsc::UnboundedSender<Completion>,
    done_rx: mpsc::UnboundedReceiver<Completion>,
    watermark: Watermark,
    /// The end of the durable writes the lease's renewals have not reported
    /// yet (0: nothing to report).
    durable: Arc<AtomicU64>,
    /// Held by a renewal's size report while it is sent, with the number of
    /// truncates so far: a truncate waits for a report on its way and makes
    /// the ones taken before it void, so an old size never lands after the
    /// new one.
    reports: Arc<AsyncMutex<u64>>,
    truncates: Arc<AtomicU64>,
    readahead: Readahead,
}

/// How an async write ended.
#[derive(Debug)]
pub struct Completion {
    /// The caller's id.
    pub id: u64,
    pub result: Result<AsyncAck, FsError>,
}

/// An async write durable on every replica of every chunk it touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsyncAck {
    /// The largest storage-node Lamport time among its acknowledgements.
    pub stamp: Stamp,
    /// The smallest "earliest uncommitted" time among them: every write
    /// those nodes stamped below it is durable there.
    pub earliest_uncommitted: Stamp,
}

impl FileSystem {
    /// Opens the regular file at `path` (following symlinks); `Write` takes
    /// a write lease on the whole file (renewed in the background until
    /// [`File::close`]).
    pub async fn open_file(&mut self, path: &str, mode: OpenMode) -> Result<File, FsError> {
        match mode {
            OpenMode::Read => {
                let (ministry, attr) = self.locate(path, true).await?;
                let fs = self.handle(ministry);
                File::new(fs, path, ministry, attr, None)
            }
            OpenMode::Write => self.open_file_region(path, Region::WHOLE).await,
        }
    }

    /// Opens the regular file at `path` for writing bytes `region` only,
    /// under a write lease on that region: writers of disjoint regions
    /// write at once. A write outside the region is refused.
    pub async fn open_file_region(&mut self, path: &str, region: Region) -> Result<File, FsError> {
        let lease = self
            .open_region_with(path, region, Mode::Write, &LeaseOptions::default())
            .await?;
        let (ministry, attr) = self.locate(path, true).await?;
        let fs = self.handle(ministry);
        File::new(fs, path, ministry, attr, Some(lease))
    }

    /// Opens file `ino` of `ministry` by number (the path is unknown, as
    /// for the re-replication agent, which finds chunks, not names) for
    /// writing bytes `region` only, under a write lease acquired with
    /// `opts`. `label` names the file in errors.
    pub async fn open_ino_region(
        &mut self,
        ministry: GroupId,
        ino: Ino,
        region: Region,
        opts: &LeaseOptions,
        label: &str,
    ) -> Result<File, FsError> {
        let attr = match self.call(ministry, MetaOp::Stat { ino }, label).await? {
            MetaReply::Attr(attr) => attr,
            other => {
                return Err(FsError::Unexpected {
                    ministry,
                    what: format!("{other:?}"),
                })
            }
        };
        let mut holder = self.client().session();
        holder.saw_index(ministry, self.session().seen(ministry));
        let grant = holder
            .acquire_lease(ministry, ino, region, Mode::Write, opts)
            .await?;
        let lease = RegionLease::start(&holder, grant, opts);
        let fs = self.handle(ministry);
        File::new(fs, label, ministry, attr, Some(lease))
    }

    /// A handle of its own for a file, that has seen what this one saw.
    fn handle(&self, ministry: GroupId) -> FileSystem {
        let mut fs = FileSystem::new(self.session().client().clone(), self.options().clone());
        fs.saw(ministry, self.session().seen(ministry));
        fs
    }
}

impl File {
    fn new(
        fs: FileSystem,
        path: &str,
        ministry: GroupId,
        attr: Attr,
        lease: Option<RegionLease>,
    ) -> Result<File, FsError> {
        if attr.kind != govfs_core::meta::FileType::File {
            return Err(FsError::Errno {
                path: path.to_string(),
                errno: if attr.kind == govfs_core::meta::FileType::Dir {
                    govfs_core::meta::Errno::EISDIR
                } else {
                    govfs_core::meta::Errno::EINVAL
                },
            });
        }
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let readahead = Readahead::new(fs.options().readahead);
        let file = File {
            fs,
            path: path.to_string(),
            ministry,
            ino: attr.ino,
            layout: attr.layout,
            size: attr.size,
            lease,
            places: BTreeMap::new(),
            grants: BTreeMap::new(),
            next_write: 1,
            own_lease: true,
            written_end: 0,
            inflight: BTreeMap::new(),
            last_async: None,
            bad: Default::default(),
            done: Vec::new(),
            done_tx,
            done_rx,
            watermark: Watermark::new(),
            durable: Arc::new(AtomicU64::new(0)),
            reports: Arc::new(AsyncMutex::new(0)),
            truncates: Arc::new(AtomicU64::new(0)),
            readahead,
        };
        file.attach_reporter();
        Ok(file)
    }

    /// What the lease runs after each renewal: the size and mtime of the
    /// durable writes since the last report go to the ministry in one
    /// `MetaOp::Written`, so readers see a file grow while it is being
    /// written, not only after a flush or close. A failed report is
    /// retried at the next renewal.
    fn reporter(&self) -> OnRefresh {
        let client = self.fs.session().client().clone();
        let (creds, deadline) = (self.fs.options().creds.clone(), self.fs.options().deadline);
        let (ministry, ino) = (self.ministry, self.ino);
        let (durable, reports) = (Arc::clone(&self.durable), Arc::clone(&self.reports));
        let truncates = Arc::clone(&self.truncates);
        Arc::new(move || {
            let era = truncates.load(Ordering::Acquire);
            let end = durable.swap(0, Ordering::AcqRel);
            if end == 0 {
                return;
            }
            let (client, creds, durable, reports) = (
                client.clone(),
                creds.clone(),
                Arc::clone(&durable),
                Arc::clone(&reports),
            );
            tokio::spawn(async move {
                let sending = reports.lock().await;
                if *sending != era {
                    return; // a truncate came in between: this size is void
                }
                let request = encode_request(&MetaRequest {
                    op: MetaOp::Written { ino, end },
                    creds,
                    now: crate::fs::now(),
                });
                let mut session = client.session();
                if session.submit(ministry, request, deadline).await.is_err() {
                    durable.fetch_max(end, Ordering::AcqRel);
                }
            });
        })
    }

    /// Size reports ride on the renewals of the lease writes go under.
    fn attach_reporter(&self) {
        if let Some(lease) = &self.lease {
            lease.on_refresh(Some(self.reporter()));
        }
    }

    pub fn ino(&self) -> Ino {
        self.ino
    }

    /// The highest log index of the file's ministry this handle has seen.
    pub fn seen(&self) -> u64 {
        self.fs.session().seen(self.ministry)
    }

    /// The write lease writes go under (none: read only).
    pub fn lease(&self) -> Option<&RegionLease> {
        self.lease.as_ref()
    }

    /// Puts writes under `lease` from now on (a write lease on this file,
    /// from [`FileSystem::open_region`], for example one a POSIX byte-range
    /// lock maps to) and hands back the one held before, still held: the
    /// caller releases it. `None` makes the handle read only. A lease on
    /// another file is refused (and handed back in the error).
    pub fn replace_lease(
        &mut self,
        lease: Option<RegionLease>,
    ) -> Result<Option<RegionLease>, RegionLease> {
        match lease {
            Some(l) if l.grant().granted.file != self.ino => Err(l),
            l => {
                self.own_lease = false;
                let before = std::mem::replace(&mut self.lease, l);
                if let Some(b) = &before {
                    b.on_refresh(None);
                }
                self.attach_reporter();
                Ok(before)
            }
        }
    }

    /// Bytes read ahead of a sequential reader from now on (0: none;
    /// [`crate::FsOptions::readahead`] until set).
    pub fn set_readahead(&mut self, bytes: u64) {
        self.readahead.set_window(bytes);
    }

    /// Reads this handle answered with bytes it had read ahead.
    pub fn read_ahead_hits(&self) -> u64 {
        self.readahead.hits
    }

    /// The size: the ministry's as last seen, or past this handle's writes.
    pub fn size(&self) -> u64 {
        self.size.max(self.written_end)
    }

    fn io_error(&self, what: impl std::fmt::Display) -> FsError {
        FsError::Data {
            path: self.path.clone(),
            why: what.to_string(),
        }
    }

    /// Writes `data` at `offset`: durable on every replica when it returns.
    pub async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), FsError> {
        self.readahead.clear();
        self.ensure_lease().await?;
        if data.is_empty() {
            return Ok(());
        }
        let (parts, indexes) = self.placed_pieces(offset, data.len() as u64).await?;
        // Each round writes the pieces not yet on every replica. A grant
        // refused as expired (a clock step, a slow write) is fetched again;
        // a replica that cannot be reached is replaced by the ministry and
        // gets the chunk's data from a survivor, then the piece is sent
        // again: the data stays here until every replica has it.
        let mut todo: Vec<usize> = (0..parts.len()).collect();
        for round in 0..MAX_WRITE_ROUNDS {
            self.grants_for(&indexes, round > 0).await?;
            let id = self.next_write;
            self.next_write += parts.len() as u64;
            let client = self.fs.session().client().clone();
            let writes = todo.iter().map(|&k| {
                let p = &parts[k];
                let (grant, _) = &self.grants[&p.chunk.index];
                let at = p.offset_in_buf as usize;
                let bytes = &data[at..at + p.len as usize];
                client.write_chunk_each(
                    grant,
                    &grant.grant.replicas,
                    p.offset_in_chunk,
                    bytes,
                    id + k as u64,
                )
            });
            let outcomes = join_all(writes).await;
            let mut again = Vec::new();
            let mut dead: BTreeMap<u64, Vec<NodeId>> = BTreeMap::new();
            let mut stale = Vec::new();
            for (&k, answers) in todo.iter().zip(outcomes) {
                let mut failed = false;
                for (node, r) in answers {
                    match answer(r)? {
                        Answer::Done => {}
                        Answer::Expired => failed = true,
                        // Another handle moved the chunk to a new replica set
                        // (a repair): learn it, and write there.
                        Answer::Stale => {
                            stale.push(parts[k].chunk.index);
                            failed = true;
                        }
                        Answer::Unreachable(e) => {
                            tracing::warn!(path = %self.path, node, "replica unreachable: {e}");
                            dead.entry(parts[k].chunk.index).or_default().push(node);
                            failed = true;
                        }
                    }
                }
                if failed {
                    again.push(k);
                }
            }
            if again.is_empty() {
                let end = offset + data.len() as u64;
                self.written_end = self.written_end.max(end);
                self.durable.fetch_max(end, Ordering::AcqRel);
                return Ok(());
            }
            stale.sort_unstable();
            stale.dedup();
            if !stale.is_empty() {
                for index in &stale {
                    self.places.remove(index);
                    self.grants.remove(index);
                }
                self.place(&stale).await?;
            }
            for (index, mut drop) in dead {
                if stale.contains(&index) {
                    continue; // the new set may not hold the dead node
                }
                drop.sort_unstable();
                drop.dedup();
                self.rereplicate(index, &drop).await?;
            }
            todo = again;
        }
        Err(self.io_error("the write did not reach every replica"))
    }

    /// Gives chunk `index` a new replica set without `drop` (none: the same
    /// set at a new version) and copies its data there from a replica that
    /// stays. Needs a lease covering the whole chunk.
    pub async fn rereplicate(&mut self, index: u64, drop: &[NodeId]) -> Result<(), FsError> {
        self.readahead.clear();
        let old = match self.places.get(&index) {
            Some(p) => p.clone(),
            None => {
                self.locate_chunks(&[index]).await?;
                self.places
                    .get(&index)
                    .cloned()
                    .ok_or_else(|| self.io_error(format!("chunk {index} is not placed")))?
            }
        };
        // Everything that can fail before the ministry moves the chunk is
        // done first: the lease must cover the whole chunk, and the
        // survivors' copy (at most the chunk's size) is read.
        let cs = u64::from(self.layout.chunk_size);
        let covered = self.lease.as_ref().is_some_and(|l| {
            let r = l.grant().granted.region;
            r.start() <= index * cs && r.end() >= (index + 1) * cs
        });
        if !covered {
            return Err(self.io_error(format!(
                "chunk {index} needs a lease on all of it to be moved"
            )));
        }
        let chunk = ChunkRef {
            file: self.ino,
            index,
        }
        .id()
        .map_err(|e| self.io_error(e))?;
        let sources: Vec<NodeId> = old
            .replicas
            .iter()
            .copied()
            .filter(|n| !drop.contains(n))
            .collect();
        let from = ChunkPlace {
            index,
            version: old.version,
            replicas: sources,
        };
        let content = self.read_replicas(&from, chunk, 0, cs).await?;
        let op = MetaOp::Replace {
            ino: self.ino,
            index,
            drop: drop.to_vec(),
            candidates: Vec::new(),
        };
        let path = self.path.clone();
        let new = match self.fs.call(self.ministry, op, &path).await? {
            MetaReply::Chunks(mut list) if list.len() == 1 => list.remove(0),
            other => return Err(self.io_error(format!("unexpected answer {other:?}"))),
        };
        self.places.insert(index, new.clone());
        self.grants.remove(&index);
        if content.is_empty() {
            return Ok(());
        }
        // From here until the copy lands, readers of the new version find
        // no replica holding it and fail; a failed copy is retried by the
        // next write or repair of the chunk.
        self.grants_for(&[index], true).await?;
        let (grant, _) = &self.grants[&index];
        let client = self.fs.session().client().clone();
        let id = self.next_write;
        self.next_write += 1;
        client
            .write_chunk(grant, 0, &content, id)
            .await
            .map_err(FsError::from)?;
        tracing::info!(path = %self.path, index, ?drop, replicas = ?new.replicas, version = new.version, "chunk re-replicated");
        Ok(())
    }

    /// Starts writing `data` at `offset` as write `id` (the caller's; ids
    /// must grow from one call to the next) and returns once it is sent:
    /// the handle keeps the data until every replica acknowledged it, and
    /// resends it after a failure (network errors, a grant that expired)
    /// until the lease's deadline. A write overlapping one still in flight
    /// waits for it first, so the later one wins and neither is lost.
    /// Outcomes come from [`File::completions`] or
    /// [`File::next_completion`]; [`File::low_watermark`] says up to which
    /// id every write is durable.
    pub async fn write_async(
        &mut self,
        id: u64,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<(), FsError> {
        self.readahead.clear();
        self.ensure_lease().await?;
        let end = offset.saturating_add(data.len() as u64);
        if let Some(last) = self.last_async.filter(|last| id <= *last) {
            return Err(self.io_error(format!("async write ids must grow: {id} after {last}")));
        }
        let (parts, indexes) = self.placed_pieces(offset, data.len() as u64).await?;
        self.grants_for(&indexes, false).await?;
        // Counted only once it is sent: a write refused before (no lease,
        // no grant) never holds the watermark back.
        self.watermark
            .issue(id, 1)
            .map_err(|e| self.io_error(format!("async write {id}: {e}")))?;
        self.last_async = Some(id);
        let grants: Vec<SignedGrant> = parts
            .iter()
            .map(|p| self.grants[&p.chunk.index].0.clone())
            .collect();
        let deadline = self
            .lease
            .as_ref()
            .map_or_else(Instant::now, |l| l.deadline());
        let client = self.fs.session().client().clone();
        let tx = self.done_tx.clone();
        let path = self.path.clone();
        self.inflight.insert(id, (offset, end));
        self.written_end = self.written_end.max(end);
        tokio::spawn(async move {
            let result = send_async(&client, id, &parts, &grants, &data, deadline)
                .await
                .map_err(|why| FsError::Data { path, why });
            let _ = tx.send(Completion { id, result });
        });
        Ok(())
    }

    /// The pieces of a write of `len` bytes at `offset` and their chunks,
    /// placed, once no async write in flight overlaps it (seed 002: of two
    /// writes to one place the later wins and neither is lost).
    async fn placed_pieces(
        &mut self,
        offset: u64,
        len: u64,
    ) -> Result<(Vec<Piece>, Vec<u64>), FsError> {
        self.wait_overlapping(offset, offset.saturating_add(len))
            .await;
        let parts: Vec<Piece> = pieces(self.ino, &self.layout, offset, len)
            .map_err(|e| self.io_error(e))?
            .collect();
        let indexes = dedup(parts.iter().map(|p| p.chunk.index));
        let mut want = indexes.clone();
        if let Some(&last) = indexes.last() {
            if !self.places.contains_key(&last) && offset.saturating_add(len) >= self.size() {
                want.extend(self.ahead_of(last));
            }
        }
        self.place(&want).await?;
        Ok((parts, indexes))
    }

    /// The chunks after `last` to place and grant ahead of a writer: none
    /// unless the lease reaches the end of the file (grants outside it are
    /// refused).
    fn ahead_of(&self, last: u64) -> std::ops::Range<u64> {
        let open_ended = self
            .lease
            .as_ref()
            .is_some_and(|l| l.grant().granted.region.end() == u64::MAX);
        if open_ended {
            last.saturating_add(1)..last.saturating_add(PLACE_AHEAD + 1)
        } else {
            0..0
        }
    }

    /// Waits until no async write in flight overlaps `[offset, end)`.
    async fn wait_overlapping(&mut self, offset: u64, end: u64) {
        while self.inflight.values().any(|&(s, e)| s < end && offset < e) {
            match self.done_rx.recv().await {
                Some(c) => self.complete(c),
                None => break,
            }
        }
    }

    fn complete(&mut self, c: Completion) {
        let range = self.inflight.remove(&c.id);
        if let (Ok(_), Some((_, end))) = (&c.result, range) {
            self.durable.fetch_max(end, Ordering::AcqRel);
        }
        if let Ok(ack) = &c.result {
            let _ = self
                .watermark
                .ack(c.id, 0, ack.stamp, ack.earliest_uncommitted);
        }
        self.done.push(c);
    }

    /// Outcomes of async writes that finished since the last call.
    pub fn completions(&mut self) -> Vec<Completion> {
        while let Ok(c) = self.done_rx.try_recv() {
            self.complete(c);
        }
        std::mem::take(&mut self.done)
    }

    /// Waits for the next async write to finish; `None` when none is in flight.
    pub async fn next_completion(&mut self) -> Option<Completion> {
        if self.done.is_empty() {
            if self.inflight.is_empty() {
                return None;
            }
            let c = self.done_rx.recv().await?;
            self.complete(c);
        }
        Some(self.done.remove(0))
    }

    /// The largest async write id up to which every write is durable on
    /// all its replicas (`None` until the first is). A failed write keeps
    /// it below that write: it is not durable.
    pub fn low_watermark(&mut self) -> Option<u64> {
        while let Ok(c) = self.done_rx.try_recv() {
            self.complete(c);
        }
        self.watermark.low_watermark()
    }

    /// Async writes issued and not yet durable.
    pub fn async_in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Reads up to `len` bytes at `offset` (fewer past the end of the file).
    ///
    /// Without a write lease the size is the one seen at open, asked again
    /// only for a read that reaches past it (close-to-open consistency, as
    /// NFS: a reader sees what writers closed before it opened, and growth
    /// after).
    pub async fn read_at(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, FsError> {
        if self.lease.is_none() && offset.saturating_add(len) > self.size() {
            self.refresh_size().await?;
        }
        let end = offset.saturating_add(len).min(self.size());
        if end <= offset {
            return Ok(Vec::new());
        }
        let want = (end - offset) as usize;
        let parts: Vec<Piece> = pieces(self.ino, &self.layout, offset, end - offset)
            .map_err(|e| self.io_error(e))?
            .collect();
        let indexes = dedup(parts.iter().map(|p| p.chunk.index));
        self.locate_chunks(&indexes).await?;
        // One piece read whole from one replica: its bytes are the answer
        // (no zeroed buffer, no copy).
        if let [p] = parts.as_slice() {
            if p.len <= READ_PIECE {
                if let Some(place) = self.places.get(&p.chunk.index).cloned() {
                    let chunk = p.chunk.id().map_err(|e| self.io_error(e))?;
                    let (fetch, sequential) = self.readahead.take(offset, p.len, place.version);
                    if sequential {
                        self.read_ahead(p.len, false).await;
                    }
                    let fetched = match fetch {
                        Some(task) => self.fetched(task, place.index).await,
                        None => None,
                    };
                    let mut got = match fetched {
                        Some(data) => data,
                        None => {
                            self.read_replicas(&place, chunk, p.offset_in_chunk, p.len)
                                .await?
                        }
                    };
                    if sequential {
                        // The next chunk is located now, off the path of
                        // this read, with reads ahead already in flight.
                        self.read_ahead(p.len, true).await;
                    }
                    // Past what the replica holds, within the file: zeros.
                    got.resize(want, 0);
                    if !self.bad.is_empty() {
                        self.repair_bad().await;
                    }
                    return Ok(got);
                }
            }
        }
        self.readahead.passed(end);
        let mut out = vec![0u8; want];
        for p in parts {
            let Some(place) = self.places.get(&p.chunk.index).cloned() else {
                continue; // a hole: zeros
            };
            let chunk = p.chunk.id().map_err(|e| self.io_error(e))?;
            let mut done = 0;
            while done < p.len {
                let n = (p.len - done).min(READ_PIECE);
                let at = (p.offset_in_buf + done) as usize;
                let got = self
                    .read_replicas(&place, chunk, p.offset_in_chunk + done, n)
                    .await?;
                out[at..at + got.len()].copy_from_slice(&got);
                done += n;
            }
        }
        if !self.bad.is_empty() {
            self.repair_bad().await;
        }
        Ok(out)
    }

    /// Waits for the async writes in flight, then reports the size and
    /// mtime of what this handle wrote to the ministry.
    pub async fn flush(&mut self) -> Result<(), FsError> {
        while !self.inflight.is_empty() {
            match self.done_rx.recv().await {
                Some(c) => self.complete(c),
                None => break,
            }
        }
        if self.written_end == 0 {
            return Ok(());
        }
        let op = MetaOp::Written {
            ino: self.ino,
            end: self.written_end,
        };
        let path = self.path.clone();
        if let MetaReply::Attr(a) = self.fs.call(self.ministry, op, &path).await? {
            self.size = a.size;
        }
        self.written_end = 0;
        // Everything durable is reported: the renewals have nothing left.
        self.durable.store(0, Ordering::Release);
        Ok(())
    }

    /// truncate(2) through this handle: the file becomes `size` bytes.
    /// Shrinking, the data past `size` is cut on every replica first (it
    /// reads as zeros if the file grows again, never as the old bytes),
    /// then the ministry records the size. Needs the handle's write lease
    /// to cover everything from `size` on. A replica that cannot be reached
    /// is replaced, when the lease covers its whole chunk, and the cut sent
    /// again. On an error the size is unchanged, though the data past
    /// `size` may already be cut on some replicas: a truncate that did not
    /// finish may leave zeros where it was to cut, never old bytes past a
    /// finished one.
    pub async fn truncate(&mut self, size: u64) -> Result<Attr, FsError> {
        self.readahead.clear();
        self.ensure_lease().await?;
        let covers = self.lease.as_ref().is_some_and(|l| {
            let r = l.grant().granted.region;
            r.start() <= size && r.end() == u64::MAX
        });
        if !covers {
            return Err(self.io_error(format!(
                "a truncate to {size} bytes needs a write lease from byte {size} to the end"
            )));
        }
        // Writes so far are reported first, and no renewal's report is on
        // its way: a later report would grow the file again.
        if let Some(lease) = &self.lease {
            lease.on_refresh(None);
        }
        let reports = Arc::clone(&self.reports);
        let mut quiet = reports.lock().await;
        *quiet += 1;
        self.truncates.store(*quiet, Ordering::Release);
        let cut = self.truncate_quietly(size).await;
        drop(quiet);
        self.attach_reporter();
        cut
    }

    async fn truncate_quietly(&mut self, size: u64) -> Result<Attr, FsError> {
        self.flush().await?;
        self.durable.store(0, Ordering::Release);
        self.refresh_size().await?;
        if size < self.size {
            self.cut(size, self.size).await?;
        }
        let op = MetaOp::Setattr {
            ino: self.ino,
            set: govfs_core::meta::SetAttr {
                size: Some(size),
                ..Default::default()
            },
        };
        let path = self.path.clone();
        match self.fs.call(self.ministry, op, &path).await? {
            MetaReply::Attr(a) => {
                self.size = a.size;
                Ok(a)
            }
            other => Err(self.io_error(format!("unexpected answer {other:?}"))),
        }
    }

    /// Cuts every placed chunk holding bytes of `[size, old)` to what lies
    /// below `size`, on all its replicas.
    async fn cut(&mut self, size: u64, old: u64) -> Result<(), FsError> {
        let cs = u64::from(self.layout.chunk_size);
        let (first, last) = (size / cs, (old - 1) / cs);
        let mut placed = Vec::new();
        let mut from = first;
        while from <= last {
            let count = (last - from + 1).min(PLACE_MAX);
            let op = MetaOp::Chunks {
                ino: self.ino,
                first: from,
                count,
            };
            let path = self.path.clone();
            match self.fs.call(self.ministry, op, &path).await? {
                MetaReply::Chunks(list) => {
                    for c in list {
                        placed.push(c.index);
                        self.places.insert(c.index, c);
                    }
                }
                other => return Err(self.io_error(format!("unexpected answer {other:?}"))),
            }
            from += count;
        }
        // A round cuts every chunk not yet cut everywhere; a replica that
        // is down is replaced (the new one gets the survivors' cut data)
        // and the chunk cut again.
        let mut todo = placed;
        for round in 0..MAX_WRITE_ROUNDS {
            for batch in todo.clone().chunks(MAX_GRANTS) {
                self.grants_for(batch, round > 0).await?;
            }
            let client = self.fs.session().client().clone();
            let id = self.next_write;
            self.next_write += todo.len() as u64;
            let cuts = todo.iter().enumerate().map(|(k, index)| {
                let (grant, _) = &self.grants[index];
                let keep = size.saturating_sub(index * cs);
                client.truncate_chunk_each(grant, &grant.grant.replicas, keep, id + k as u64)
            });
            let outcomes = join_all(cuts).await;
            let mut again = Vec::new();
            let mut dead: BTreeMap<u64, Vec<NodeId>> = BTreeMap::new();
            for (&index, answers) in todo.iter().zip(outcomes) {
                let mut failed = false;
                for (node, r) in answers {
                    match answer(r)? {
                        Answer::Done => {}
                        Answer::Expired | Answer::Stale => failed = true,
                        Answer::Unreachable(e) => {
                            tracing::warn!(path = %self.path, node, "replica unreachable: {e}");
                            dead.entry(index).or_default().push(node);
                            failed = true;
                        }
                    }
                }
                if failed {
                    // Learn the chunk's replica set again before the next round.
                    self.places.remove(&index);
                    self.grants.remove(&index);
                    again.push(index);
                }
            }
            if again.is_empty() {
                return Ok(());
            }
            self.locate_chunks(&again).await?;
            for (index, mut drop) in dead {
                drop.sort_unstable();
                drop.dedup();
                self.rereplicate(index, &drop).await?;
            }
            todo = again;
        }
        Err(self.io_error("the truncate did not reach every replica"))
    }

    /// Flushes and releases the write lease.
    pub async fn close(mut self) -> Result<(), FsError> {
        let flushed = self.flush().await;
        if let Some(lease) = self.lease.take() {
            lease.release().await?;
        }
        flushed
    }

    async fn refresh_size(&mut self) -> Result<(), FsError> {
        let path = self.path.clone();
        match self
            .fs
            .call(self.ministry, MetaOp::Stat { ino: self.ino }, &path)
            .await?
        {
            MetaReply::Attr(a) => {
                self.size = a.size;
                Ok(())
            }
            other => Err(self.io_error(format!("unexpected answer {other:?}"))),
        }
    }

    /// Starts the reads of `len` bytes a sequential reader makes next, up
    /// to the readahead window: within the file's size, each within one
    /// chunk, spread over the replicas. Chunks not located yet stop it
    /// unless `locate` (then they are asked for); a hole stops it.
    async fn read_ahead(&mut self, len: u64, locate: bool) {
        while let Some(at) = self.readahead.wants(len) {
            let size = self.size();
            if at >= size {
                return;
            }
            let n = len.min(size - at);
            let Ok(mut ps) = pieces(self.ino, &self.layout, at, n) else {
                return;
            };
            let (Some(p), None) = (ps.next(), ps.next()) else {
                return; // crosses into the next chunk
            };
            if locate
                && !self.places.contains_key(&p.chunk.index)
                && self.locate_chunks(&[p.chunk.index]).await.is_err()
            {
                return;
            }
            let (Some(place), Ok(chunk)) = (self.places.get(&p.chunk.index), p.chunk.id()) else {
                return;
            };
            if place.replicas.is_empty() {
                return;
            }
            let node = place.replicas[(at / len) as usize % place.replicas.len()];
            let client = self.fs.session().client().clone();
            // `n` <= `len` <= READ_PIECE: fits a u32.
            self.readahead.start(
                client,
                node,
                chunk,
                place.version,
                at,
                p.offset_in_chunk,
                n as u32,
            );
        }
    }

    /// The bytes of a read started ahead, or `None` for the caller to read
    /// them the usual way. A corrupt replica it met is noted for repair.
    async fn fetched(&mut self, task: Fetch, index: u64) -> Option<Vec<u8>> {
        match task.await {
            Ok(Ok(data)) => {
                self.readahead.hits += 1;
                Some(data)
            }
            Ok(Err(e)) => {
                if let ClientError::Chunk {
                    refusal: ChunkRefusal::Corrupt { .. },
                    node,
                } = &e
                {
                    tracing::warn!(path = %self.path, node, index, "corrupt replica: {e}");
                    self.bad.insert(index);
                }
                None
            }
            Err(_) => None, // aborted or panicked: read again
        }
    }

    /// Reads from the first replica that answers with verified bytes
    /// (none holding the chunk: it was never written, zeros). Replicas whose
    /// blocks failed their checksums are noted in `self.bad` for repair.
    async fn read_replicas(
        &mut self,
        place: &ChunkPlace,
        chunk: govfs_core::data::ChunkId,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, FsError> {
        let client = self.fs.session().client().clone();
        let mut last = None;
        let mut absent = 0;
        // Replicas still at an older version: the chunk is being moved and
        // its copy has not landed yet.
        let mut behind: Vec<(NodeId, u64)> = Vec::new();
        for &node in &place.replicas {
            match client
                .read_chunk(node, chunk, place.version, offset, len as u32)
                .await
            {
                Ok(data) => return Ok(data),
                Err(ClientError::Chunk {
                    refusal: ChunkRefusal::NoSuchChunk(_),
                    ..
                }) => absent += 1,
                Err(
                    e @ ClientError::Chunk {
                        refusal: ChunkRefusal::Version { have, want, .. },
                        ..
                    },
                ) if have < want => {
                    behind.push((node, have));
                    last = Some(e);
                }
                Err(e) => {
                    if let ClientError::Chunk {
                        refusal: ChunkRefusal::Corrupt { .. },
                        ..
                    } = &e
                    {
                        tracing::warn!(path = %self.path, node, ?chunk, "corrupt replica: {e}");
                        self.bad.insert(place.index);
                    }
                    last = Some(e);
                }
            }
        }
        if absent == place.replicas.len() {
            return Ok(Vec::new());
        }
        // No replica has the new version yet: a move is copying the chunk
        // (under a write lease on all of it, so nobody wrote it since) or
        // its copy failed. The replicas it kept hold the newest content, at
        // the newest version any of them has: read that.
        if let Some(newest) = behind.iter().map(|(_, have)| *have).max() {
            for (node, _) in behind.iter().filter(|(_, have)| *have == newest) {
                if let Ok(data) = client
                    .read_chunk(*node, chunk, newest, offset, len as u32)
                    .await
                {
                    tracing::debug!(path = %self.path, node, ?chunk, newest, want = place.version, "read a moving chunk at its older version");
                    return Ok(data);
                }
            }
        }
        Err(match last {
            Some(e) => self.io_error(format!("no replica could serve chunk {chunk:?}: {e}")),
            None => self.io_error("chunk without replicas"),
        })
    }

    /// Rewrites the chunks found with a corrupt replica from a good one
    /// (under a lease on the chunk for as long as it takes). Best effort:
    /// a failure is logged, and the next read finds the chunk again.
    async fn repair_bad(&mut self) {
        let bad = std::mem::take(&mut self.bad);
        for index in bad {
            let cs = u64::from(self.layout.chunk_size);
            let covered = self.lease.as_ref().is_some_and(|l| {
                let r = l.grant().granted.region;
                r.start() <= index * cs && r.end() >= (index + 1) * cs
            });
            let result = if covered {
                self.rereplicate(index, &[]).await
            } else {
                let region = Region::new(index * cs, (index + 1) * cs);
                let path = self.path.clone();
                match region {
                    Some(region) => match self.fs.open_region(&path, region, Mode::Write).await {
                        Ok(lease) => {
                            let held = self.lease.take();
                            self.lease = Some(lease);
                            let r = self.rereplicate(index, &[]).await;
                            if let Some(l) = std::mem::replace(&mut self.lease, held) {
                                let _ = l.release().await;
                            }
                            self.grants.remove(&index);
                            r
                        }
                        Err(e) => Err(e),
                    },
                    None => Err(self.io_error("chunk range overflows")),
                }
            };
            match result {
                Ok(()) => tracing::info!(path = %self.path, index, "corrupt replica repaired"),
                Err(e) => tracing::warn!(path = %self.path, index, "repair failed: {e}"),
            }
        }
    }

    /// Places the chunks `indexes` not known to be placed.
    async fn place(&mut self, indexes: &[u64]) -> Result<(), FsError> {
        self.learn_chunks(indexes, true).await
    }

    /// Learns where the chunks `indexes` are (unplaced ones stay unknown).
    async fn locate_chunks(&mut self, indexes: &[u64]) -> Result<(), FsError> {
        self.learn_chunks(indexes, false).await
    }

    /// Asks the ministry for the chunks `indexes` not known here yet:
    /// placing them (`place`) or only where they are.
    async fn learn_chunks(&mut self, indexes: &[u64], place: bool) -> Result<(), FsError> {
        let missing: Vec<u64> = indexes
            .iter()
            .copied()
            .filter(|i| !self.places.contains_key(i))
            .collect();
        for (first, count) in runs(&missing) {
            let ino = self.ino;
            let op = if place {
                MetaOp::PlaceChunks {
                    ino,
                    first,
                    count,
                    candidates: Vec::new(),
                }
            } else {
                MetaOp::Chunks { ino, first, count }
            };
            let path = self.path.clone();
            match self.fs.call(self.ministry, op, &path).await? {
                MetaReply::Chunks(list) => {
                    for c in list {
                        self.places.insert(c.index, c);
                    }
                }
                other => return Err(self.io_error(format!("unexpected answer {other:?}"))),
            }
        }
        Ok(())
    }

    /// A write lease to write under. One this handle took itself
    /// (`open_file`, `open_file_region`) is taken again when it was lost (a
    /// new minister's term ends all leases; a revocation; an expiry): no
    /// write ever goes out under a lease not held, and the data is still
    /// here. A lease the caller put in (`replace_lease`, a byte-range lock)
    /// is the caller's to take again: its loss is an error.
    async fn ensure_lease(&mut self) -> Result<(), FsError> {
        let Some(lease) = &self.lease else {
            return Err(FsError::NotOpenForWriting {
                path: self.path.clone(),
            });
        };
        let lost = match lease.check() {
            Ok(()) => return Ok(()),
            Err(lost) => lost,
        };
        if !self.own_lease {
            return Err(FsError::LeaseLost {
                path: self.path.clone(),
                lost,
            });
        }
        tracing::info!(path = %self.path, "write lease lost ({lost}); taking it again");
        let region = lease.grant().granted.region;
        let path = self.path.clone();
        let fresh = self
            .fs
            .open_region_with(&path, region, Mode::Write, &LeaseOptions::default())
            .await?;
        if let Some(old) = self.lease.replace(fresh) {
            let _ = old.release().await;
        }
        self.attach_reporter();
        self.grants.clear();
        Ok(())
    }

    /// [`Self::fetch_grants`], waiting out a minister that does not serve
    /// leases yet (a new term) and taking a lost lease again, until the
    /// handle's deadline.
    async fn grants_for(&mut self, indexes: &[u64], renew: bool) -> Result<(), FsError> {
        let end = Instant::now() + self.fs.options().deadline;
        let mut renew = renew;
        loop {
            self.ensure_lease().await?;
            match self.fetch_grants(indexes, renew).await {
                Err(FsError::Client(ClientError::Lease {
                    refusal:
                        LeaseRefusal::NotServing(_)
                        | LeaseRefusal::Unknown(_)
                        | LeaseRefusal::Expired(_),
                    ..
                })) if Instant::now() < end => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    renew = true;
                }
                other => return other,
            }
        }
    }

    /// Makes sure a fresh grant is held for each of `indexes` (all of them
    /// anew when `renew`).
    async fn fetch_grants(&mut self, indexes: &[u64], renew: bool) -> Result<(), FsError> {
        let lease = self.lease.as_ref().expect("checked by the caller");
        let held = lease.grant();
        let now = Instant::now();
        let stale = |i: &u64| {
            renew
                || self.grants.get(i).is_none_or(|(g, until)| {
                    g.grant.lease != held.lease() || *until < now + GRANT_MARGIN
                })
        };
        let mut needed: Vec<u64> = indexes.iter().copied().filter(stale).collect();
        // Chunks placed ahead of a writer get their grants in this request.
        if let Some(&last) = needed.last() {
            let ahead = self.ahead_of(last).filter(|i| self.places.contains_key(i));
            needed.extend(ahead.filter(stale));
        }
        let client = self.fs.session().client().clone();
        for batch in needed.chunks(MAX_GRANTS) {
            let msg = ClientMsg::Lease(LeaseRequest::Grants {
                ministry: self.ministry,
                session: lease.session(),
                lease: held.lease(),
                indexes: batch.to_vec(),
            });
            let sent = Instant::now();
            match client.call(held.addr, &msg).await? {
                ServerMsg::Lease(LeaseReply::Grants(grants)) if grants.len() == batch.len() => {
                    // Trusted no longer than the lease itself, by the holder's clock.
                    let until = lease.deadline().max(sent);
                    for (i, g) in batch.iter().zip(grants) {
                        self.grants.insert(*i, (g, until));
                    }
                }
                ServerMsg::Lease(LeaseReply::Refused(refusal)) => {
                    return Err(ClientError::Lease {
                        ministry: self.ministry,
                        refusal,
                    }
                    .into())
                }
                other => return Err(self.io_error(format!("unexpected answer {other:?}"))),
            }
        }
        Ok(())
    }
}

/// Writes every piece to all its replicas, again after a failure, until
/// `deadline`: the data stays here until every replica has it.
async fn send_async(
    client: &crate::Client,
    id: u64,
    parts: &[Piece],
    grants: &[SignedGrant],
    data: &[u8],
    deadline: Instant,
) -> Result<AsyncAck, String> {
    let mut ack = AsyncAck {
        stamp: 0,
        earliest_uncommitted: u64::MAX,
    };
    for (p, g) in parts.iter().zip(grants) {
        let at = p.offset_in_buf as usize;
        let bytes = &data[at..at + p.len as usize];
        let mut pause = Duration::from_millis(10);
        loop {
            match client.write_chunk(g, p.offset_in_chunk, bytes, id).await {
                Ok(acks) => {
                    for a in acks {
                        ack.stamp = ack.stamp.max(a.ack.stamp);
                        ack.earliest_uncommitted =
                            ack.earliest_uncommitted.min(a.ack.earliest_uncommitted);
                    }
                    break;
                }
                // A refusal will not change by resending.
                Err(e @ ClientError::Chunk { .. }) => return Err(e.to_string()),
                Err(e) if Instant::now() + pause >= deadline => return Err(e.to_string()),
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }
    Ok(ack)
}

/// Sorted distinct values.
fn dedup(it: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut v: Vec<u64> = it.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Sorted distinct indexes as (first, count) runs of at most `PLACE_MAX`.
fn runs(sorted: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &i in sorted {
        match out.last_mut() {
            Some((first, count)) if *first + *count == i && *count < PLACE_MAX => *count += 1,
            _ => out.push((i, 1)),
        }
    }
    out
}

/// What one replica's answer to a chunk write or cut means for the caller.
enum Answer {
    Done,
    /// The grant ran out: fetch a new one and send again.
    Expired,
    /// The chunk moved to a new replica set meanwhile: learn it, send there.
    Stale,
    /// No answer: the replica is replaced, then the change sent again.
    Unreachable(ClientError),
}

/// Sorts a replica's answer; a refusal that resending cannot fix is the
/// caller's error.
fn answer(r: Result<crate::chunks::ReplicaAck, ClientError>) -> Result<Answer, FsError> {
    match r {
        Ok(_) => Ok(Answer::Done),
        Err(ClientError::Chunk {
            refusal: ChunkRefusal::Grant(why),
            ..
        }) if why.contains("expired") => Ok(Answer::Expired),
        Err(ClientError::Chunk {
            refusal: ChunkRefusal::Version { .. },
            ..
        }) => Ok(Answer::Stale),
        Err(ClientError::Chunk {
            refusal: ChunkRefusal::Grant(why),
            ..
        }) if why.contains("version") => Ok(Answer::Stale),
        Err(e @ ClientError::Chunk { .. }) => Err(e.into()),
        Err(e) => Ok(Answer::Unreachable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_split_at_gaps_and_at_the_cap() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[3, 4, 5, 9, 10]), vec![(3, 3), (9, 2)]);
        let long: Vec<u64> = (0..super::PLACE_MAX + 2).collect();
        assert_eq!(
            runs(&long),
            vec![(0, super::PLACE_MAX), (super::PLACE_MAX, 2)]
        );
    }
}
