//! [`Client`]: the shared handle (connections, what it learned about the
//! cluster) and the calls that need no session.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use govfs_core::codec::decode_exact;
use govfs_core::node::{ClientMsg, NodeStatus, ServerMsg, TransferReply};
use govfs_core::president::{ClusterMap, TransferRequest};
use govfs_core::raft::{GroupId, NodeId};
use govfs_net::{ClusterKey, Identity, Role, DEFAULT_MAX_BODY_LEN};
use tokio::task::JoinSet;

use crate::conn::{Body, ConnSettings, NodeConns};
use crate::error::ClientError;
use crate::session::Session;

/// How a [`Client`] connects and how long it waits.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Bounds the TCP connect plus the handshake of one connection.
    pub connect_timeout: Duration,
    /// How long one attempt (one request to one node) waits for its answer,
    /// including the wait for a free in-flight slot and for the dial. A
    /// [`Session::submit`] resends to another node after it.
    pub request_timeout: Duration,
    /// Most requests in flight on one connection; more wait for a slot.
    pub max_in_flight: usize,
    /// Connections per node address (requests go round-robin over them).
    /// One is enough for a node that answers out of order; a node that
    /// answers one request at a time per connection serves more in
    /// parallel over more connections.
    pub connections_per_node: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            max_in_flight: 256,
            connections_per_node: 1,
        }
    }
}

impl ClientOptions {
    /// Defaults, with both the connect and the request timeout set to `t`.
    pub fn with_timeout(t: Duration) -> Self {
        ClientOptions {
            connect_timeout: t,
            request_timeout: t,
            ..ClientOptions::default()
        }
    }

    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    pub fn connections_per_node(mut self, n: usize) -> Self {
        self.connections_per_node = n.max(1);
        self
    }
}

/// A handle to a cluster. Cheap to clone; every clone shares the same
/// connections and what was learned about the nodes. See the crate
/// documentation.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    addrs: Vec<SocketAddr>,
    options: ClientOptions,
    settings: ConnSettings,
    conns: Mutex<HashMap<SocketAddr, Arc<NodeConns>>>,
    next_request: AtomicU64,
    /// Random base of the session ids this client hands out.
    session_base: u64,
    sessions: AtomicU64,
    /// Learned from the nodes' status: node id -> address.
    nodes: Mutex<BTreeMap<NodeId, SocketAddr>>,
    /// The node that last answered a submission for a ministry.
    leaders: Mutex<HashMap<GroupId, SocketAddr>>,
    /// Members' addresses per ministry, for reads (spread over them).
    members: Mutex<HashMap<GroupId, Vec<SocketAddr>>>,
    lamport: crate::chunks::Lamport,
    data_paths: crate::data_path::DataPaths,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addrs", &self.inner.addrs)
            .field("nodes", &*lock(&self.inner.nodes))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `addrs`: some or all nodes of the cluster. Asks each for its status
    /// (all at once) to learn the node ids; fails with
    /// [`ClientError::NoNode`] if none answers. Must run inside a tokio
    /// runtime: connections are driven by tasks spawned on it.
    pub async fn connect(
        addrs: Vec<SocketAddr>,
        key: ClusterKey,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| ClientError::Random(e.to_string()))?;
        let [a, b] = [&id[..8], &id[8..]].map(|h| {
            let mut w = [0u8; 8];
            w.copy_from_slice(h);
            u64::from_le_bytes(w)
        });
        let settings = ConnSettings {
            key,
            local: Identity {
                node_id: a >> 1,
                role: Role::Client,
            },
            connect_timeout: options.connect_timeout,
            max_in_flight: options.max_in_flight.max(1),
            connections: options.connections_per_node.max(1),
        };
        let client = Client {
            inner: Arc::new(Inner {
                addrs,
                options,
                settings,
                conns: Mutex::new(HashMap::new()),
                next_request: AtomicU64::new(1),
                session_base: b,
                sessions: AtomicU64::new(0),
                nodes: Mutex::new(BTreeMap::new()),
                leaders: Mutex::new(HashMap::new()),
                members: Mutex::new(HashMap::new()),
                lamport: Default::default(),
                data_paths: Default::default(),
            }),
        };
        let mut last = None;
        for (addr, r) in client.status_all().await {
            match r {
                Ok(st) => {
                    lock(&client.inner.nodes).insert(st.id, addr);
                }
                Err(e) => last = Some(Box::new(e)),
            }
        }
        if lock(&client.inner.nodes).is_empty() {
            return Err(ClientError::NoNode { last });
        }
        Ok(client)
    }

    pub(crate) fn lamport_clock(&self) -> &crate::chunks::Lamport {
        &self.inner.lamport
    }

    pub(crate) fn data_paths(&self) -> &crate::data_path::DataPaths {
        &self.inner.data_paths
    }

    /// The cluster key and who this client is, for connections of its own.
    pub(crate) fn identity(&self) -> (govfs_net::ClusterKey, govfs_net::Identity) {
        (self.inner.settings.key.clone(), self.inner.settings.local)
    }

    /// The addresses given to [`connect`](Self::connect).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.inner.addrs
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// A new session with its own random client id, for
    /// [`Session::submit`]. Sessions are cheap; each holds one request at a
    /// time. Every session id the cluster has seen stays in each ministry's
    /// session table, so keep a session for as long as its task lives
    /// rather than making one per request.
    pub fn session(&self) -> Session {
        let n = self.inner.sessions.fetch_add(1, Ordering::Relaxed);
        // A bijection of base + n: distinct for this client's sessions,
        // random across clients. The top bit stays clear (as before).
        let id = splitmix64(self.inner.session_base.wrapping_add(n)) >> 1;
        Session::new(self.clone(), id)
    }

    /// The address of a node, as learned when connecting.
    /// `node` may also be a shard's id (as hints and the map name
    /// ministers): a shard is reached at its node's address.
    pub fn node_addr(&self, node: NodeId) -> Option<SocketAddr> {
        lock(&self.inner.nodes)
            .get(&govfs_core::ids::node_of(node))
            .copied()
    }

    /// One node's status.
    pub async fn status(&self, addr: SocketAddr) -> Result<NodeStatus, ClientError> {
        match self.call(addr, &ClientMsg::Status).await? {
            ServerMsg::Status(s) => Ok(s),
            other => Err(unexpected(addr, other)),
        }
    }

    /// Status of every address given to [`connect`](Self::connect), asked
    /// all at once, in the order given, with errors for the unreachable.
    pub async fn status_all(&self) -> Vec<(SocketAddr, Result<NodeStatus, ClientError>)> {
        let mut set = JoinSet::new();
        for (i, &addr) in self.inner.addrs.iter().enumerate() {
            let c = self.clone();
            set.spawn(async move { (i, c.status(addr).await) });
        }
        let mut rows: Vec<Option<Result<NodeStatus, ClientError>>> =
            (0..self.inner.addrs.len()).map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            // A status task cannot panic short of a bug; its row stays empty.
            if let Ok((i, r)) = joined {
                rows[i] = Some(r);
            }
        }
        self.inner
            .addrs
            .iter()
            .zip(rows)
            .map(|(&addr, r)| {
                let r = r.unwrap_or_else(|| {
                    Err(ClientError::Refused {
                        addr,
                        message: "status task failed".into(),
                    })
                });
                (addr, r)
            })
            .collect()
    }

    /// The cluster map from the first node (in the order given) that answers.
    pub async fn map(&self) -> Result<ClusterMap, ClientError> {
        let mut last = None;
        for &addr in &self.inner.addrs {
            match self.call(addr, &ClientMsg::Map).await {
                Ok(ServerMsg::Map(m)) => return Ok(m),
                Ok(other) => last = Some(Box::new(unexpected(addr, other))),
                Err(e) => last = Some(Box::new(e)),
            }
        }
        Err(ClientError::NoNode { last })
    }

    /// Asks the president to move part of the namespace between ministries
    /// (see `govfs_core::president::transfer`) and waits until the cluster
    /// map shows it finished: `Ok(None)` when it succeeded, `Ok(Some(why))`
    /// when a step failed (and was undone). Sending the same request again
    /// while it runs is refused by the map, so a resend after a lost answer
    /// cannot start it twice.
    pub async fn transfer(
        &self,
        request: TransferRequest,
        deadline: Duration,
    ) -> Result<Option<String>, ClientError> {
        let end = Instant::now() + deadline;
        let addrs = self.addrs().to_vec();
        let mut target: Option<SocketAddr> = None;
        let mut attempt = 0usize;
        let mut proposed = false;
        while Instant::now() < end && !addrs.is_empty() {
            if let Ok(map) = self.map().await {
                let t = &map.transfers;
                if let Some(f) = t.finished.values().find(|f| f.request == request) {
                    return Ok(f.failure.clone());
                }
                if t.active.values().any(|a| a.request == request) {
                    proposed = true;
                }
            }
            if !proposed {
                attempt += 1;
                let addr = target.take().unwrap_or(addrs[attempt % addrs.len()]);
                let msg = ClientMsg::Transfer(request.clone());
                if let Ok(ServerMsg::Transfer(TransferReply::NotPresident { hint })) =
                    self.call(addr, &msg).await
                {
                    target = hint.and_then(|n| self.node_addr(n));
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ClientError::TransferTimeout { waited: deadline })
    }

    /// Sends one message to `addr` and waits up to the request timeout for
    /// the answer. No resends: [`Session::submit`] does those.
    pub async fn call(&self, addr: SocketAddr, msg: &ClientMsg) -> Result<ServerMsg, ClientError> {
        self.call_within(addr, msg, self.inner.options.request_timeout)
            .await
    }

    pub(crate) async fn call_within(
        &self,
        addr: SocketAddr,
        msg: &ClientMsg,
        timeout: Duration,
    ) -> Result<ServerMsg, ClientError> {
        let body = encode(msg)?;
        self.call_body(addr, body, timeout).await
    }

    /// [`call`](Self::call) with a body [`encode`]d already.
    pub(crate) async fn call_body(
        &self,
        addr: SocketAddr,
        body: Body,
        timeout: Duration,
    ) -> Result<ServerMsg, ClientError> {
        let request_id = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        let node = self.node_conns(addr);
        let frame = node
            .call(&self.inner.settings, request_id, body, timeout)
            .await
            .map_err(|source| ClientError::Net { addr, source })?;
        decode_exact::<ServerMsg>(&frame.body).map_err(|e| ClientError::BadAnswer {
            addr,
            reason: e.to_string(),
        })
    }

    fn node_conns(&self, addr: SocketAddr) -> Arc<NodeConns> {
        let mut conns = lock(&self.inner.conns);
        Arc::clone(
            conns
                .entry(addr)
                .or_insert_with(|| Arc::new(NodeConns::new(addr, &self.inner.settings))),
        )
    }

    /// Where submissions for `ministry` went last, else its minister in the
    /// cluster map.
    pub(crate) async fn minister_addr(&self, ministry: GroupId) -> Option<SocketAddr> {
        if let Some(addr) = lock(&self.inner.leaders).get(&ministry).copied() {
            return Some(addr);
        }
        let m = self.map().await.ok()?;
        let minister = m.ministries.get(&ministry)?.minister?;
        self.node_addr(minister)
    }

    /// The addresses of `ministry`'s members, from the cluster map (asked
    /// again when `refresh`).
    pub(crate) async fn member_addrs(&self, ministry: GroupId, refresh: bool) -> Vec<SocketAddr> {
        if !refresh {
            if let Some(addrs) = lock(&self.inner.members).get(&ministry) {
                return addrs.clone();
            }
        }
        let Ok(m) = self.map().await else {
            return Vec::new();
        };
        let addrs: Vec<SocketAddr> = m
            .ministries
            .get(&ministry)
            .map(|i| {
                i.members
                    .iter()
                    .filter_map(|s| self.node_addr(*s))
                    .collect()
            })
            .unwrap_or_default();
        lock(&self.inner.members).insert(ministry, addrs.clone());
        addrs
    }

    pub(crate) fn set_leader(&self, ministry: GroupId, addr: Option<SocketAddr>) {
        let mut leaders = lock(&self.inner.leaders);
        match addr {
            Some(a) => {
                leaders.insert(ministry, a);
            }
            None => {
                leaders.remove(&ministry);
            }
        }
    }

    /// Forgets `addr` as the leader of `ministry` (if it was).
    pub(crate) fn forget_leader(&self, ministry: GroupId, addr: SocketAddr) {
        let mut leaders = lock(&self.inner.leaders);
        if leaders.get(&ministry) == Some(&addr) {
            leaders.remove(&ministry);
        }
    }
}

/// A message as a request body, refused here if no node would take it.
pub(crate) fn encode(msg: &ClientMsg) -> Result<Body, ClientError> {
    sized(govfs_core::codec::encode_sized(msg))
}

/// An encoded request as a body, refused here if no node would take it.
pub(crate) fn sized(body: Vec<u8>) -> Result<Body, ClientError> {
    if body.len() > DEFAULT_MAX_BODY_LEN as usize {
        return Err(ClientError::TooLarge {
            len: body.len(),
            max: DEFAULT_MAX_BODY_LEN,
        });
    }
    Ok(crate::conn::BodyBytes::new(body))
}

pub(crate) fn unexpected(addr: SocketAddr, msg: ServerMsg) -> ClientError {
    match msg {
        ServerMsg::Error(message) => ClientError::Refused { addr, message },
        other => ClientError::BadAnswer {
            addr,
            reason: format!("unexpected answer {other:?}"),
        },
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
