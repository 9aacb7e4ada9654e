//! One shard of a node: idle, or a member of a ministry with its Raft, the
//! ministry's application state and the client sessions.

use std::collections::{BTreeMap, BTreeSet};

use super::app::App;
use super::leases::ShardLeases;
use super::session::Sessions;
use crate::codec::{decode_exact, DecodeError};
use crate::ids::ShardIndex;
use crate::president::Step;
use crate::raft::{NodeId, Raft};

/// The shard's snapshot: sessions travel with the application state.
#[derive(serde::Serialize, serde::Deserialize)]
struct ShardSnapshot {
    sessions: Sessions,
    app: Vec<u8>,
}

/// A shard's membership of one ministry.
pub(super) struct Member<A> {
    pub raft: Raft,
    pub app: A,
    pub sessions: Sessions,
    pub since_snapshot: u64,
}

impl<A: App> Member<A> {
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        let s = ShardSnapshot {
            sessions: self.sessions.clone(),
            app: self.app.snapshot(),
        };
        postcard::to_stdvec(&s).expect("snapshots encode")
    }

    pub fn restore(bytes: &[u8]) -> Result<(Sessions, A), DecodeError> {
        let s: ShardSnapshot = decode_exact(bytes)?;
        Ok((s.sessions, A::restore(&s.app)?))
    }
}

/// A shard slot: always present on its node, a member of at most one ministry.
pub(super) struct Slot<A> {
    pub index: ShardIndex,
    /// The shard's id in ministries, reports and the map.
    pub id: NodeId,
    pub member: Option<Member<A>>,
    /// The shard's term while it is idle (terms are cluster-wide and only grow).
    pub idle_term: u64,
    /// Bumped whenever the Raft is replaced, so old syncs never reach a new one.
    pub generation: u64,
    /// Client requests this minister proposed and owes an answer: (client, seq).
    pub waiting: BTreeSet<(u64, u64)>,
    /// Reads waiting until the shard has applied their `min_index`.
    pub parked: Vec<ParkedRead>,
    /// Transfer steps this minister proposed: (client, seq) -> (transfer, step).
    pub steps: BTreeMap<(u64, u64), (u64, Step)>,
    /// The lease core of the shard's role (when the node runs leases).
    pub leases: ShardLeases,
}

/// A read that arrived before the shard applied what it must see.
pub(super) struct ParkedRead {
    pub token: u64,
    pub min_index: u64,
    pub query: Vec<u8>,
    /// Past this, answer `Elsewhere` rather than keep the client waiting.
    pub until: u64,
}

impl<A> Slot<A> {
    /// The shard's term, whether or not it serves a ministry.
    pub fn term(&self) -> u64 {
        self.member
            .as_ref()
            .map_or(self.idle_term, |m| m.raft.term())
    }

    pub fn group(&self) -> Option<u64> {
        self.member.as_ref().map(|m| m.raft.group())
    }
}
