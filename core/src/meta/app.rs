//! The namespace as the application a ministry replicates: one
//! [`MetaRequest`] per log command, a postcard `Result<MetaReply, Errno>`
//! per answer, and snapshots of the whole state.

use super::chunks::ChunkPlace;
use super::image::SubtreeImage;
use super::namespace::{Ctx, Namespace};
use super::ops::{MetaOp, MetaReply, MetaRequest};
use super::snapshot::{self, RestoreError};
use super::types::{Credentials, Errno, FileType, Ino, MetaResult};
use crate::codec::{decode_exact, encode_into, DecodeError};
use crate::node::App;

use crate::data::StorageNode;
use crate::president::{ClusterMap, Step, Transfer, TransferKind};
use crate::raft::{GroupId, Index, NodeId};

/// The free space placement assumes for a node that has not reported its
/// own yet (a fresh cluster's first writes): 1 TiB.
pub const UNREPORTED_FREE_BYTES: u64 = 1 << 40;

impl Namespace {
    /// Applies one request at log index `index`. A failed operation changes
    /// nothing. Reads answer from the state as of `index`.
    pub fn execute(&mut self, index: Index, request: &MetaRequest) -> MetaResult<MetaReply> {
        let ctx = Ctx {
            index,
            now: request.now,
            creds: &request.creds,
        };
        let reply = match &request.op {
            MetaOp::GrantInodes { start, count } => self.grant_inodes(&ctx, *start, *count),
            MetaOp::Mount { parent, name, root } => self.mount(&ctx, *parent, name, *root),
            MetaOp::Unmount { parent, name } => self.unmount(&ctx, *parent, name),
            MetaOp::Detach {
                transfer,
                parent,
                name,
                to,
            } => self.detach(&ctx, *transfer, *parent, name, *to),
            MetaOp::Attach {
                transfer,
                parent,
                image,
            } => {
                let at = parent.as_ref().map(|(p, name)| (*p, name.as_slice()));
                self.attach(&ctx, *transfer, at, image)
            }
            MetaOp::UnmountExport { transfer } => self.unmount_export(&ctx, *transfer),
            MetaOp::ForgetExport { transfer } => self.forget_export(&ctx, *transfer),
            MetaOp::Reattach { transfer } => self.reattach(&ctx, *transfer),
            MetaOp::DropRoot { ino } => self.drop_root(&ctx, *ino),
            MetaOp::Mkdir { parent, name, mode } => self.mkdir(&ctx, *parent, name, *mode),
            MetaOp::Create {
                parent,
                name,
                mode,
                exclusive,
                layout,
            } => self.create(&ctx, *parent, name, *mode, *exclusive, *layout),
            MetaOp::Symlink {
                parent,
                name,
                target,
            } => self.symlink(&ctx, *parent, name, target),
            MetaOp::Link {
                ino,
                new_parent,
                new_name,
            } => self.link(&ctx, *ino, *new_parent, new_name),
            MetaOp::Unlink { parent, name } => self.unlink(&ctx, *parent, name),
            MetaOp::Rmdir { parent, name } => self.rmdir(&ctx, *parent, name),
            MetaOp::Rename {
                parent,
                name,
                new_parent,
                new_name,
                noreplace,
            } => self.rename(&ctx, *parent, name, *new_parent, new_name, *noreplace),
            MetaOp::Setattr { ino, set } => self.setattr(&ctx, *ino, set),
            MetaOp::SetXattr {
                ino,
                name,
                value,
                how,
            } => self.setxattr(&ctx, *ino, name, value, *how),
            MetaOp::RemoveXattr { ino, name } => self.removexattr(&ctx, *ino, name),
            MetaOp::PlaceChunks {
                ino,
                first,
                count,
                candidates,
            } => self.place_chunks(&ctx, *ino, *first, *count, candidates),
            MetaOp::Written { ino, end } => self.written(&ctx, *ino, *end),
            MetaOp::Replace {
                ino,
                index,
                drop,
                candidates,
            } => self.replace_chunk(&ctx, *ino, *index, drop, candidates),
            MetaOp::Collected { ino, indexes, left } => {
                self.collected(ctx.creds, *ino, indexes, left)
            }
            MetaOp::ForgetLeft { node, entries } => self.forget_left(ctx.creds, *node, entries),
            _ => {
                return self
                    .read(index, request)
                    .expect("every operation is a change or a read")
            }
        };
        #[cfg(debug_assertions)]
        if self.inodes.len() + self.entries.len() as u64 <= 512 {
            if let Err(e) = self.check_invariants() {
                panic!("after {:?}: {e}", request.op);
            }
        }
        reply
    }
}

impl Namespace {
    /// Answers a read from the state as of applied index `index`; `None` for
    /// a change. Any serving member answers these without the log (session
    /// reads); through the log they are linearizable.
    pub fn read(&self, index: Index, request: &MetaRequest) -> Option<MetaResult<MetaReply>> {
        let creds = &request.creds;
        let reply = match &request.op {
            MetaOp::Lookup { parent, name } => {
                self.lookup(creds, *parent, name).map(MetaReply::Found)
            }
            MetaOp::LookupPath { path, follow } => {
                self.lookup_path(creds, path, *follow).map(MetaReply::Found)
            }
            MetaOp::LookupPathAt {
                start,
                path,
                follow,
            } => self
                .lookup_path_at(creds, *start, path, *follow)
                .map(MetaReply::Found),
            MetaOp::Stat { ino } => self.stat(*ino).map(MetaReply::Attr),
            MetaOp::Access { ino, mask } => {
                self.access(creds, *ino, *mask).map(|()| MetaReply::Done)
            }
            MetaOp::Readdir { dir, after, limit } => self
                .readdir(creds, *dir, after.as_deref(), *limit)
                .map(MetaReply::Dir),
            MetaOp::Readlink { ino } => self.readlink(*ino).map(MetaReply::Target),
            MetaOp::Statfs => Ok(MetaReply::Statfs(self.statfs())),
            MetaOp::GetXattr { ino, name } => {
                self.getxattr(creds, *ino, name).map(MetaReply::Value)
            }
            MetaOp::ListXattr { ino } => self.listxattr(creds, *ino).map(MetaReply::Names),
            MetaOp::Chunks { ino, first, count } => self
                .chunks_of(creds, *ino, *first, *count)
                .map(MetaReply::Chunks),
            MetaOp::Changes { dir, since, limit } => self
                .changes(creds, *dir, *since, index, *limit)
                .map(MetaReply::Changes),
            MetaOp::Degraded {
                down,
                up,
                from,
                limit,
            } => self
                .degraded(creds, down, *up, *from, *limit)
                .map(MetaReply::Degraded),
            MetaOp::Garbage { from, limit } => {
                self.garbage(creds, *from, *limit).map(MetaReply::Garbage)
            }
            MetaOp::LeftBehind { node, from, limit } => self
                .left_on(creds, *node, *from, *limit)
                .map(MetaReply::Left),
            _ => return None,
        };
        Some(reply)
    }
}

impl App for Namespace {
    /// Answers with a postcard `Result<MetaReply, Errno>`; a command that
    /// does not decode is EINVAL.
    fn apply(&mut self, index: Index, command: &[u8]) -> Vec<u8> {
        let result = match decode_exact::<MetaRequest>(command) {
            Ok(request) => self.execute(index, &request),
            Err(_) => Err(Errno::EINVAL),
        };
        let mut out = Vec::new();
        encode_into(&result, &mut out);
        out
    }

    /// Transfers move a subtree: the request names the entry (parent ino,
    /// name) in the source and, for a rename, the new parent and name.
    fn transfer_command(transfer: &Transfer, step: Step, image: Option<&[u8]>) -> Option<Vec<u8>> {
        let r = &transfer.request;
        let id = transfer.id;
        let op = match (step, &r.kind) {
            (Step::Detach, _) => MetaOp::Detach {
                transfer: id,
                parent: Ino(r.parent),
                name: r.name.clone(),
                to: transfer.to?,
            },
            (Step::Attach, kind) => {
                let parent = match kind {
                    TransferKind::Rename {
                        new_parent,
                        new_name,
                        ..
                    } => Some((Ino(*new_parent), new_name.clone())),
                    _ => None,
                };
                let image = decode_exact::<SubtreeImage>(image?).ok()?;
                MetaOp::Attach {
                    transfer: id,
                    parent,
                    image,
                }
            }
            (Step::Unmount, TransferKind::RemoveRoot { .. }) => MetaOp::Unmount {
                parent: Ino(r.parent),
                name: r.name.clone(),
            },
            (Step::Unmount, _) => MetaOp::UnmountExport { transfer: id },
            (Step::Forget, _) => MetaOp::ForgetExport { transfer: id },
            (Step::Undo, _) => MetaOp::Reattach { transfer: id },
            (Step::Drop, _) => MetaOp::DropRoot { ino: Ino(r.ino) },
            (Step::Form, _) => return None,
        };
        let request = MetaRequest {
            op,
            creds: Credentials::root(),
            now: r.now,
        };
        Some(encode_request(&request))
    }

    /// A detach hands its image on; any error is the step's failure.
    fn transfer_outcome(_step: Step, output: &[u8]) -> Result<Vec<u8>, String> {
        match decode_reply(output) {
            Ok(Ok(MetaReply::Detached(image))) => {
                let mut out = Vec::new();
                encode_into(&image, &mut out);
                Ok(out)
            }
            Ok(Ok(_)) => Ok(Vec::new()),
            Ok(Err(errno)) => Err(errno.to_string()),
            Err(e) => Err(format!("undecodable answer: {e}")),
        }
    }

    fn query(&self, applied: Index, command: &[u8]) -> Option<Vec<u8>> {
        let request = decode_exact::<MetaRequest>(command).ok()?;
        let result = self.read(applied, &request)?;
        let mut out = Vec::new();
        encode_into(&result, &mut out);
        Some(out)
    }

    fn snapshot(&self) -> Vec<u8> {
        snapshot::encode(self)
    }

    /// A snapshot that decodes but breaks an invariant is refused as
    /// malformed ([`Namespace::restore_checked`] says why).
    fn restore(bytes: &[u8]) -> Result<Self, DecodeError> {
        snapshot::decode(bytes).map_err(|e| match e {
            RestoreError::Decode(d) => d,
            RestoreError::Version(_) | RestoreError::Corrupt(_) => {
                DecodeError::Malformed(postcard::Error::SerdeDeCustom)
            }
        })
    }

    /// Chunk placement needs the storage nodes, which only the cluster map
    /// knows: a `PlaceChunks` gets every node of the map as candidates,
    /// each its own failure domain, weighted by the free space it last
    /// reported (whatever a client put there is replaced: placement is the
    /// ministry's).
    fn prepare(&self, command: &[u8], map: &ClusterMap) -> Option<Vec<u8>> {
        // Every proposal passes here: look at the op's tag (the first
        // varint of the encoding) before decoding anything.
        let (tag, _) = postcard::take_from_bytes::<u32>(command).ok()?;
        if !placement_tags().contains(&tag) {
            return None;
        }
        let mut request = decode_exact::<MetaRequest>(command).ok()?;
        let (MetaOp::PlaceChunks { candidates, .. } | MetaOp::Replace { candidates, .. }) =
            &mut request.op
        else {
            return None;
        };
        *candidates = map
            .nodes()
            .into_iter()
            .map(|node| StorageNode {
                node,
                domain: node as u32,
                // By the free space the node last reported: a node with
                // twice the space takes twice the new chunks, a full one
                // none. One that has not reported yet counts as 1 TiB.
                free_bytes: map
                    .storage
                    .get(&node)
                    .copied()
                    .unwrap_or(UNREPORTED_FREE_BYTES),
                up: !map.down.contains(&node),
            })
            .collect();
        Some(encode_request(&request))
    }

    fn placements(&self, file: Ino, indexes: &[u64]) -> Result<(u32, Vec<ChunkPlace>), String> {
        let inode = self.inode(file).map_err(|e| format!("{file:?}: {e}"))?;
        if inode.kind != FileType::File {
            return Err(format!("{file:?} is not a regular file"));
        }
        let list = self.chunks.get(&file).map(Vec::as_slice).unwrap_or(&[]);
        let places = indexes
            .iter()
            .map(|&index| {
                list.binary_search_by_key(&index, |c| c.index)
                    .map(|i| list[i].clone())
                    .map_err(|_| format!("chunk {index} of {file:?} is not placed yet"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((inode.chunk_size, places))
    }

    fn garbage_placements(
        &self,
        file: Ino,
        indexes: &[u64],
        on: Option<NodeId>,
    ) -> Result<(u32, Vec<ChunkPlace>), String> {
        match on {
            None => Namespace::garbage_placements(self, file, indexes),
            Some(node) => self.left_placements(node, file, indexes),
        }
    }

    /// A new minister claims the inode ranges the president handed its
    /// ministry (in the cluster map). A later minister's repeat of a grant
    /// is refused (EINVAL) and harmless.
    fn on_appointed(&self, _ministry: GroupId, inode_ranges: &[(u64, u64)]) -> Vec<Vec<u8>> {
        inode_ranges
            .iter()
            .map(|&(start, count)| {
                encode_request(&MetaRequest {
                    op: MetaOp::GrantInodes { start, count },
                    creds: Credentials::root(),
                    now: 0,
                })
            })
            .collect()
    }
}

/// The encoded variant tags of the ops `prepare` fills in (from the
/// encoding itself, so reordering `MetaOp` cannot break it).
fn placement_tags() -> &'static [u32; 2] {
    static TAGS: std::sync::OnceLock<[u32; 2]> = std::sync::OnceLock::new();
    TAGS.get_or_init(|| {
        let tag = |op: MetaOp| {
            let mut out = Vec::new();
            encode_into(&op, &mut out);
            postcard::take_from_bytes::<u32>(&out)
                .map(|(t, _)| t)
                .expect("an encoded op starts with its tag")
        };
        let ino = Ino(0);
        [
            tag(MetaOp::PlaceChunks {
                ino,
                first: 0,
                count: 0,
                candidates: Vec::new(),
            }),
            tag(MetaOp::Replace {
                ino,
                index: 0,
                drop: Vec::new(),
                candidates: Vec::new(),
            }),
        ]
    })
}

/// Encodes a request as the command [`App::apply`] takes.
pub fn encode_request(request: &MetaRequest) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(request, &mut out);
    out
}

/// Decodes an answer of [`App::apply`].
pub fn decode_reply(output: &[u8]) -> Result<MetaResult<MetaReply>, DecodeError> {
    decode_exact(output)
}
