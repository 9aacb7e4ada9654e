//! The storage service: this node's chunks, written and read for clients
//! that present a write grant (issue 6).
//!
//! Chunks are spread over storage shards by chunk id; each shard is a thread
//! that owns its [`ChunkStore`] (its own directory and io_uring) and serves
//! its requests in order. Core loops hand requests over through a bounded
//! queue and get the answer back through their own inbox
//! ([`CoreMsg::Reply`]), so a disk write never stalls Raft or the network.
//!
//! A write is checked against its grant ([`verify`]: tag, expiry with the
//! allowed clock skew, this node a replica, the byte range, the version),
//! written durably, and only then acknowledged, with the shard's Lamport
//! time of the write and of its earliest write still pending. The Lamport
//! clock never goes back across restarts: a floor ahead of it is kept on
//! disk (`lamport` in the shard's directory). Each batch stamps past the
//! node's clock (what the node heard from other nodes) and moves it past
//! its stamps (what the node tells them next): see [`super::lamport`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use govfs_core::data::{
    verify, ChunkData, ChunkId, ChunkRefusal, ChunkReply, ChunkRequest, GrantKey, LamportClock,
    Pending, SignedGrant, Stamp, WriteId, DELETE_LEASE,
};
use govfs_core::node::ServerMsg;
use govfs_core::president::StorageSpace;
use govfs_core::raft::NodeId;
use tracing::{info, warn};

use super::core_loop::Shared;
use super::lamport::Floor;
use super::routing::{CoreMsg, ReplyTo};
use crate::chunk::{BatchWrite, ChunkError, ChunkOptions, ChunkStore};

/// Requests queued per storage shard before new ones are refused as busy.
const QUEUE: usize = 1024;
/// Requests served between two group syncs at most.
const MAX_BATCH: usize = 256;
/// Largest read answered at once (a frame must hold it).
pub const MAX_READ: u32 = 8 << 20;

pub struct StorageSettings {
    /// The shards' directories are `dir/shard-N`.
    pub dir: PathBuf,
    pub shards: u32,
    /// The largest chunk a file layout may use on this node.
    pub chunk_size: usize,
    pub key: Arc<GrantKey>,
    /// Clock skew between a minister and this node that a grant's expiry allows.
    pub max_skew_us: u64,
}

impl StorageSettings {
    pub fn new(dir: PathBuf, key: GrantKey) -> StorageSettings {
        StorageSettings {
            dir,
            shards: 1,
            chunk_size: 64 << 20,
            key: Arc::new(key),
            max_skew_us: 2_000_000,
        }
    }
}

/// A request's answer now, or (a write) once its chunk is synced.
enum Served {
    Now(ChunkReply),
    AfterSync(ChunkId, Stamp),
}

struct Job {
    req: ChunkRequest,
    reply: Answer,
}

/// A write whose grant was verified and stamp taken, to be written.
struct Admitted {
    chunk: ChunkId,
    version: u64,
    offset: u64,
    data: ChunkData,
    stamp: Stamp,
}

/// Where a chunk request's answer goes.
pub enum Answer {
    /// Back through the core loop whose connection the request came in on.
    Core(ReplyTo),
    /// Into a channel, with the sender's token (the data path).
    Channel {
        tx: Sender<(u64, ChunkReply)>,
        token: u64,
    },
}

impl From<ReplyTo> for Answer {
    fn from(reply: ReplyTo) -> Answer {
        Answer::Core(reply)
    }
}

/// Where core loops hand chunk requests.
#[derive(Clone)]
pub struct ChunkInbox {
    shards: Vec<Sender<Job>>,
    /// The store's directory, whose file system's space is reported.
    dir: PathBuf,
    chunk_size: usize,
}

impl ChunkInbox {
    /// The space chunks may still take on this node's disk: what the file
    /// system has free for us, less a reserve (2% of the disk, at least two
    /// chunks) so that logs and snapshots on the same disk never meet a
    /// full one first. `None` if the file system cannot say.
    pub fn space(&self) -> Option<StorageSpace> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: statvfs writes into the zeroed struct we own and reads
        // the NUL-terminated path, which outlives the call.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return None;
        }
        let unit = st.f_frsize as u64;
        let total = (st.f_blocks as u64).saturating_mul(unit);
        let avail = (st.f_bavail as u64).saturating_mul(unit);
        let reserve = (total / 50).max(2 * self.chunk_size as u64);
        Some(StorageSpace {
            free: avail.saturating_sub(reserve),
            total,
        })
    }

    /// Queues `req` on its shard, or says why not (the caller answers).
    pub fn submit(&self, req: ChunkRequest, reply: impl Into<Answer>) -> Result<(), ChunkRefusal> {
        let shard = (req.chunk().0 % self.shards.len() as u64) as usize;
        let reply = reply.into();
        match self.shards[shard].try_send(Job { req, reply }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                metrics::counter!("govfs_chunk_busy_total").increment(1);
                Err(ChunkRefusal::Busy(format!(
                    "storage shard {shard} queue full"
                )))
            }
            Err(TrySendError::Disconnected(_)) => {
                Err(ChunkRefusal::Busy("storage service stopped".into()))
            }
        }
    }
}

/// Opens every shard's store (failing the node start if one cannot be
/// opened) and returns the inbox and the receivers for [`spawn`].
pub fn open(s: &StorageSettings) -> Result<(ChunkInbox, Vec<Shard>), String> {
    let mut senders = Vec::new();
    let mut shards = Vec::new();
    for i in 0..s.shards.max(1) {
        let dir = s.dir.join(format!("shard-{i}"));
        let opts = ChunkOptions {
            chunk_size: s.chunk_size,
            ..ChunkOptions::default()
        };
        let store = ChunkStore::open(&dir, opts).map_err(|e| e.to_string())?;
        let floor = Floor::open(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let clock = LamportClock::starting_at(floor.at).map_err(|e| e.to_string())?;
        info!(shard = i, dir = %dir.display(), backend = ?store.chosen(), lamport = floor.at, "storage shard open");
        let (tx, rx) = bounded(QUEUE);
        senders.push(tx);
        shards.push(Shard {
            index: i,
            store,
            pending: Pending::new(clock),
            floor,
            rx,
            key: Arc::clone(&s.key),
            max_skew_us: s.max_skew_us,
        });
    }
    Ok((
        ChunkInbox {
            shards: senders,
            dir: s.dir.clone(),
            chunk_size: s.chunk_size,
        },
        shards,
    ))
}

/// Starts one thread per shard; they end when every inbox sender is gone.
pub fn spawn(shards: Vec<Shard>, shared: Arc<Shared>) -> std::io::Result<Vec<JoinHandle<()>>> {
    shards
        .into_iter()
        .map(|mut shard| {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("govfs-storage-{}", shard.index))
                .spawn(move || shard.run(&shared))
        })
        .collect()
}

pub struct Shard {
    index: u32,
    store: ChunkStore,
    pending: Pending,
    floor: Floor,
    rx: Receiver<Job>,
    key: Arc<GrantKey>,
    max_skew_us: u64,
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn refusal(chunk: ChunkId, e: ChunkError) -> ChunkRefusal {
    match e {
        ChunkError::Corrupt { block, .. } => ChunkRefusal::Corrupt {
            chunk,
            block: block as u64,
        },
        ChunkError::NoSuchChunk { .. } => ChunkRefusal::NoSuchChunk(chunk),
        ChunkError::StaleVersion { have, got, .. } => ChunkRefusal::Version {
            chunk,
            have,
            want: got,
        },
        ChunkError::OutOfRange { .. } => ChunkRefusal::BadRequest(e.to_string()),
        other => ChunkRefusal::Disk(other.to_string()),
    }
}

impl Shard {
    /// Serves requests in batches: what queued up while the last batch ran
    /// is written together and each chunk it touched is synced once, then
    /// its writes are acknowledged (group commit). Reads of a chunk with
    /// writes not yet synced wait for the sync, so no reader sees data a
    /// crash could take back.
    fn run(&mut self, shared: &Shared) {
        use crossbeam_channel::RecvTimeoutError;
        let answer = |reply: Answer, a: ChunkReply| match reply {
            Answer::Core(reply) => shared.hand_over(
                reply.core,
                CoreMsg::Reply {
                    reply,
                    msg: ServerMsg::Chunk(a),
                },
            ),
            // A receiver gone (its connection closed) wants no answer.
            Answer::Channel { tx, token } => {
                let _ = tx.send((token, a));
            }
        };
        loop {
            let first = match self.rx.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout)
                    if !shared.stop.load(std::sync::atomic::Ordering::Relaxed) =>
                {
                    continue
                }
                Err(_) => break,
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let mut synced: Vec<(Answer, ChunkId, Stamp)> = Vec::new();
            let mut reads = Vec::new();
            // Stamps go past everything the node heard from other nodes...
            let heard = self.pending.observe(shared.clock.now());
            debug_assert!(heard.is_ok(), "the node's clock stays below the bound");
            // Writes are admitted (grant, stamp) as they come and written
            // together (`ChunkStore::write_batch`: the disk gets them at
            // once) before any other request, which may depend on them.
            let mut writes: Vec<(Admitted, Answer)> = Vec::new();
            for Job { req, reply } in batch {
                if let ChunkRequest::Write {
                    grant,
                    offset,
                    data,
                    write,
                    lamport,
                } = req
                {
                    match self.admit(shared.id, grant, offset, data, (write, lamport)) {
                        Ok(w) => writes.push((w, reply)),
                        Err(a) => answer(reply, a),
                    }
                    continue;
                }
                self.write_admitted(&mut writes, &mut synced, &answer);
                if let ChunkRequest::Read { chunk, .. } = &req {
                    if self.store.is_dirty(chunk.0) {
                        reads.push(Job { req, reply });
                        continue;
                    }
                }
                match self.serve(shared.id, req) {
                    Served::Now(a) => answer(reply, a),
                    Served::AfterSync(chunk, stamp) => synced.push((reply, chunk, stamp)),
                }
            }
            self.write_admitted(&mut writes, &mut synced, &answer);
            // ...and what the node tells them next goes past these stamps.
            let told = shared.clock.observe(self.pending.clock().now());
            debug_assert!(told.is_ok(), "a shard's clock stays below the bound");
            let mut failed: BTreeMap<ChunkId, String> = BTreeMap::new();
            for (_, chunk, _) in &synced {
                if failed.contains_key(chunk) {
                    continue;
                }
                if let Err(e) = self.store.sync(chunk.0) {
                    warn!(shard = self.index, ?chunk, "chunk sync failed: {e}");
                    failed.insert(*chunk, e.to_string());
                }
            }
            metrics::histogram!("govfs_chunk_batch_writes").record(synced.len() as f64);
            for (reply, chunk, stamp) in synced {
                let a = match failed.get(&chunk) {
                    Some(why) => {
                        let _ = self.pending.failed(stamp);
                        ChunkReply::Refused(ChunkRefusal::Disk(why.clone()))
                    }
                    None => match self.pending.durable(stamp) {
                        Ok(ack) => ChunkReply::Written {
                            write: ack.write,
                            stamp: ack.stamp,
                            earliest_uncommitted: ack.earliest_uncommitted,
                        },
                        Err(e) => ChunkReply::Refused(ChunkRefusal::BadRequest(e.to_string())),
                    },
                };
                answer(reply, a);
            }
            for Job { req, reply } in reads {
                match self.serve(shared.id, req) {
                    Served::Now(a) => answer(reply, a),
                    Served::AfterSync(..) => unreachable!("reads answer at once"),
                }
            }
        }
        self.store.close_all();
    }

    /// A write, checked and stamped: its grant verified, its Lamport stamp
    /// taken and the floor raised past it. Written by [`Self::write_admitted`].
    fn admit(
        &mut self,
        node: NodeId,
        grant: SignedGrant,
        offset: u64,
        data: ChunkData,
        (write, lamport): (WriteId, Stamp),
    ) -> Result<Admitted, ChunkReply> {
        if let Err(e) = self.pending.observe(lamport) {
            return Err(ChunkReply::Refused(ChunkRefusal::BadRequest(e.to_string())));
        }
        let Some(end) = offset.checked_add(data.len() as u64) else {
            return Err(ChunkReply::Refused(ChunkRefusal::BadRequest(
                "range overflows".into(),
            )));
        };
        let chunk = grant.grant.chunk_id;
        let stamp = self.allowed(node, &grant, (offset, end), write)?;
        Ok(Admitted {
            chunk,
            version: grant.grant.version,
            offset,
            data,
            stamp,
        })
    }

    /// Verifies `grant` (a write grant, not a delete grant) for bytes
    /// `range` of its chunk here; then the stamp of write `write`.
    fn allowed(
        &mut self,
        node: NodeId,
        grant: &SignedGrant,
        range: (u64, u64),
        write: WriteId,
    ) -> Result<Stamp, ChunkReply> {
        let chunk = grant.grant.chunk_id;
        if grant.grant.lease == DELETE_LEASE {
            return Err(ChunkReply::Refused(ChunkRefusal::Grant(
                "a delete grant does not allow writing".into(),
            )));
        }
        let known = match self.store.stat(chunk.0) {
            Ok(s) => s.map(|(_, version)| version),
            Err(e) => return Err(ChunkReply::Refused(refusal(chunk, e))),
        };
        self.check(node, grant, range, known)?;
        self.stamp(write)
    }

    /// The Lamport stamp of write `write`, with the floor raised past it.
    fn stamp(&mut self, write: WriteId) -> Result<Stamp, ChunkReply> {
        let stamp = self.pending.accept(write);
        if let Err(e) = self.floor.raise(self.pending.clock().now()) {
            // Without the floor a restart could reuse stamps: refuse.
            let _ = self.pending.failed(stamp);
            return Err(ChunkReply::Refused(ChunkRefusal::Disk(format!(
                "lamport floor: {e}"
            ))));
        }
        Ok(stamp)
    }

    /// Writes the admitted writes in one batch; each is acknowledged after
    /// its chunk's sync (`synced`) or refused now.
    fn write_admitted(
        &mut self,
        writes: &mut Vec<(Admitted, Answer)>,
        synced: &mut Vec<(Answer, ChunkId, Stamp)>,
        answer: &impl Fn(Answer, ChunkReply),
    ) {
        if writes.is_empty() {
            return;
        }
        let batch: Vec<BatchWrite> = writes
            .iter()
            .map(|(w, _)| BatchWrite {
                chunk: w.chunk.0,
                version: w.version,
                offset: w.offset,
                data: &w.data,
            })
            .collect();
        let results = self.store.write_batch(&batch);
        drop(batch);
        for ((w, reply), result) in writes.drain(..).zip(results) {
            match result {
                Ok(()) => {
                    metrics::counter!("govfs_chunk_write_bytes_total")
                        .increment(w.data.len() as u64);
                    synced.push((reply, w.chunk, w.stamp));
                }
                Err(e) => {
                    let _ = self.pending.failed(w.stamp);
                    warn!(shard = self.index, chunk = ?w.chunk, "chunk write failed: {e}");
                    answer(reply, ChunkReply::Refused(refusal(w.chunk, e)));
                }
            }
        }
    }

    /// A change to the grant's chunk: the grant is verified for `range`,
    /// then `change` runs as write `write`, acknowledged after the sync.
    fn granted(
        &mut self,
        node: NodeId,
        grant: &SignedGrant,
        range: (u64, u64),
        write: WriteId,
        change: impl FnOnce(&mut ChunkStore, u64) -> Result<(), ChunkError>,
    ) -> Result<Served, ChunkReply> {
        let chunk = grant.grant.chunk_id;
        let stamp = self.allowed(node, grant, range, write)?;
        match change(&mut self.store, grant.grant.version) {
            Ok(()) => Ok(Served::AfterSync(chunk, stamp)),
            Err(e) => {
                let _ = self.pending.failed(stamp);
                warn!(shard = self.index, ?chunk, "chunk change failed: {e}");
                Err(ChunkReply::Refused(refusal(chunk, e)))
            }
        }
    }

    /// Verifies `grant` for bytes `range` of its chunk here, which is at
    /// version `known` (if it exists).
    fn check(
        &self,
        node: NodeId,
        grant: &SignedGrant,
        range: (u64, u64),
        known: Option<u64>,
    ) -> Result<(), ChunkReply> {
        verify(
            &self.key,
            grant,
            unix_us(),
            self.max_skew_us,
            node,
            range,
            known,
        )
        .map_err(|e| {
            metrics::counter!("govfs_chunk_grant_refused_total").increment(1);
            ChunkReply::Refused(ChunkRefusal::Grant(e.to_string()))
        })
    }

    /// Deletes a chunk of a file that is gone, under a delete grant for
    /// all of it.
    fn delete(&mut self, node: NodeId, grant: &SignedGrant) -> Result<Served, ChunkReply> {
        let g = &grant.grant;
        let chunk = g.chunk_id;
        let refuse = |r: ChunkRefusal| Err(ChunkReply::Refused(r));
        if g.lease != DELETE_LEASE || g.range.0 != 0 {
            return refuse(ChunkRefusal::Grant(
                "deleting needs a delete grant for the whole chunk".into(),
            ));
        }
        let known = match self.store.stat(chunk.0) {
            Ok(s) => s,
            Err(e) => return refuse(refusal(chunk, e)),
        };
        // The tag first; the version is compared below, so that a newer
        // copy answers `Version` rather than a grant error.
        self.check(node, grant, g.range, None)?;
        // A newer copy than the one the grant is for: the chunk came back
        // here since, and stays.
        if let Some((_, have)) = known {
            if have > g.version {
                return refuse(ChunkRefusal::Version {
                    chunk,
                    have,
                    want: g.version,
                });
            }
        }
        if let Some((size, _)) = known {
            if size > g.range.1 {
                return refuse(ChunkRefusal::BadRequest(format!(
                    "chunk holds {size} bytes, the grant covers {}",
                    g.range.1
                )));
            }
        }
        if let Err(e) = self.store.remove(chunk.0) {
            warn!(shard = self.index, ?chunk, "chunk delete failed: {e}");
            return refuse(refusal(chunk, e));
        }
        if known.is_some() {
            metrics::counter!("govfs_chunks_deleted_total").increment(1);
        }
        Ok(Served::Now(ChunkReply::Deleted {
            lamport: self.pending.clock().now(),
        }))
    }

    fn serve(&mut self, node: NodeId, req: ChunkRequest) -> Served {
        match self.serve_one(node, req) {
            Ok(s) => s,
            Err(a) => Served::Now(a),
        }
    }

    fn serve_one(&mut self, node: NodeId, req: ChunkRequest) -> Result<Served, ChunkReply> {
        let lamport = match &req {
            ChunkRequest::Write { lamport, .. }
            | ChunkRequest::Read { lamport, .. }
            | ChunkRequest::Truncate { lamport, .. }
            | ChunkRequest::Delete { lamport, .. } => *lamport,
        };
        if let Err(e) = self.pending.observe(lamport) {
            return Err(ChunkReply::Refused(ChunkRefusal::BadRequest(e.to_string())));
        }
        match req {
            // `run` writes them in batches; one on its own the same way.
            ChunkRequest::Write { .. } => {
                unreachable!("`run` admits writes and writes them in batches")
            }
            ChunkRequest::Truncate {
                grant, keep, write, ..
            } => {
                // The cut reaches from `keep` to the end of the data here,
                // which must lie inside the grant: the grant's range runs
                // from at most `keep` to at least the chunk's size.
                let end = grant.grant.range.1;
                if keep >= end {
                    return Err(ChunkReply::Refused(ChunkRefusal::BadRequest(format!(
                        "cut to {keep} bytes: the grant ends at {end}"
                    ))));
                }
                let id = grant.grant.chunk_id;
                self.granted(node, &grant, (keep, end), write, |store, v| {
                    match store.stat(id.0)? {
                        Some((size, _)) if size > end => Err(ChunkError::OutOfRange {
                            chunk: id.0,
                            offset: keep,
                            len: (size - keep) as usize,
                            chunk_size: end as usize,
                        }),
                        _ => store.truncate_unsynced(id.0, v, keep),
                    }
                })
            }
            ChunkRequest::Delete { grant, .. } => self.delete(node, &grant),
            ChunkRequest::Read {
                chunk,
                version,
                offset,
                len,
                ..
            } => {
                if len > MAX_READ {
                    return Err(ChunkReply::Refused(ChunkRefusal::BadRequest(format!(
                        "read of {len} bytes; at most {MAX_READ} at once"
                    ))));
                }
                let have = match self.store.stat(chunk.0) {
                    Ok(Some((_, v))) => v,
                    Ok(None) => return Err(ChunkReply::Refused(ChunkRefusal::NoSuchChunk(chunk))),
                    Err(e) => return Err(ChunkReply::Refused(refusal(chunk, e))),
                };
                if have < version {
                    return Err(ChunkReply::Refused(ChunkRefusal::Version {
                        chunk,
                        have,
                        want: version,
                    }));
                }
                match self.store.read(chunk.0, offset, len as usize) {
                    Ok(data) => {
                        metrics::counter!("govfs_chunk_read_bytes_total")
                            .increment(data.len() as u64);
                        Ok(Served::Now(ChunkReply::Data {
                            data,
                            version: have,
                            lamport: self.pending.clock().now(),
                        }))
                    }
                    Err(e) => {
                        if matches!(e, ChunkError::Corrupt { .. }) {
                            metrics::counter!("govfs_chunk_corrupt_total").increment(1);
                            warn!(shard = self.index, ?chunk, "corrupt block: {e}");
                        }
                        Err(ChunkReply::Refused(refusal(chunk, e)))
                    }
                }
            }
        }
    }
}
