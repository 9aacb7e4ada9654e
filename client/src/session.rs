//! [`Session`]: one client id and its request sequence, for changes applied
//! exactly once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use govfs_core::node::{ClientMsg, ClientReply, ClientRequest, ReadReply, ReadRequest, ServerMsg};
use govfs_core::raft::{GroupId, Index, Term};
use tokio::time::Instant;

use crate::client::Client;
use crate::error::ClientError;

/// Pause before the next attempt when a node could not help and named no
/// one who could.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// A client id of its own and the sequence of its requests. The cluster
/// keeps the last request id and answer per client id, so a session holds
/// at most one request at a time (`submit` takes `&mut self`) and resends
/// it with the same id until it is answered. Sessions of one [`Client`]
/// share its connections; give each concurrent task its own session.
#[derive(Debug)]
pub struct Session {
    client: Client,
    id: u64,
    /// The last request id used (in any ministry).
    seq: u64,
    /// Request ids per ministry: each ministry's session table numbers this
    /// session's requests 1, 2, ... on its own.
    seqs: BTreeMap<GroupId, u64>,
    last_answer: Option<SocketAddr>,
    /// Per ministry, the highest log index this session has seen take
    /// effect (its writes) or answer (its reads): reads wait for it.
    seen: BTreeMap<GroupId, Index>,
}

impl Session {
    pub(crate) fn new(client: Client, id: u64) -> Session {
        Session {
            client,
            id,
            seq: 0,
            seqs: BTreeMap::new(),
            last_answer: None,
            seen: BTreeMap::new(),
        }
    }

    /// The session's client id, as the cluster's session tables know it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The id of the last request submitted, in its ministry (0 before the first).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The node that answered the last successful [`submit`](Self::submit).
    pub fn last_answer_from(&self) -> Option<SocketAddr> {
        self.last_answer
    }

    /// Applies `command` in `ministry` exactly once; returns the log index
    /// where it took effect and the ministry's answer.
    ///
    /// Goes to the ministry's minister (the last node that answered for
    /// it, else the cluster map's), follows `NotLeader` hints, and after a
    /// failure or a silent node (one request timeout) resends the **same**
    /// request to another member, until it is answered or `deadline`
    /// passes: then [`ClientError::Timeout`] names the request, which may
    /// still apply (once). Dropping the future gives up the same way: the
    /// next `submit` uses the next request id.
    pub async fn submit(
        &mut self,
        ministry: GroupId,
        command: Vec<u8>,
        deadline: Duration,
    ) -> Result<(Index, Vec<u8>), ClientError> {
        self.submit_at(ministry, None, command, deadline).await
    }

    /// [`submit`](Self::submit), naming the ministry's term the caller acts
    /// on (say, the term a lease was granted in): if the ministry has moved
    /// to a later term, nothing is applied and the answer is
    /// [`ClientError::StaleTerm`] with the current term.
    pub async fn submit_at(
        &mut self,
        ministry: GroupId,
        term: Option<Term>,
        command: Vec<u8>,
        deadline: Duration,
    ) -> Result<(Index, Vec<u8>), ClientError> {
        let next = self.seqs.entry(ministry).or_insert(0);
        *next += 1;
        let seq = *next;
        self.seq = seq;
        let msg = ClientMsg::Request(ClientRequest {
            ministry,
            client: self.id,
            seq,
            command,
            term,
        });
        let client = self.client.clone();
        let addrs = client.addrs();
        let end = Instant::now() + deadline;
        let mut target = tokio::time::timeout_at(end, client.minister_addr(ministry))
            .await
            .ok()
            .flatten();
        let mut attempt = 0usize;
        while Instant::now() < end && !addrs.is_empty() {
            attempt += 1;
            let addr = target.take().unwrap_or(addrs[attempt % addrs.len()]);
            let wait = client
                .options()
                .request_timeout
                .min(end.saturating_duration_since(Instant::now()));
            let mut pause = true;
            match client.call_within(addr, &msg, wait).await {
                Ok(ServerMsg::Reply(ClientReply::Done {
                    seq: s,
                    index,
                    output,
                })) if s == seq => {
                    self.last_answer = Some(addr);
                    client.set_leader(ministry, Some(addr));
                    self.saw(ministry, index);
                    return Ok((index, output));
                }
                Ok(ServerMsg::Reply(ClientReply::StaleTerm { seq: s, term })) if s == seq => {
                    return Err(ClientError::StaleTerm { ministry, term });
                }
                Ok(ServerMsg::Reply(ClientReply::UnknownSession { seq: s })) if s == seq => {
                    return Err(ClientError::UnknownSession {
                        ministry,
                        client: self.id,
                        seq,
                    });
                }
                Ok(ServerMsg::Reply(ClientReply::NotLeader { hint, members, .. })) => {
                    client.forget_leader(ministry, addr);
                    target = hint
                        .or_else(|| members.get(attempt % members.len().max(1)).copied())
                        .and_then(|n| client.node_addr(n));
                    pause = hint.is_none();
                }
                // An error, a refusal ("no answer in time"), a silent node:
                // try another member with the same request.
                Ok(_) | Err(_) => client.forget_leader(ministry, addr),
            }
            if pause {
                tokio::time::sleep_until((Instant::now() + RETRY_PAUSE).min(end)).await;
            }
        }
        Err(ClientError::Timeout {
            ministry,
            waited: deadline,
            client: self.id,
            seq,
        })
    }

    /// The highest index this session has seen in `ministry`.
    pub fn seen(&self, ministry: GroupId) -> Index {
        self.seen.get(&ministry).copied().unwrap_or(0)
    }

    /// Raise the highest index this session has seen in `ministry`: for a
    /// session that acts on what another one saw (a file another session
    /// created, say), so that its requests wait for that index.
    pub fn saw_index(&mut self, ministry: GroupId, index: Index) {
        self.saw(ministry, index);
    }

    fn saw(&mut self, ministry: GroupId, index: Index) {
        let e = self.seen.entry(ministry).or_default();
        *e = (*e).max(index);
    }

    /// Answers the read-only `query` from any serving member of `ministry`
    /// (minister or clerk), without the log, with **session consistency**:
    /// the answer reflects at least every change this session saw take
    /// effect there and every earlier read's state, so a session reads its
    /// own writes and never goes back in time. Reads are spread over the
    /// members. For a linearizable read, [`submit`](Self::submit) the query
    /// instead: it is then ordered in the ministry's log like a change.
    /// Returns the applied index the answer reflects.
    pub async fn read(
        &mut self,
        ministry: GroupId,
        query: Vec<u8>,
        deadline: Duration,
    ) -> Result<(Index, Vec<u8>), ClientError> {
        let client = self.client.clone();
        let end = Instant::now() + deadline;
        let msg = ClientMsg::Read(ReadRequest {
            ministry,
            min_index: self.seen(ministry),
            query,
        });
        let mut members = client.member_addrs(ministry, false).await;
        let mut target: Option<SocketAddr> = None;
        // Start at a member of our own, so sessions spread the load.
        let mut attempt = self.id as usize;
        while Instant::now() < end {
            if members.is_empty() {
                members = client.member_addrs(ministry, true).await;
                if members.is_empty() {
                    members = client.addrs().to_vec();
                }
            }
            attempt = attempt.wrapping_add(1);
            let addr = target.take().unwrap_or(members[attempt % members.len()]);
            let wait = client
                .options()
                .request_timeout
                .min(end.saturating_duration_since(Instant::now()));
            match client.call_within(addr, &msg, wait).await {
                Ok(ServerMsg::Read(ReadReply::Done { index, output })) => {
                    self.saw(ministry, index);
                    return Ok((index, output));
                }
                Ok(ServerMsg::Read(ReadReply::NotARead)) => {
                    return Err(ClientError::NotARead { ministry });
                }
                Ok(ServerMsg::Read(ReadReply::Elsewhere { hint, .. })) => {
                    // The map may be stale (a member moved): learn it again.
                    members = client.member_addrs(ministry, true).await;
                    target = hint
                        .and_then(|n| client.node_addr(n))
                        .filter(|a| *a != addr);
                    if target.is_none() {
                        tokio::time::sleep_until((Instant::now() + RETRY_PAUSE).min(end)).await;
                    }
                }
                Ok(_) | Err(_) => {
                    tokio::time::sleep_until((Instant::now() + RETRY_PAUSE).min(end)).await;
                }
            }
        }
        Err(ClientError::ReadTimeout {
            ministry,
            waited: deadline,
        })
    }
}
