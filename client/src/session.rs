//! [`Session`]: one client id and its request sequence, for changes applied
//! exactly once.

use std::net::SocketAddr;
use std::time::Duration;

use govfs_core::node::{ClientMsg, ClientReply, ClientRequest, ServerMsg};
use govfs_core::raft::{GroupId, Index};
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
    seq: u64,
    last_answer: Option<SocketAddr>,
}

impl Session {
    pub(crate) fn new(client: Client, id: u64) -> Session {
        Session {
            client,
            id,
            seq: 0,
            last_answer: None,
        }
    }

    /// The session's client id, as the cluster's session tables know it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The id of the last request submitted (0 before the first).
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
        self.seq += 1;
        let seq = self.seq;
        let msg = ClientMsg::Request(ClientRequest {
            ministry,
            client: self.id,
            seq,
            command,
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
                    return Ok((index, output));
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
}
