//! The re-replication agent (issue 6): a thread of the node daemon that
//! restores every chunk of the ministries this node leads to its file's
//! replica count, in the background.
//!
//! The president marks a node down in the cluster map when none of its
//! shards reported within the failure timeout (`Order::NodeState`); from
//! then on placement skips it. A node may come back after a restart, so
//! the agent waits `delay` after it first saw a node down before copying
//! anything off it. Then, every `interval`, for each ministry whose
//! minister is on this node, it pages through the chunks that have a
//! replica on such a node or fewer replicas than asked while the cluster
//! has nodes for more (`MetaOp::Degraded`, a scan of the minister's own
//! placements), and moves each with the client's own repair path: a write
//! lease on the whole chunk, so no writer races the copy, then
//! `File::rereplicate` (a new replica set at a new version through the
//! ministry's log, the data copied from a surviving replica). A chunk
//! whose lease is taken is tried again on the next round.
//!
//! It also collects garbage: the chunks of files that are gone
//! (`meta::garbage`) are deleted on their replicas under delete grants
//! the minister signs (`LeaseRequest::DeleteGrants`), then dropped from
//! the list through the log (`MetaOp::Collected`). A replica on a node
//! down for less than the delay holds its chunk back until the node
//! returns or the delay passes; one on a node down longer is recorded as
//! left behind. Copies left behind (those, and replicas dropped from a
//! chunk's set when it moved) are deleted once their node is up again,
//! under delete grants for exactly the version recorded.
//!
//! It runs on ministers, not on the president: each ministry repairs its
//! own chunks, so the work spreads as ministries do, and the scan reads
//! the minister's own memory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use govfs_client::{
    Client, ClientError, ClientOptions, FileSystem, FsError, FsOptions, LeaseOptions,
};
use govfs_core::data::ChunkRefusal;
use govfs_core::ids::node_of;
use govfs_core::lease::Region;
use govfs_core::meta::{ChunkPlace, DegradedChunk, Ino, MetaOp, MetaReply};
use govfs_core::node::MAX_GRANTS;
use govfs_core::president::ClusterMap;
use govfs_core::raft::{GroupId, NodeId};
use govfs_net::ClusterKey;

/// Chunks asked for per `Degraded` page.
const PAGE: u32 = 256;
/// Files asked for per `Garbage` page.
const GARBAGE_PAGE: u32 = 64;

#[derive(Clone, Debug)]
pub struct RepairSettings {
    /// This node.
    pub node: NodeId,
    /// Where the agent's client connects (this node and its peers).
    pub addrs: Vec<SocketAddr>,
    pub key: ClusterKey,
    /// How long a node must be down before its chunks move.
    pub delay: Duration,
    /// How often the agent looks.
    pub interval: Duration,
}

/// Starts the agent on a thread of its own (a current-thread tokio
/// runtime: it is background work, off the storage path).
pub fn spawn(settings: RepairSettings, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("repair".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("re-replication agent cannot start: {e}");
                    return;
                }
            };
            runtime.block_on(run(settings, stop));
        })
}

async fn run(settings: RepairSettings, stop: Arc<AtomicBool>) {
    let mut agent = Agent {
        settings,
        down_since: BTreeMap::new(),
    };
    let mut client: Option<Client> = None;
    while !stop.load(Ordering::Relaxed) {
        if !sleep_unless_stopped(agent.settings.interval, &stop).await {
            break;
        }
        let c = match &client {
            Some(c) => c.clone(),
            None => {
                let options = ClientOptions::with_timeout(Duration::from_secs(5));
                let s = &agent.settings;
                match Client::connect(s.addrs.clone(), s.key.clone(), options).await {
                    Ok(c) => {
                        client = Some(c.clone());
                        c
                    }
                    Err(e) => {
                        tracing::debug!("re-replication agent cannot connect yet: {e}");
                        continue;
                    }
                }
            }
        };
        match agent.round(&c).await {
            Ok((moved, deleted)) if moved + deleted > 0 => {
                tracing::info!(moved, deleted, "re-replication round")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("re-replication round failed: {e}"),
        }
    }
}

/// Sleeps `d` in short steps; false once `stop` is set.
async fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
    }
}

struct Agent {
    settings: RepairSettings,
    /// When this agent first saw each node of the map's down set.
    down_since: BTreeMap<NodeId, Instant>,
}

/// What one round works from.
struct Plan {
    /// Down for at least the delay: their replicas move.
    gone: Vec<NodeId>,
    /// Down for less than the delay.
    down: Vec<NodeId>,
    /// Up: copies left on them can be deleted.
    live: Vec<NodeId>,
    /// Nodes that can take a replica: not down, not full.
    up: u32,
    /// Ministries whose settled minister is on this node.
    mine: Vec<GroupId>,
}

impl Agent {
    fn plan(&mut self, map: &ClusterMap, now: Instant) -> Plan {
        self.down_since.retain(|n, _| map.down.contains(n));
        for n in &map.down {
            self.down_since.entry(*n).or_insert(now);
        }
        let (gone, down): (Vec<_>, Vec<_>) = self
            .down_since
            .iter()
            .partition(|(_, since)| now.duration_since(**since) >= self.settings.delay);
        let (gone, down) = (
            gone.into_iter().map(|(n, _)| *n).collect(),
            down.into_iter().map(|(n, _)| *n).collect(),
        );
        let up = map
            .nodes()
            .into_iter()
            .filter(|n| !map.down.contains(n) && map.storage.get(n) != Some(&0))
            .count() as u32;
        let mine = map
            .ministries
            .values()
            .filter(|m| {
                m.pending.is_none() && m.minister.is_some_and(|s| node_of(s) == self.settings.node)
            })
            .map(|m| m.id)
            .collect();
        let live = map
            .nodes()
            .into_iter()
            .filter(|n| !map.down.contains(n))
            .collect();
        Plan {
            gone,
            down,
            live,
            up,
            mine,
        }
    }

    /// One look at every ministry this node leads; returns the chunks
    /// moved and deleted.
    async fn round(&mut self, client: &Client) -> Result<(usize, usize), String> {
        let map = client.map().await.map_err(|e| e.to_string())?;
        let plan = self.plan(&map, Instant::now());
        let (mut moved, mut deleted) = (0, 0);
        for ministry in &plan.mine {
            let mut fs = FileSystem::new(
                client.clone(),
                FsOptions {
                    root_ministry: *ministry,
                    deadline: Duration::from_secs(5),
                    ..FsOptions::default()
                },
            );
            let mut from = None;
            loop {
                let op = MetaOp::Degraded {
                    down: plan.gone.clone(),
                    up: plan.up,
                    from,
                    limit: PAGE,
                };
                let page = match fs.call(*ministry, op, "degraded chunks").await {
                    Ok(MetaReply::Degraded(page)) => page,
                    Ok(other) => return Err(format!("ministry {ministry}: answered {other:?}")),
                    Err(e) => return Err(format!("ministry {ministry}: {e}")),
                };
                for chunk in &page.chunks {
                    match move_chunk(&mut fs, *ministry, chunk).await {
                        Ok(()) => {
                            moved += 1;
                            metrics::counter!("govfs_chunks_rereplicated_total").increment(1);
                        }
                        Err(e) => {
                            // Unlinked meanwhile, or a writer holds the
                            // chunk: the next round looks again.
                            tracing::debug!(
                                ministry,
                                ino = chunk.ino.0,
                                index = chunk.place.index,
                                "chunk not moved this round: {e}"
                            );
                        }
                    }
                }
                match page.next {
                    Some(next) => from = Some(next),
                    None => break,
                }
            }
            deleted += self.collect(client, &mut fs, *ministry, &plan).await?;
        }
        Ok((moved, deleted))
    }

    /// Deletes the chunks of gone files of `ministry` on their replicas;
    /// returns how many chunks left the garbage list.
    async fn collect(
        &self,
        client: &Client,
        fs: &mut FileSystem,
        ministry: GroupId,
        plan: &Plan,
    ) -> Result<usize, String> {
        // This node leads the ministry: its own address reaches the minister.
        let Some(minister) = client.node_addr(self.settings.node) else {
            return Err(format!(
                "node {} is not in the client's list",
                self.settings.node
            ));
        };
        let mut collected = 0;
        let mut from = None;
        loop {
            let op = MetaOp::Garbage {
                from,
                limit: GARBAGE_PAGE,
            };
            let page = match fs.call(ministry, op, "garbage").await {
                Ok(MetaReply::Garbage(page)) => page,
                Ok(other) => return Err(format!("ministry {ministry}: answered {other:?}")),
                Err(e) => return Err(format!("ministry {ministry}: {e}")),
            };
            for (ino, garbage) in &page.files {
                for batch in garbage.chunks.chunks(MAX_GRANTS) {
                    // Held back while a replica's node may still return.
                    let ready: Vec<&ChunkPlace> = batch
                        .iter()
                        .filter(|c| !c.replicas.iter().any(|n| plan.down.contains(n)))
                        .collect();
                    if ready.is_empty() {
                        continue;
                    }
                    let indexes = ready.iter().map(|c| c.index).collect();
                    let grants = match client
                        .delete_grants(minister, ministry, *ino, indexes, None)
                        .await
                    {
                        Ok(g) => g,
                        Err(e) => {
                            tracing::debug!(ministry, ino = ino.0, "no delete grants: {e}");
                            continue;
                        }
                    };
                    let mut done = Vec::new();
                    for (place, grant) in ready.iter().zip(&grants) {
                        let mut all = true;
                        for node in place.replicas.iter().filter(|n| !plan.gone.contains(n)) {
                            if let Err(e) = client.delete_chunk(*node, grant).await {
                                tracing::debug!(
                                    ino = ino.0,
                                    index = place.index,
                                    node,
                                    "chunk not deleted: {e}"
                                );
                                all = false;
                            }
                        }
                        if all {
                            done.push(place.index);
                        }
                    }
                    if done.is_empty() {
                        continue;
                    }
                    let count = done.len();
                    // Copies on nodes down too long are recorded, and
                    // deleted if those nodes come back.
                    let op = MetaOp::Collected {
                        ino: *ino,
                        indexes: done,
                        left: plan.gone.clone(),
                    };
                    match fs.call(ministry, op, "collected").await {
                        Ok(_) => {
                            collected += count;
                            metrics::counter!("govfs_chunks_collected_total")
                                .increment(count as u64);
                        }
                        Err(e) => {
                            tracing::debug!(ministry, ino = ino.0, "collected not recorded: {e}")
                        }
                    }
                }
            }
            match page.next {
                Some(next) => from = Some(next),
                None => break,
            }
        }
        for node in &plan.live {
            collected += self
                .clear_left(client, fs, ministry, minister, *node)
                .await?;
        }
        Ok(collected)
    }

    /// Deletes the copies of `ministry`'s chunks left on `node` (up again);
    /// returns how many records went.
    async fn clear_left(
        &self,
        client: &Client,
        fs: &mut FileSystem,
        ministry: GroupId,
        minister: std::net::SocketAddr,
        node: NodeId,
    ) -> Result<usize, String> {
        let mut cleared = 0;
        let mut from = None;
        loop {
            let op = MetaOp::LeftBehind {
                node,
                from,
                limit: PAGE,
            };
            let page = match fs.call(ministry, op, "left behind").await {
                Ok(MetaReply::Left(page)) => page,
                Ok(other) => return Err(format!("ministry {ministry}: answered {other:?}")),
                Err(e) => return Err(format!("ministry {ministry}: {e}")),
            };
            // The page is in (file, index) order: one grants request per file.
            let mut files: BTreeMap<Ino, Vec<u64>> = BTreeMap::new();
            for (ino, index, _) in &page.copies {
                files.entry(*ino).or_default().push(*index);
            }
            for (ino, indexes) in files {
                let grants = match client
                    .delete_grants(minister, ministry, ino, indexes.clone(), Some(node))
                    .await
                {
                    Ok(g) => g,
                    Err(e) => {
                        tracing::debug!(ministry, ino = ino.0, node, "no delete grants: {e}");
                        continue;
                    }
                };
                let mut done = Vec::new();
                for (index, grant) in indexes.iter().zip(&grants) {
                    match client.delete_chunk(node, grant).await {
                        // Deleted, or the node has a newer copy: the chunk
                        // came back to it since.
                        Ok(())
                        | Err(ClientError::Chunk {
                            refusal: ChunkRefusal::Version { .. },
                            ..
                        }) => done.push((ino, *index)),
                        Err(e) => {
                            tracing::debug!(ino = ino.0, index, node, "left copy not deleted: {e}")
                        }
                    }
                }
                if done.is_empty() {
                    continue;
                }
                let count = done.len();
                let op = MetaOp::ForgetLeft {
                    node,
                    entries: done,
                };
                match fs.call(ministry, op, "forget left").await {
                    Ok(_) => {
                        cleared += count;
                        metrics::counter!("govfs_chunks_collected_total").increment(count as u64);
                    }
                    Err(e) => tracing::debug!(ministry, node, "left copies not forgotten: {e}"),
                }
            }
            match page.next {
                Some(next) => from = Some(next),
                None => break,
            }
        }
        Ok(cleared)
    }
}

/// Moves one chunk off its lost replicas (or tops it up), under a write
/// lease on all of it.
async fn move_chunk(
    fs: &mut FileSystem,
    ministry: GroupId,
    chunk: &DegradedChunk,
) -> Result<(), FsError> {
    let label = format!("inode {}", chunk.ino.0);
    let attr = match fs
        .call(ministry, MetaOp::Stat { ino: chunk.ino }, &label)
        .await?
    {
        MetaReply::Attr(a) => a,
        other => {
            return Err(FsError::Unexpected {
                ministry,
                what: format!("{other:?}"),
            })
        }
    };
    let cs = u64::from(attr.layout.chunk_size);
    let start = chunk.place.index * cs;
    let region = Region::new(start, start + cs).ok_or(FsError::Unexpected {
        ministry,
        what: format!("chunk {} of {label} has no valid region", chunk.place.index),
    })?;
    let opts = LeaseOptions {
        deadline: Duration::from_secs(2),
        ..LeaseOptions::default()
    };
    let mut file = fs
        .open_ino_region(ministry, chunk.ino, region, &opts, &label)
        .await?;
    let moved = file.rereplicate(chunk.place.index, &chunk.lost).await;
    let closed = file.close().await;
    moved.and(closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use govfs_core::ids::shard_id;
    use govfs_core::president::{MinistryInfo, Order};

    fn agent(delay: Duration) -> Agent {
        Agent {
            settings: RepairSettings {
                node: 1,
                addrs: Vec::new(),
                key: ClusterKey::from_hex(&"11".repeat(32)).expect("key"),
                delay,
                interval: Duration::from_secs(1),
            },
            down_since: BTreeMap::new(),
        }
    }

    #[test]
    fn a_node_must_stay_down_for_the_delay_and_only_own_ministries_are_scanned() {
        let mut map = ClusterMap::new();
        for node in 1..=4 {
            map.apply(&Order::RegisterShard {
                shard: shard_id(node, 0),
            });
        }
        let info = |id, minister| MinistryInfo {
            id,
            members: vec![1, 2, 3],
            minister: Some(minister),
            term: 1,
            pending: None,
        };
        map.ministries.insert(1, info(1, shard_id(1, 0)));
        map.ministries.insert(2, info(2, shard_id(2, 0)));
        map.storage.insert(4, 0);
        map.apply(&Order::NodeState {
            node: 3,
            down: true,
        });
        let mut a = agent(Duration::from_secs(10));
        let t0 = Instant::now();
        let p = a.plan(&map, t0);
        assert!(p.gone.is_empty(), "not down for long enough yet");
        assert_eq!(p.down, vec![3], "its chunks are held back meanwhile");
        assert_eq!(p.up, 2, "node 3 is down and node 4 full");
        assert_eq!(p.mine, vec![1]);
        let p = a.plan(&map, t0 + Duration::from_secs(10));
        assert_eq!(p.gone, vec![3]);
        assert!(p.down.is_empty());
        // Back up, then down again: the delay starts over.
        map.apply(&Order::NodeState {
            node: 3,
            down: false,
        });
        assert!(a.plan(&map, t0 + Duration::from_secs(11)).gone.is_empty());
        map.apply(&Order::NodeState {
            node: 3,
            down: true,
        });
        assert!(a.plan(&map, t0 + Duration::from_secs(12)).gone.is_empty());
        assert_eq!(a.plan(&map, t0 + Duration::from_secs(22)).gone, vec![3]);
    }
}
