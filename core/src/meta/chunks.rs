//! Where a file's chunks live (issue 6): the ministry places a chunk when
//! it is first written and records the placement in its log, so every
//! member answers the same and readers find the replicas without asking
//! the minister.
//!
//! `PlaceChunks` carries the candidate storage nodes; the minister fills
//! them in from the cluster map before proposing ([`super::app`]), and
//! applying runs [`crate::data::place`] over them, so the choice is
//! deterministic on every member. A chunk's version is the log index that
//! placed it (or, for a file that came from another ministry, one past its
//! old version when that is larger): it only grows, so a storage node can
//! tell a newer replica set from an older one.
//!
//! A chunk is placed on up to `layout.replicas` nodes: fewer when the
//! cluster has fewer eligible nodes (the file is then under-replicated, as
//! HDFS allows, until repair adds copies). None at all is ENOSPC.

use serde::{Deserialize, Serialize};

use super::changes::ChangeKind;
use super::namespace::{Ctx, Namespace};
use super::ops::MetaReply;
use super::perm::{self, R_OK, W_OK};
use super::setattr::MAX_FILE_SIZE;
use super::types::{Credentials, Errno, FileType, Ino, MetaResult};
use crate::data::{place, ChunkRef, StorageNode, Want};
use crate::raft::NodeId;

/// Chunks one request may place or list.
pub const PLACE_MAX: u64 = 1024;

/// Chunks one `Degraded` query looks at, at most: a scan of a large
/// namespace goes in pages, so it never holds the core loop for long.
pub const DEGRADED_SCAN_MAX: usize = 64 * 1024;

/// A placed chunk that needs repair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DegradedChunk {
    pub ino: Ino,
    pub place: ChunkPlace,
    /// Its replicas on down nodes.
    pub lost: Vec<NodeId>,
}

/// One page of a `Degraded` scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DegradedPage {
    pub chunks: Vec<DegradedChunk>,
    /// Where the next page starts (its `from`); `None`: the scan is done.
    pub next: Option<(Ino, u64)>,
}

/// One chunk of a file: its index in the file, version and replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPlace {
    pub index: u64,
    pub version: u64,
    pub replicas: Vec<NodeId>,
}

impl Namespace {
    /// Places chunks `first..first + count` of file `ino` that have no
    /// place yet; answers every one of them, placed before or now.
    pub(crate) fn place_chunks(
        &mut self,
        ctx: &Ctx,
        ino: Ino,
        first: u64,
        count: u64,
        candidates: &[StorageNode],
    ) -> MetaResult<MetaReply> {
        let inode = *self.file(ctx.creds, ino, W_OK)?;
        let layout = inode.layout();
        range_ok(first, count, layout.chunk_size)?;
        let eligible = candidates
            .iter()
            .filter(|n| n.up && n.free_bytes > 0)
            .count();
        let copies = usize::from(layout.replicas).min(eligible);
        let mut placed = Vec::with_capacity(count as usize);
        let list = self.chunks.get(&ino).map(Vec::as_slice).unwrap_or(&[]);
        for index in first..first + count {
            if let Ok(i) = list.binary_search_by_key(&index, |c| c.index) {
                placed.push(list[i].clone());
                continue;
            }
            if copies == 0 {
                return Err(Errno::ENOSPC);
            }
            let chunk = ChunkRef { file: ino, index }
                .id()
                .map_err(|_| Errno::EFBIG)?;
            let want = Want {
                chunk,
                replicas: copies,
                keep: &[],
                exclude: &[],
            };
            let replicas = place(candidates, &want).map_err(|_| Errno::ENOSPC)?;
            placed.push(ChunkPlace {
                index,
                version: ctx.index,
                replicas,
            });
        }
        let list = self.chunks.entry(ino).or_default();
        for c in &placed {
            if let Err(i) = list.binary_search_by_key(&c.index, |x| x.index) {
                list.insert(i, c.clone());
            }
        }
        Ok(MetaReply::Chunks(placed))
    }

    /// A new replica set (and version) for placed chunk `index` of `ino`.
    pub(crate) fn replace_chunk(
        &mut self,
        ctx: &Ctx,
        ino: Ino,
        index: u64,
        drop: &[NodeId],
        candidates: &[StorageNode],
    ) -> MetaResult<MetaReply> {
        let inode = *self.file(ctx.creds, ino, W_OK)?;
        let list = self.chunks.get(&ino).map(Vec::as_slice).unwrap_or(&[]);
        let at = list
            .binary_search_by_key(&index, |c| c.index)
            .map_err(|_| Errno::ENOENT)?;
        let old = &list[at];
        let keep: Vec<NodeId> = old
            .replicas
            .iter()
            .copied()
            .filter(|n| !drop.contains(n))
            .collect();
        if keep.is_empty() {
            // No copy would be left to take the data from.
            return Err(Errno::EINVAL);
        }
        let chunk = ChunkRef { file: ino, index }
            .id()
            .map_err(|_| Errno::EFBIG)?;
        let eligible = candidates
            .iter()
            .filter(|n| {
                n.up && n.free_bytes > 0 && !drop.contains(&n.node) && !keep.contains(&n.node)
            })
            .count();
        let want = Want {
            chunk,
            replicas: usize::from(inode.layout().replicas)
                .min(keep.len() + eligible)
                .max(keep.len()),
            keep: &keep,
            exclude: drop,
        };
        let replicas = place(candidates, &want).map_err(|_| Errno::ENOSPC)?;
        // Usually this log index, but the chunk may have been placed by
        // another ministry whose log is further along (the file came here
        // with a moved subtree): a version only grows, or storage nodes
        // would refuse every later write of the chunk as stale.
        let version = ctx.index.max(old.version + 1);
        let placed = ChunkPlace {
            index,
            version,
            replicas,
        };
        let list = self.chunks.get_mut(&ino).expect("found above");
        let old = std::mem::replace(&mut list[at], placed.clone());
        // The dropped replicas may come back with their copies.
        for n in old.replicas.iter().filter(|n| drop.contains(n)) {
            self.leave(*n, ino, &old, inode.chunk_size);
        }
        Ok(MetaReply::Chunks(vec![placed]))
    }

    /// The placed chunks among `first..first + count` of file `ino`.
    pub fn chunks_of(
        &self,
        creds: &Credentials,
        ino: Ino,
        first: u64,
        count: u64,
    ) -> MetaResult<Vec<ChunkPlace>> {
        let inode = self.file(creds, ino, R_OK)?;
        range_ok(first, count, inode.chunk_size)?;
        let list = self.chunks.get(&ino).map(Vec::as_slice).unwrap_or(&[]);
        let start = list.partition_point(|c| c.index < first);
        Ok(list[start..]
            .iter()
            .take_while(|c| c.index < first + count)
            .cloned()
            .collect())
    }

    /// Chunks from `from` on with a replica on a `down` node, or fewer
    /// replicas than their file's layout asks while `up` nodes could hold
    /// them; looks at [`DEGRADED_SCAN_MAX`] chunks at most.
    pub fn degraded(
        &self,
        creds: &Credentials,
        down: &[NodeId],
        up: u32,
        from: Option<(Ino, u64)>,
        limit: u32,
    ) -> MetaResult<DegradedPage> {
        if limit == 0 || u64::from(limit) > PLACE_MAX {
            return Err(Errno::EINVAL);
        }
        if !creds.is_root() {
            return Err(Errno::EACCES);
        }
        let mut page = DegradedPage {
            chunks: Vec::new(),
            next: None,
        };
        let start = from.map_or(std::ops::Bound::Unbounded, |(ino, _)| {
            std::ops::Bound::Included(ino)
        });
        let mut scanned = 0;
        for (ino, list) in self.chunks.range((start, std::ops::Bound::Unbounded)) {
            let Ok(inode) = self.inode(*ino) else {
                continue;
            };
            let want = usize::from(inode.layout().replicas).min(up as usize);
            let first = match from {
                Some((f, index)) if f == *ino => list.partition_point(|c| c.index < index),
                _ => 0,
            };
            for c in &list[first..] {
                if scanned == DEGRADED_SCAN_MAX || page.chunks.len() == limit as usize {
                    page.next = Some((*ino, c.index));
                    return Ok(page);
                }
                scanned += 1;
                let lost: Vec<NodeId> = c
                    .replicas
                    .iter()
                    .copied()
                    .filter(|n| down.contains(n))
                    .collect();
                if !lost.is_empty() || c.replicas.len() < want {
                    page.chunks.push(DegradedChunk {
                        ino: *ino,
                        place: c.clone(),
                        lost,
                    });
                }
            }
        }
        Ok(page)
    }

    /// Data was written up to `end`: the size grows to it (never shrinks:
    /// writers report in any order), mtime and data_seq move.
    pub(crate) fn written(&mut self, ctx: &Ctx, ino: Ino, end: u64) -> MetaResult<MetaReply> {
        if end > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let inode = *self.file(ctx.creds, ino, W_OK)?;
        let mut next = inode;
        if end > inode.size {
            self.total_bytes += u128::from(end - inode.size);
            next.size = end;
        }
        next.mtime = ctx.now;
        next.ctime = ctx.now;
        next.meta_seq = ctx.index;
        next.data_seq = ctx.index;
        *self.inode_mut(ino) = next;
        self.record_inode(ctx, ino, ChangeKind::Truncate);
        Ok(MetaReply::Attr(self.attr(ino, &next)))
    }

    /// A regular file the caller may access with `mask`.
    fn file(&self, creds: &Credentials, ino: Ino, mask: u32) -> MetaResult<&super::table::Inode> {
        let inode = self.inode(ino)?;
        match inode.kind {
            FileType::File => {}
            FileType::Dir => return Err(Errno::EISDIR),
            FileType::Symlink => return Err(Errno::EINVAL),
        }
        perm::check(creds, inode, mask)?;
        Ok(inode)
    }
}

fn range_ok(first: u64, count: u64, chunk_size: u32) -> MetaResult<()> {
    if count == 0 || count > PLACE_MAX {
        return Err(Errno::EINVAL);
    }
    let end = first.checked_add(count).ok_or(Errno::EFBIG)?;
    if end.saturating_mul(u64::from(chunk_size))
        > MAX_FILE_SIZE.saturating_add(u64::from(chunk_size))
    {
        return Err(Errno::EFBIG);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::meta::ops::{MetaOp, MetaRequest};
    use crate::meta::ROOT;

    /// Storage nodes 1..=n, each its own domain, with room.
    pub(crate) fn nodes(n: u64) -> Vec<StorageNode> {
        (1..=n)
            .map(|node| StorageNode {
                node,
                domain: node as u32,
                free_bytes: 1 << 40,
                up: true,
            })
            .collect()
    }

    /// `op` as root, applied at log index `index`.
    pub(crate) fn run(ns: &mut Namespace, index: u64, op: MetaOp) -> MetaResult<MetaReply> {
        ns.execute(
            index,
            &MetaRequest {
                op,
                creds: Credentials::root(),
                now: index as i64,
            },
        )
    }

    fn file(ns: &mut Namespace) -> Ino {
        run(
            ns,
            2,
            MetaOp::GrantInodes {
                start: ROOT.0 + 1,
                count: 100,
            },
        )
        .expect("grant");
        match run(
            ns,
            3,
            MetaOp::Create {
                parent: ROOT,
                name: b"f".to_vec(),
                mode: 0o644,
                exclusive: true,
                layout: None,
            },
        ) {
            Ok(MetaReply::Created { attr, .. }) => attr.ino,
            other => panic!("create: {other:?}"),
        }
    }

    pub(crate) fn place_op(
        ino: Ino,
        first: u64,
        count: u64,
        candidates: Vec<StorageNode>,
    ) -> MetaOp {
        MetaOp::PlaceChunks {
            ino,
            first,
            count,
            candidates,
        }
    }

    #[test]
    fn degraded_finds_chunks_on_down_nodes_and_short_of_replicas_in_pages() {
        let mut ns = Namespace::new(ROOT, crate::meta::changes::ChangeFeed::new(64));
        let f = file(&mut ns);
        let Ok(MetaReply::Chunks(placed)) = run(&mut ns, 10, place_op(f, 0, 8, nodes(5))) else {
            panic!("placed");
        };
        // A second file placed when only one node was eligible.
        let g = match run(
            &mut ns,
            11,
            MetaOp::Create {
                parent: ROOT,
                name: b"g".to_vec(),
                mode: 0o644,
                exclusive: true,
                layout: None,
            },
        ) {
            Ok(MetaReply::Created { attr, .. }) => attr.ino,
            other => panic!("create: {other:?}"),
        };
        assert!(run(&mut ns, 12, place_op(g, 0, 2, nodes(1))).is_ok());
        let root = Credentials::root();
        let on_node_2: Vec<u64> = placed
            .iter()
            .filter(|c| c.replicas.contains(&2))
            .map(|c| c.index)
            .collect();
        assert!(!on_node_2.is_empty() && on_node_2.len() < 8);

        // Nothing down and one node up: nothing to do.
        let page = ns.degraded(&root, &[], 1, None, 100).expect("scan");
        assert_eq!(
            page,
            DegradedPage {
                chunks: Vec::new(),
                next: None
            }
        );
        // Node 2 down, and 4 nodes up: f's chunks on node 2, and both of
        // g's (one replica where there could be three).
        let page = ns.degraded(&root, &[2], 4, None, 100).expect("scan");
        assert_eq!(page.next, None);
        let found: Vec<(Ino, u64)> = page.chunks.iter().map(|c| (c.ino, c.place.index)).collect();
        let mut want: Vec<(Ino, u64)> = on_node_2.iter().map(|i| (f, *i)).collect();
        want.extend([(g, 0), (g, 1)]);
        assert_eq!(found, want);
        for c in &page.chunks {
            assert_eq!(c.lost, if c.ino == f { vec![2] } else { vec![] });
        }
        // The same, a chunk per page, following `next`.
        let mut paged = Vec::new();
        let mut from = None;
        loop {
            let page = ns.degraded(&root, &[2], 4, from, 1).expect("scan");
            paged.extend(page.chunks.iter().map(|c| (c.ino, c.place.index)));
            match page.next {
                Some(n) => from = Some(n),
                None => break,
            }
        }
        assert_eq!(paged, want);
        // Root only, and a page of at least one.
        assert_eq!(
            ns.degraded(&Credentials::user(1000, 1000), &[2], 4, None, 10),
            Err(Errno::EACCES)
        );
        assert_eq!(ns.degraded(&root, &[2], 4, None, 0), Err(Errno::EINVAL));
    }

    #[test]
    fn a_new_replica_set_has_a_larger_version_even_from_a_younger_log() {
        let mut ns = Namespace::new(ROOT, crate::meta::changes::ChangeFeed::new(64));
        let f = file(&mut ns);
        let Ok(MetaReply::Chunks(a)) = run(&mut ns, 1_000, place_op(f, 0, 1, nodes(4))) else {
            panic!("placed");
        };
        assert_eq!(a[0].version, 1_000);
        // As after a transfer to a ministry whose log is at index 20.
        let replace = MetaOp::Replace {
            ino: f,
            index: 0,
            drop: vec![a[0].replicas[0]],
            candidates: nodes(4),
        };
        let Ok(MetaReply::Chunks(b)) = run(&mut ns, 20, replace) else {
            panic!("replaced");
        };
        assert_eq!(b[0].version, 1_001);
        assert!(!b[0].replicas.contains(&a[0].replicas[0]));
    }

    #[test]
    fn chunks_are_placed_once_on_distinct_nodes() {
        let mut ns = Namespace::new(ROOT, crate::meta::changes::ChangeFeed::new(64));
        let f = file(&mut ns);
        let Ok(MetaReply::Chunks(a)) = run(&mut ns, 10, place_op(f, 0, 4, nodes(5))) else {
            panic!("placed");
        };
        assert_eq!(a.len(), 4);
        for c in &a {
            assert_eq!(c.version, 10);
            let mut r = c.replicas.clone();
            r.sort_unstable();
            r.dedup();
            assert_eq!(r.len(), 3, "three distinct replicas");
        }
        // Placing again (other candidates, later index) keeps the first answer.
        let Ok(MetaReply::Chunks(b)) = run(&mut ns, 11, place_op(f, 2, 4, nodes(3))) else {
            panic!("placed");
        };
        assert_eq!(b[..2], a[2..]);
        assert_eq!(b[2].version, 11);
        let listed = ns
            .chunks_of(&Credentials::root(), f, 0, 100)
            .expect("listed");
        assert_eq!(listed.len(), 6);
        assert!(listed.windows(2).all(|w| w[0].index < w[1].index));
        // The snapshot keeps them.
        let back =
            Namespace::restore_checked(&crate::meta::snapshot::encode(&ns)).expect("restore");
        assert_eq!(back.chunks_of(&Credentials::root(), f, 0, 100), Ok(listed));
    }

    #[test]
    fn fewer_nodes_than_replicas_and_none_at_all() {
        let mut ns = Namespace::new(ROOT, crate::meta::changes::ChangeFeed::new(64));
        let f = file(&mut ns);
        let Ok(MetaReply::Chunks(a)) = run(&mut ns, 10, place_op(f, 0, 1, nodes(1))) else {
            panic!("placed");
        };
        assert_eq!(a[0].replicas, vec![1], "under-replicated, not refused");
        assert_eq!(
            run(&mut ns, 11, place_op(f, 1, 1, Vec::new())),
            Err(Errno::ENOSPC)
        );
        assert_eq!(
            run(&mut ns, 12, place_op(f, 0, 0, nodes(3))),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            run(&mut ns, 13, place_op(ROOT, 0, 1, nodes(3))),
            Err(Errno::EISDIR)
        );
    }

    #[test]
    fn the_minister_fills_in_placement_candidates_and_nothing_else() {
        use crate::ids::shard_id;
        use crate::meta::app::encode_request;
        use crate::node::App;
        let ns = Namespace::new(ROOT, crate::meta::changes::ChangeFeed::new(64));
        let mut map = crate::president::ClusterMap::new();
        for s in [shard_id(1, 0), shard_id(2, 0), shard_id(2, 1)] {
            map.shards.insert(s);
        }
        let req = |op| {
            encode_request(&MetaRequest {
                op,
                creds: Credentials::root(),
                now: 0,
            })
        };
        let create = req(MetaOp::Mkdir {
            parent: ROOT,
            name: b"d".to_vec(),
            mode: 0o755,
        });
        assert_eq!(
            ns.prepare(&create, &map),
            None,
            "other ops pass as they are"
        );
        let place = req(place_op(Ino(5), 0, 1, nodes(9)));
        let filled = ns.prepare(&place, &map).expect("filled in");
        let request: MetaRequest = crate::codec::decode_exact(&filled).expect("decodes");
        let MetaOp::PlaceChunks { candidates, .. } = request.op else {
            panic!("still a placement");
        };
        let got: Vec<NodeId> = candidates.iter().map(|c| c.node).collect();
        assert_eq!(got, vec![1, 2], "the map's nodes, whatever the client sent");
        let free: Vec<u64> = candidates.iter().map(|c| c.free_bytes).collect();
        assert_eq!(
            free,
            vec![crate::meta::app::UNREPORTED_FREE_BYTES; 2],
            "not reported yet"
        );

        // Once reported, the map's free space is the weight, and a full
        // node takes no chunk.
        map.storage.insert(1, 0);
        map.storage.insert(2, 5 << 30);
        let filled = ns.prepare(&place, &map).expect("filled in");
        let request: MetaRequest = crate::codec::decode_exact(&filled).expect("decodes");
        let MetaOp::PlaceChunks { candidates, .. } = request.op else {
            panic!("still a placement");
        };
        let free: Vec<(NodeId, u64)> = candidates.iter().map(|c| (c.node, c.free_bytes)).collect();
        assert_eq!(free, vec![(1, 0), (2, 5 << 30)]);
        for index in 0..32 {
            let chosen = crate::data::place(
                &candidates,
                &crate::data::Want {
                    chunk: crate::data::ChunkRef {
                        file: Ino(5),
                        index,
                    }
                    .id()
                    .expect("id"),
                    replicas: 1,
                    keep: &[],
                    exclude: &[],
                },
            )
            .expect("one replica fits");
            assert_eq!(chosen, vec![2], "the full node is never chosen");
        }

        // A node the president judged down is a candidate marked down,
        // and never chosen either.
        map.storage.insert(1, 5 << 30);
        map.down.insert(2);
        let filled = ns.prepare(&place, &map).expect("filled in");
        let request: MetaRequest = crate::codec::decode_exact(&filled).expect("decodes");
        let MetaOp::PlaceChunks { candidates, .. } = request.op else {
            panic!("still a placement");
        };
        let up: Vec<(NodeId, bool)> = candidates.iter().map(|c| (c.node, c.up)).collect();
        assert_eq!(up, vec![(1, true), (2, false)]);
        let want = crate::data::Want {
            chunk: crate::data::ChunkRef {
                file: Ino(5),
                index: 0,
            }
            .id()
            .expect("id"),
            replicas: 2,
            keep: &[],
            exclude: &[],
        };
        assert_eq!(
            crate::data::place(&candidates, &want),
            Err(crate::data::PlacementError::NotEnoughNodes {
                needed: 2,
                eligible: 1
            })
        );
        assert_eq!(
            crate::data::place(
                &candidates,
                &crate::data::Want {
                    replicas: 1,
                    ..want
                }
            ),
            Ok(vec![1])
        );
    }

    #[test]
    fn written_grows_the_size_and_never_shrinks_it() {
        let mut ns = Namespace::new(ROOT, crate::meta::changes::ChangeFeed::new(64));
        let f = file(&mut ns);
        let size = |r: MetaResult<MetaReply>| match r {
            Ok(MetaReply::Attr(a)) => a.size,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            size(run(&mut ns, 10, MetaOp::Written { ino: f, end: 5000 })),
            5000
        );
        assert_eq!(
            size(run(&mut ns, 11, MetaOp::Written { ino: f, end: 100 })),
            5000
        );
        assert_eq!(
            run(&mut ns, 12, MetaOp::Written { ino: ROOT, end: 1 }),
            Err(Errno::EISDIR)
        );
    }
}
