//! Chunk data on the storage nodes (issue 6), at the level of one chunk:
//! a write goes to every replica its grant names at once and completes when
//! all of them made it durable; a read asks one replica and gets verified
//! bytes. Every request carries this client's Lamport time and every answer
//! advances it (seed 000).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use govfs_core::data::{
    Ack, ChunkId, ChunkReply, ChunkRequest, LamportClock, SignedGrant, Stamp, WriteId,
};
use govfs_core::node::wire::encode_chunk_write;
use govfs_core::node::{ClientMsg, ServerMsg};
use govfs_core::raft::NodeId;

use crate::client::Client;
use crate::conn::Body;
use crate::error::ClientError;

/// This client's Lamport clock.
#[derive(Debug, Default)]
pub(crate) struct Lamport(Mutex<LamportClock>);

impl Lamport {
    fn send(&self) -> Stamp {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).tick()
    }

    fn receive(&self, remote: Stamp) {
        // A time too far ahead is the sender's problem; ours stays sane.
        let _ = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(remote);
    }
}

/// Room for an answer without data (an acknowledgement, a refusal) or for
/// what comes with a read's data.
const SMALL_ANSWER: usize = 4096;

/// One replica's acknowledgement of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaAck {
    pub node: NodeId,
    pub ack: Ack,
}

impl Client {
    /// This client's Lamport time.
    pub fn lamport(&self) -> Stamp {
        self.lamport_clock()
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .now()
    }

    /// Writes `data` at `offset` of the grant's chunk on every replica the
    /// grant names, all at once; `Ok` once every one of them acknowledged
    /// it durable. On an error some replicas may hold the data and others
    /// not: the caller keeps the data and writes again (to the same
    /// replicas, or to new ones under a new grant).
    pub async fn write_chunk(
        &self,
        grant: &SignedGrant,
        offset: u64,
        data: &[u8],
        write: WriteId,
    ) -> Result<Vec<ReplicaAck>, ClientError> {
        let mut acks = Vec::with_capacity(grant.grant.replicas.len());
        for (_, answer) in self
            .write_chunk_each(grant, &grant.grant.replicas, offset, data, write)
            .await
        {
            acks.push(answer?);
        }
        Ok(acks)
    }

    /// [`write_chunk`](Self::write_chunk) to `nodes` (replicas of the
    /// grant), with each one's outcome, so a caller can tell which replica
    /// failed.
    pub async fn write_chunk_each(
        &self,
        grant: &SignedGrant,
        nodes: &[NodeId],
        offset: u64,
        data: &[u8],
        write: WriteId,
    ) -> Vec<(NodeId, Result<ReplicaAck, ClientError>)> {
        let lamport = self.lamport_clock().send();
        let body = encode_chunk_write(grant, offset, data, write, lamport);
        self.change_each_body(crate::client::sized(body), nodes)
            .await
    }

    /// Cuts the grant's chunk to its first `keep` bytes on each of `nodes`
    /// (replicas of the grant): past them it reads as zeros. With each
    /// one's outcome, like [`write_chunk_each`](Self::write_chunk_each).
    pub async fn truncate_chunk_each(
        &self,
        grant: &SignedGrant,
        nodes: &[NodeId],
        keep: u64,
        write: WriteId,
    ) -> Vec<(NodeId, Result<ReplicaAck, ClientError>)> {
        let msg = ClientMsg::Chunk(ChunkRequest::Truncate {
            grant: grant.clone(),
            keep,
            write,
            lamport: self.lamport_clock().send(),
        });
        self.change_each(&msg, nodes).await
    }

    /// Delete grants for chunks `indexes` of `file`, a file that is gone,
    /// or with `on` for the copies of them left on that node, from ministry
    /// `ministry`'s minister at `addr` (it signs them only for what its
    /// namespace lists).
    pub async fn delete_grants(
        &self,
        addr: std::net::SocketAddr,
        ministry: govfs_core::raft::GroupId,
        file: govfs_core::meta::Ino,
        indexes: Vec<u64>,
        on: Option<NodeId>,
    ) -> Result<Vec<SignedGrant>, ClientError> {
        let count = indexes.len();
        let msg = ClientMsg::Lease(govfs_core::node::LeaseRequest::DeleteGrants {
            ministry,
            file,
            indexes,
            on,
        });
        match self.call(addr, &msg).await? {
            ServerMsg::Lease(govfs_core::node::LeaseReply::Grants(g)) if g.len() == count => Ok(g),
            ServerMsg::Lease(govfs_core::node::LeaseReply::Refused(refusal)) => {
                Err(ClientError::Lease { ministry, refusal })
            }
            other => Err(crate::client::unexpected(addr, other)),
        }
    }

    /// Deletes the chunk of delete grant `grant` on replica `node`; done
    /// once the removal is durable there (or the chunk was not there).
    pub async fn delete_chunk(&self, node: NodeId, grant: &SignedGrant) -> Result<(), ClientError> {
        let msg = ClientMsg::Chunk(ChunkRequest::Delete {
            grant: grant.clone(),
            lamport: self.lamport_clock().send(),
        });
        match self.chunk_call(node, &msg).await? {
            ChunkReply::Deleted { .. } => Ok(()),
            other => Err(unexpected_chunk(node, other)),
        }
    }

    /// Sends one chunk change to every node of `nodes` at once (encoded
    /// once) and collects their acknowledgements.
    async fn change_each(
        &self,
        msg: &ClientMsg,
        nodes: &[NodeId],
    ) -> Vec<(NodeId, Result<ReplicaAck, ClientError>)> {
        self.change_each_body(crate::client::encode(msg), nodes)
            .await
    }

    async fn change_each_body(
        &self,
        body: Result<Body, ClientError>,
        nodes: &[NodeId],
    ) -> Vec<(NodeId, Result<ReplicaAck, ClientError>)> {
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                let why = e.to_string();
                return nodes
                    .iter()
                    .map(|&n| (n, Err(ClientError::Encode(why.clone()))))
                    .collect();
            }
        };
        let calls = nodes
            .iter()
            .map(|&node| self.chunk_call_body(node, Arc::clone(&body), SMALL_ANSWER));
        let mut out = Vec::with_capacity(nodes.len());
        for (node, answer) in nodes.iter().zip(join_all(calls).await) {
            let r = match answer {
                Ok(ChunkReply::Written {
                    write,
                    stamp,
                    earliest_uncommitted,
                }) => Ok(ReplicaAck {
                    node: *node,
                    ack: Ack {
                        write,
                        stamp,
                        earliest_uncommitted,
                    },
                }),
                Ok(other) => Err(unexpected_chunk(*node, other)),
                Err(e) => Err(e),
            };
            out.push((*node, r));
        }
        out
    }

    /// Reads up to `len` bytes at `offset` of `chunk` (at least at
    /// `version`) from replica `node`, verified there against the block
    /// checksums. Fewer bytes past the chunk's end.
    pub async fn read_chunk(
        &self,
        node: NodeId,
        chunk: ChunkId,
        version: u64,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, ClientError> {
        let msg = ClientMsg::Chunk(ChunkRequest::Read {
            chunk,
            version,
            offset,
            len,
            lamport: self.lamport_clock().send(),
        });
        match self.chunk_call(node, &msg).await? {
            ChunkReply::Data { data, .. } => Ok(data),
            other => Err(unexpected_chunk(node, other)),
        }
    }

    async fn chunk_call(&self, node: NodeId, msg: &ClientMsg) -> Result<ChunkReply, ClientError> {
        let answer_len = match msg {
            ClientMsg::Chunk(ChunkRequest::Read { len, .. }) => SMALL_ANSWER + *len as usize,
            _ => SMALL_ANSWER,
        };
        self.chunk_call_body(node, crate::client::encode(msg)?, answer_len)
            .await
    }

    /// Sends a chunk request whose answer takes at most `answer_len` bytes
    /// encoded: over the node's RDMA data path when there is one and both
    /// fit it, over TCP otherwise.
    async fn chunk_call_body(
        &self,
        node: NodeId,
        body: Body,
        answer_len: usize,
    ) -> Result<ChunkReply, ClientError> {
        let addr = self.node_addr(node).ok_or(ClientError::UnknownNode(node))?;
        let timeout = self.options().request_timeout;
        let answer = match self.over_data_path(addr, &body, answer_len, timeout).await {
            Some(answer) => answer?,
            None => self.call_body(addr, body, timeout).await?,
        };
        match answer {
            ServerMsg::Chunk(ChunkReply::Refused(refusal)) => {
                Err(ClientError::Chunk { node, refusal })
            }
            ServerMsg::Chunk(reply) => {
                match &reply {
                    ChunkReply::Written { stamp, .. } => self.lamport_clock().receive(*stamp),
                    ChunkReply::Data { lamport, .. } | ChunkReply::Deleted { lamport } => {
                        self.lamport_clock().receive(*lamport)
                    }
                    ChunkReply::Refused(_) => {}
                }
                Ok(reply)
            }
            other => Err(crate::client::unexpected(addr, other)),
        }
    }
}

fn unexpected_chunk(node: NodeId, reply: ChunkReply) -> ClientError {
    match reply {
        ChunkReply::Refused(refusal) => ClientError::Chunk { node, refusal },
        other => ClientError::Chunk {
            node,
            refusal: govfs_core::data::ChunkRefusal::BadRequest(format!(
                "unexpected answer {other:?}"
            )),
        },
    }
}

/// Runs `futs` concurrently on this task; their outputs in order.
pub(crate) async fn join_all<F: Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
