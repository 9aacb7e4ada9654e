//! The GovFS client (blocking for now): finds the nodes of a cluster, follows
//! the president's map to a ministry's minister, and resends a change with
//! the same request id until it is answered, so a change is applied once
//! across failovers.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use govfs_core::codec::decode_exact;
use govfs_core::node::{ClientMsg, ClientReply, ClientRequest, NodeStatus, ServerMsg};
use govfs_core::president::ClusterMap;
use govfs_core::raft::{GroupId, Index, NodeId};
use govfs_net::{ClusterKey, FrameKind, Identity, Role, TcpConn, TcpError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{addr}: {source}")]
    Net { addr: SocketAddr, source: TcpError },
    #[error("{addr}: undecodable answer: {reason}")]
    BadAnswer { addr: SocketAddr, reason: String },
    #[error("{addr}: {message}")]
    Refused { addr: SocketAddr, message: String },
    #[error("no node of the cluster answered")]
    NoNode,
    #[error("ministry {ministry}: no answer within {waited:?} (request {client}/{seq} may still apply once)")]
    Timeout {
        ministry: GroupId,
        waited: Duration,
        client: u64,
        seq: u64,
    },
    #[error("cannot draw a client id: {0}")]
    Random(String),
}

pub struct Client {
    key: ClusterKey,
    addrs: Vec<SocketAddr>,
    timeout: Duration,
    id: u64,
    seq: u64,
    next_request: u64,
    conns: HashMap<SocketAddr, TcpConn>,
    /// Learned from the nodes' status: node id -> address.
    nodes: BTreeMap<NodeId, SocketAddr>,
    /// The node that answered the last successful `submit`.
    last_answer: Option<SocketAddr>,
}

impl Client {
    /// `addrs`: some or all nodes of the cluster. Learns every node's id.
    pub fn connect(
        addrs: Vec<SocketAddr>,
        key: ClusterKey,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| ClientError::Random(e.to_string()))?;
        let mut c = Client {
            key,
            addrs,
            timeout,
            id: u64::from_le_bytes(id) >> 1,
            seq: 0,
            next_request: 1,
            conns: HashMap::new(),
            nodes: BTreeMap::new(),
            last_answer: None,
        };
        c.learn_nodes();
        if c.nodes.is_empty() {
            return Err(ClientError::NoNode);
        }
        Ok(c)
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    fn learn_nodes(&mut self) {
        for addr in self.addrs.clone() {
            if let Ok(st) = self.status(addr) {
                self.nodes.insert(st.id, addr);
            }
        }
    }

    fn call(&mut self, addr: SocketAddr, msg: &ClientMsg) -> Result<ServerMsg, ClientError> {
        let body = postcard::to_stdvec(msg).expect("client messages encode");
        let request_id = self.next_request;
        self.next_request += 1;
        let result = (|| {
            if !self.conns.contains_key(&addr) {
                let local = Identity {
                    node_id: self.id,
                    role: Role::Client,
                };
                let conn = TcpConn::connect(addr, &self.key, local, self.timeout)?;
                self.conns.insert(addr, conn);
            }
            let conn = self.conns.get_mut(&addr).expect("just inserted");
            conn.send(FrameKind::Client, request_id, &body)?;
            loop {
                let frame = conn.recv()?;
                // Answers to requests we gave up on may still arrive: skip them.
                if frame.request_id == request_id {
                    return Ok(frame);
                }
            }
        })();
        let frame = result.map_err(|source| {
            self.conns.remove(&addr);
            ClientError::Net { addr, source }
        })?;
        decode_exact::<ServerMsg>(&frame.body).map_err(|e| ClientError::BadAnswer {
            addr,
            reason: e.to_string(),
        })
    }

    pub fn status(&mut self, addr: SocketAddr) -> Result<NodeStatus, ClientError> {
        match self.call(addr, &ClientMsg::Status)? {
            ServerMsg::Status(s) => Ok(s),
            other => Err(unexpected(addr, other)),
        }
    }

    /// Status of every known address, in order, with errors for the unreachable.
    pub fn status_all(&mut self) -> Vec<(SocketAddr, Result<NodeStatus, ClientError>)> {
        self.addrs
            .clone()
            .into_iter()
            .map(|a| (a, self.status(a)))
            .collect()
    }

    /// The cluster map from the first node that answers.
    pub fn map(&mut self) -> Result<ClusterMap, ClientError> {
        let mut last = ClientError::NoNode;
        for addr in self.addrs.clone() {
            match self.call(addr, &ClientMsg::Map) {
                Ok(ServerMsg::Map(m)) => return Ok(m),
                Ok(other) => last = unexpected(addr, other),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Apply `command` in `ministry` exactly once; returns where it took
    /// effect and the answer. Retries (with the same request id) on other
    /// members until `deadline` passes.
    pub fn submit(
        &mut self,
        ministry: GroupId,
        command: Vec<u8>,
        deadline: Duration,
    ) -> Result<(Index, Vec<u8>), ClientError> {
        self.seq += 1;
        let req = ClientRequest {
            ministry,
            client: self.id,
            seq: self.seq,
            command,
        };
        let start = Instant::now();
        let mut target = self.minister_addr(ministry);
        let mut attempt = 0u64;
        while start.elapsed() < deadline {
            attempt += 1;
            let addr = target
                .take()
                .unwrap_or_else(|| self.addrs[(attempt as usize) % self.addrs.len()]);
            match self.call(addr, &ClientMsg::Request(req.clone())) {
                Ok(ServerMsg::Reply(ClientReply::Done { index, output, .. })) => {
                    self.last_answer = Some(addr);
                    return Ok((index, output));
                }
                Ok(ServerMsg::Reply(ClientReply::NotLeader { hint, members, .. })) => {
                    target = hint
                        .or_else(|| {
                            members
                                .get(attempt as usize % members.len().max(1))
                                .copied()
                        })
                        .and_then(|n| self.nodes.get(&n).copied());
                    if hint.is_none() {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                Ok(_) | Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        Err(ClientError::Timeout {
            ministry,
            waited: deadline,
            client: req.client,
            seq: req.seq,
        })
    }

    /// The node that answered the last successful [`Client::submit`].
    pub fn last_answer_from(&self) -> Option<SocketAddr> {
        self.last_answer
    }

    /// The address of a node, as learned when connecting.
    pub fn node_addr(&self, node: NodeId) -> Option<SocketAddr> {
        self.nodes.get(&node).copied()
    }

    fn minister_addr(&mut self, ministry: GroupId) -> Option<SocketAddr> {
        let m = self.map().ok()?;
        let minister = m.ministries.get(&ministry)?.minister?;
        self.nodes.get(&minister).copied()
    }
}

fn unexpected(addr: SocketAddr, msg: ServerMsg) -> ClientError {
    match msg {
        ServerMsg::Error(message) => ClientError::Refused { addr, message },
        other => ClientError::BadAnswer {
            addr,
            reason: format!("unexpected answer {other:?}"),
        },
    }
}
