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

use serde::{Deserialize, Serialize};

use super::chunks::{ChunkPlace, PLACE_MAX};
use super::namespace::Namespace;
use super::ops::MetaReply;
use super::types::{Credentials, Errno, Ino, MetaResult};

/// The chunks of one file that is gone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Garbage {
    /// The file's chunk size: a delete grant covers the whole chunk.
    pub chunk_size: u32,
    /// Placements still to delete, in index order (never empty).
    pub chunks: Vec<ChunkPlace>,
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

    /// Chunks `indexes` of gone file `ino` were deleted on their replicas:
    /// forget them. Indexes no longer listed are ignored (a resend). Root
    /// only.
    pub(crate) fn collected(
        &mut self,
        creds: &Credentials,
        ino: Ino,
        indexes: &[u64],
    ) -> MetaResult<MetaReply> {
        if !creds.is_root() {
            return Err(Errno::EACCES);
        }
        if indexes.is_empty() || indexes.len() as u64 > PLACE_MAX {
            return Err(Errno::EINVAL);
        }
        if let Some(g) = self.garbage.get_mut(&ino) {
            g.chunks.retain(|c| !indexes.contains(&c.index));
            if g.chunks.is_empty() {
                self.garbage.remove(&ino);
            }
        }
        Ok(MetaReply::Done)
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
    use crate::data::StorageNode;
    use crate::meta::ops::{MetaOp, MetaRequest};
    use crate::meta::ROOT;

    fn run(ns: &mut Namespace, index: u64, op: MetaOp) -> MetaResult<MetaReply> {
        ns.execute(
            index,
            &MetaRequest {
                op,
                creds: Credentials::root(),
                now: index as i64,
            },
        )
    }

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
        let candidates = (1..=3)
            .map(|node| StorageNode {
                node,
                domain: node as u32,
                free_bytes: 1 << 40,
                up: true,
            })
            .collect();
        let op = MetaOp::PlaceChunks {
            ino,
            first: 0,
            count,
            candidates,
        };
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
        assert_eq!(ns.collected(&user, f, &[0]), Err(Errno::EACCES));
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
            },
        )
        .expect("again");
        let page = ns.garbage(&root, None, 10).expect("list");
        assert_eq!(
            page.files.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![g]
        );
    }
}
