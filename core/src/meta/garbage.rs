//! Chunks of files that are gone (issue 6): when a file loses its last
//! name, its placements move from `chunks` to `garbage`, part of the
//! replicated state, so a minister that dies half way leaves the list to
//! the next one. The minister's agent (`tools/src/repair.rs`) pages
//! through it (`MetaOp::Garbage`), deletes each chunk on its replicas
//! under grants only the minister signs, and only for chunks listed here
//! (`LeaseRequest::DeleteGrants`), then drops what it deleted
//! (`MetaOp::Collected`, through the log).
//!
//! Inode numbers are never handed out twice, so a chunk id in the list
//! can never name a live file's chunk.
//!
//! Copies left behind: a replica dropped from a chunk's set (its node was
//! down or unreachable when the chunk moved), or a gone file's replica on a
//! node down for longer than the repair delay, is recorded in `left` with
//! the version it had. When that node is up again the agent deletes it
//! under a delete grant for exactly that version (`DeleteGrants { on }`):
//! a storage node holding a newer copy (the chunk came back to it since)
//! refuses, and the record goes either way (`MetaOp::ForgetLeft`).

use serde::{Deserialize, Serialize};

use super::chunks::{ChunkPlace, PLACE_MAX};
use super::namespace::Namespace;
use super::ops::MetaReply;
use super::types::{Credentials, Errno, Ino, MetaResult};
use crate::raft::NodeId;

/// The chunks of one file that is gone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Garbage {
    /// The file's chunk size: a delete grant covers the whole chunk.
    pub chunk_size: u32,
    /// Placements still to delete, in index order (never empty).
    pub chunks: Vec<ChunkPlace>,
}

/// A stale copy of a chunk on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftCopy {
    /// The version the copy has at most.
    pub version: u64,
    pub chunk_size: u32,
}

/// One page of the copies left on a node: (file, chunk index, copy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftPage {
    pub copies: Vec<(Ino, u64, LeftCopy)>,
    /// The `from` of the next page; `None`: the list ends here.
    pub next: Option<(Ino, u64)>,
}

/// One page of the garbage list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GarbagePage {
    pub files: Vec<(Ino, Garbage)>,
    /// The `from` of the next page; `None`: the list ends here.
    pub next: Option<Ino>,
}

impl Namespace {
    /// A file lost its last name: its chunks become garbage.
    pub(crate) fn discard_chunks(&mut self, ino: Ino, chunk_size: u32) {
        if let Some(chunks) = self.chunks.remove(&ino) {
            debug_assert!(!chunks.is_empty());
            let old = self.garbage.insert(ino, Garbage { chunk_size, chunks });
            assert!(old.is_none(), "inode {ino:?} freed twice");
        }
    }

    /// Files from `from` on with chunks to delete, at most `limit` files
    /// (1 to [`PLACE_MAX`]) and about [`PLACE_MAX`] chunks. Root only.
    pub fn garbage(
        &self,
        creds: &Credentials,
        from: Option<Ino>,
        limit: u32,
    ) -> MetaResult<GarbagePage> {
        if limit == 0 || u64::from(limit) > PLACE_MAX {
            return Err(Errno::EINVAL);
        }
        if !creds.is_root() {
            return Err(Errno::EACCES);
        }
        let mut page = GarbagePage {
            files: Vec::new(),
            next: None,
        };
        let mut chunks = 0u64;
        for (ino, g) in self.garbage.range(from.unwrap_or(Ino(0))..) {
            if page.files.len() == limit as usize || (chunks >= PLACE_MAX && !page.files.is_empty())
            {
                page.next = Some(*ino);
                break;
            }
            chunks += g.chunks.len() as u64;
            page.files.push((*ino, g.clone()));
        }
        Ok(page)
    }

    /// Chunks `indexes` of gone file `ino` were deleted on their replicas,
    /// except on the nodes in `left` (down too long), whose copies are
    /// recorded as left behind: forget them. Indexes no longer listed are
    /// ignored (a resend). Root only.
    pub(crate) fn collected(
        &mut self,
        creds: &Credentials,
        ino: Ino,
        indexes: &[u64],
        left: &[NodeId],
    ) -> MetaResult<MetaReply> {
        if !creds.is_root() {
            return Err(Errno::EACCES);
        }
        if indexes.is_empty() || indexes.len() as u64 > PLACE_MAX {
            return Err(Errno::EINVAL);
        }
        let Some(g) = self.garbage.get_mut(&ino) else {
            return Ok(MetaReply::Done);
        };
        let chunk_size = g.chunk_size;
        let gone: Vec<ChunkPlace> = g
            .chunks
            .extract_if(.., |c| indexes.contains(&c.index))
            .collect();
        if g.chunks.is_empty() {
            self.garbage.remove(&ino);
        }
        for c in gone {
            for n in c.replicas.iter().filter(|n| left.contains(n)) {
                self.leave(*n, ino, &c, chunk_size);
            }
        }
        Ok(MetaReply::Done)
    }

    /// Records that node `node` may still hold chunk `c` of `ino`.
    pub(crate) fn leave(&mut self, node: NodeId, ino: Ino, c: &ChunkPlace, chunk_size: u32) {
        let copy = LeftCopy {
            version: c.version,
            chunk_size,
        };
        let slot = self.left.entry((node, ino, c.index)).or_insert(copy);
        slot.version = slot.version.max(c.version);
    }

    /// Copies left on `node`, from (file, index) `from` on, at most
    /// `limit` (1 to [`PLACE_MAX`]). Root only.
    pub fn left_on(
        &self,
        creds: &Credentials,
        node: NodeId,
        from: Option<(Ino, u64)>,
        limit: u32,
    ) -> MetaResult<LeftPage> {
        if limit == 0 || u64::from(limit) > PLACE_MAX {
            return Err(Errno::EINVAL);
        }
        if !creds.is_root() {
            return Err(Errno::EACCES);
        }
        let (ino, index) = from.unwrap_or((Ino(0), 0));
        let mut page = LeftPage {
            copies: Vec::new(),
            next: None,
        };
        for (&(_, ino, index), copy) in self
            .left
            .range((node, ino, index)..=(node, Ino(u64::MAX), u64::MAX))
        {
            if page.copies.len() == limit as usize {
                page.next = Some((ino, index));
                break;
            }
            page.copies.push((ino, index, *copy));
        }
        Ok(page)
    }

    /// The copies `entries` on `node` are deleted (or newer than recorded):
    /// forget them. Root only.
    pub(crate) fn forget_left(
        &mut self,
        creds: &Credentials,
        node: NodeId,
        entries: &[(Ino, u64)],
    ) -> MetaResult<MetaReply> {
        if !creds.is_root() {
            return Err(Errno::EACCES);
        }
        if entries.is_empty() || entries.len() as u64 > PLACE_MAX {
            return Err(Errno::EINVAL);
        }
        for (ino, index) in entries {
            self.left.remove(&(node, *ino, *index));
        }
        Ok(MetaReply::Done)
    }

    /// For delete grants of copies left on `node`: each (file, index)
    /// `indexes` of `file` recorded there, as a placement on that node alone
    /// at the recorded version, and the chunk size.
    pub(crate) fn left_placements(
        &self,
        node: NodeId,
        file: Ino,
        indexes: &[u64],
    ) -> Result<(u32, Vec<ChunkPlace>), String> {
        let mut size = None;
        let places = indexes
            .iter()
            .map(|&index| {
                let copy = self.left.get(&(node, file, index)).ok_or_else(|| {
                    format!("no copy of chunk {index} of {file:?} left on node {node}")
                })?;
                size = Some(copy.chunk_size);
                Ok(ChunkPlace {
                    index,
                    version: copy.version,
                    replicas: vec![node],
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok((size.unwrap_or(0), places))
    }

    /// For delete grants: the chunk size of gone file `file` and the
    /// placements of its chunks `indexes` still to delete.
    pub(crate) fn garbage_placements(
        &self,
        file: Ino,
        indexes: &[u64],
    ) -> Result<(u32, Vec<ChunkPlace>), String> {
        let g = self
            .garbage
            .get(&file)
            .ok_or_else(|| format!("{file:?} has no chunks to delete"))?;
        let places = indexes
            .iter()
            .map(|&index| {
                g.chunks
                    .binary_search_by_key(&index, |c| c.index)
                    .map(|i| g.chunks[i].clone())
                    .map_err(|_| format!("chunk {index} of {file:?} is not garbage"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((g.chunk_size, places))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::chunks::tests::{nodes, place_op, run};
    use crate::meta::ops::MetaOp;
    use crate::meta::ROOT;

    fn create(ns: &mut Namespace, index: u64, name: &[u8]) -> Ino {
        match run(
            ns,
            index,
            MetaOp::Create {
                parent: ROOT,
                name: name.to_vec(),
                mode: 0o644,
                exclusive: true,
                layout: None,
            },
        ) {
            Ok(MetaReply::Created { attr, .. }) => attr.ino,
            other => panic!("create: {other:?}"),
        }
    }

    fn place(ns: &mut Namespace, index: u64, ino: Ino, count: u64) {
        let op = place_op(ino, 0, count, nodes(3));
        assert!(matches!(run(ns, index, op), Ok(MetaReply::Chunks(_))));
    }

    #[test]
    fn a_gone_files_chunks_are_listed_until_collected_and_survive_a_snapshot() {
        let mut ns = Namespace::new(ROOT, crate::meta::changes::ChangeFeed::new(64));
        let grant = MetaOp::GrantInodes {
            start: ROOT.0 + 1,
            count: 100,
        };
        run(&mut ns, 1, grant).expect("grant");
        let (f, g, h) = (
            create(&mut ns, 2, b"f"),
            create(&mut ns, 3, b"g"),
            create(&mut ns, 4, b"h"),
        );
        place(&mut ns, 5, f, 3);
        place(&mut ns, 6, g, 2);
        // A second name keeps the file: nothing is garbage yet.
        let link = MetaOp::Link {
            ino: f,
            new_parent: ROOT,
            new_name: b"f2".to_vec(),
        };
        run(&mut ns, 7, link).expect("link");
        let unlink = |name: &[u8]| MetaOp::Unlink {
            parent: ROOT,
            name: name.to_vec(),
        };
        run(&mut ns, 8, unlink(b"f")).expect("unlink");
        let root = Credentials::root();
        assert!(ns.garbage(&root, None, 10).expect("list").files.is_empty());
        // The last name of f, g (renamed over), and h (never written).
        run(&mut ns, 9, unlink(b"f2")).expect("unlink");
        let rename = MetaOp::Rename {
            parent: ROOT,
            name: b"h".to_vec(),
            new_parent: ROOT,
            new_name: b"g".to_vec(),
            noreplace: false,
        };
        run(&mut ns, 10, rename).expect("rename over g");
        let page = ns.garbage(&root, None, 10).expect("list");
        let listed: Vec<(Ino, usize)> = page
            .files
            .iter()
            .map(|(i, g)| (*i, g.chunks.len()))
            .collect();
        assert_eq!(listed, vec![(f, 3), (g, 2)]);
        assert_eq!(page.next, None);
        let first = ns.garbage(&root, None, 1).expect("list");
        assert_eq!(first.next, Some(g), "one file per page");

        // Delete grants name only listed chunks.
        let (cs, places) = ns.garbage_placements(f, &[0, 2]).expect("listed");
        assert_eq!(cs, crate::meta::Layout::default().chunk_size);
        assert_eq!(
            places.iter().map(|c| c.index).collect::<Vec<_>>(),
            vec![0, 2]
        );
        assert!(ns.garbage_placements(h, &[0]).is_err(), "h had no chunks");

        // Root only, and a snapshot keeps the list.
        let user = Credentials::user(1000, 1000);
        assert_eq!(ns.garbage(&user, None, 10), Err(Errno::EACCES));
        assert_eq!(ns.collected(&user, f, &[0], &[]), Err(Errno::EACCES));
        let restored =
            crate::meta::snapshot::decode(&crate::meta::snapshot::encode(&ns)).expect("restores");
        assert_eq!(restored.garbage, ns.garbage);

        // Collected chunks leave the list, once; the file with them all.
        run(
            &mut ns,
            11,
            MetaOp::Collected {
                ino: f,
                indexes: vec![0, 2],
                left: vec![],
            },
        )
        .expect("collected");
        assert!(ns.garbage_placements(f, &[0]).is_err());
        assert!(ns.garbage_placements(f, &[1]).is_ok());
        run(
            &mut ns,
            12,
            MetaOp::Collected {
                ino: f,
                indexes: vec![0, 1, 2],
                left: vec![],
            },
        )
        .expect("again");
        let page = ns.garbage(&root, None, 10).expect("list");
        assert_eq!(
            page.files.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![g]
        );
        assert!(ns.left.is_empty(), "nothing left behind so far");

        // g's chunks are collected while node 2 is down too long: its
        // copies are recorded, listed for node 2 only, and signed for on
        // node 2 alone at the version they had.
        let versions: Vec<u64> = ns.garbage[&g].chunks.iter().map(|c| c.version).collect();
        let given_up = MetaOp::Collected {
            ino: g,
            indexes: vec![0, 1],
            left: vec![2, 9],
        };
        run(&mut ns, 13, given_up).expect("collected");
        assert!(ns.garbage.is_empty());
        let on_2 = ns.left_on(&root, 2, None, 10).expect("list");
        let listed: Vec<(Ino, u64, u64)> = on_2
            .copies
            .iter()
            .map(|(i, x, c)| (*i, *x, c.version))
            .collect();
        assert_eq!(listed, vec![(g, 0, versions[0]), (g, 1, versions[1])]);
        assert!(
            ns.left_on(&root, 9, None, 10)
                .expect("list")
                .copies
                .is_empty(),
            "9 held no replica"
        );
        let page = ns.left_on(&root, 2, None, 1).expect("list");
        assert_eq!(page.next, Some((g, 1)));
        let (_, places) = ns.left_placements(2, g, &[1]).expect("listed");
        assert_eq!(places[0].replicas, vec![2]);
        assert_eq!(places[0].version, versions[1]);
        assert!(ns.left_placements(3, g, &[1]).is_err());
        let restored =
            crate::meta::snapshot::decode(&crate::meta::snapshot::encode(&ns)).expect("restores");
        assert_eq!(restored.left, ns.left);
        assert_eq!(ns.left_on(&user, 2, None, 10), Err(Errno::EACCES));
        let forget = MetaOp::ForgetLeft {
            node: 2,
            entries: vec![(g, 0), (g, 1)],
        };
        run(&mut ns, 14, forget).expect("forget");
        assert!(ns.left.is_empty());
    }

    #[test]
    fn a_replica_dropped_from_a_chunk_is_left_behind_on_its_node() {
        let mut ns = Namespace::new(ROOT, crate::meta::changes::ChangeFeed::new(64));
        let grant = MetaOp::GrantInodes {
            start: ROOT.0 + 1,
            count: 100,
        };
        run(&mut ns, 1, grant).expect("grant");
        let f = create(&mut ns, 2, b"f");
        place(&mut ns, 3, f, 1);
        let old = ns.chunks[&f][0].clone();
        let dropped = old.replicas[0];
        let replace = MetaOp::Replace {
            ino: f,
            index: 0,
            drop: vec![dropped, 99],
            candidates: nodes(4),
        };
        run(&mut ns, 4, replace).expect("replace");
        let root = Credentials::root();
        let left = ns.left_on(&root, dropped, None, 10).expect("list");
        assert_eq!(left.copies.len(), 1);
        assert_eq!((left.copies[0].0, left.copies[0].1), (f, 0));
        assert_eq!(left.copies[0].2.version, old.version);
        assert!(ns
            .left_on(&root, 99, None, 10)
            .expect("list")
            .copies
            .is_empty());
    }
}
