//! Which core of this node handles what, and what cores tell each other.
//!
//! Shard `i` lives on core `i % cores`; the president member lives on core 0.
//! Any core may receive any frame (peers and clients reach whichever core the
//! kernel gave their connection to), so each frame is first routed to the
//! core that owns its subject and handed over through that core's inbox.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use govfs_core::ids::{index_of, node_of, ShardIndex};
use govfs_core::node::{
    ClientReply, ClientRequest, LeaseMsg, LeaseRequest, MapUpdate, NodeMsg, PresidentView,
    ReadRequest, ServerMsg,
};
use govfs_core::president::ClusterMap;
use govfs_core::president::TransferRequest;
use govfs_core::raft::{GroupId, NodeId, PRESIDENT_GROUP};
use govfs_net::ConnId;

/// The core that hosts the president member.
pub const PRESIDENT_CORE: u32 = 0;

/// The core that hosts shard `index`.
pub fn core_of_shard(index: ShardIndex, cores: u32) -> u32 {
    index % cores
}

/// The shards core `core` hosts when each core has `per_core` of them.
pub fn shards_of_core(core: u32, cores: u32, per_core: u32) -> Vec<ShardIndex> {
    (0..per_core).map(|j| core + j * cores).collect()
}

/// The core of node `node` that handles a message from a peer node.
pub fn core_of_message(msg: &NodeMsg, map: &ClusterMap, node: NodeId, cores: u32) -> u32 {
    match msg {
        NodeMsg::Raft(m) if m.group == PRESIDENT_GROUP => PRESIDENT_CORE,
        NodeMsg::Raft(m) => core_of_shard(index_of(m.to), cores),
        NodeMsg::Step { ministry, .. } => {
            core_of_ministry(map, node, *ministry, cores).unwrap_or(PRESIDENT_CORE)
        }
        NodeMsg::Poll(_) | NodeMsg::Report(_) | NodeMsg::StepDone { .. } => PRESIDENT_CORE,
    }
}

/// The core whose shard serves `ministry` on node `node`, if one does.
pub fn core_of_ministry(
    map: &ClusterMap,
    node: NodeId,
    ministry: GroupId,
    cores: u32,
) -> Option<u32> {
    let info = map.ministries.get(&ministry)?;
    info.members
        .iter()
        .find(|m| node_of(**m) == node)
        .map(|m| core_of_shard(index_of(*m), cores))
}

/// Where a client's answer goes: the core and connection it came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    pub core: u32,
    pub conn: ConnId,
    pub request_id: u64,
}

/// What one core hands another.
#[derive(Debug)]
pub enum CoreMsg {
    /// A message from a peer (or from a shard of this node to the president member).
    Node(NodeMsg),
    /// The president's log decided something (from core 0 only, in log order).
    Map(MapUpdate),
    /// A client's change for a shard this core hosts.
    Client { req: ClientRequest, reply: ReplyTo },
    /// A client's read for a shard this core hosts.
    Read { req: ReadRequest, reply: ReplyTo },
    /// A lease message from a peer for a shard this core hosts.
    Lease(LeaseMsg),
    /// A client's lease request for a shard this core hosts.
    LeaseRequest { req: LeaseRequest, reply: ReplyTo },
    /// A client's transfer request, for the president member.
    Transfer {
        req: TransferRequest,
        reply: ReplyTo,
    },
    /// The answer to a client request another core served.
    Reply { reply: ReplyTo, msg: ServerMsg },
}

impl CoreMsg {
    pub fn client_reply(reply: ReplyTo, answer: ClientReply) -> CoreMsg {
        CoreMsg::Reply {
            reply,
            msg: ServerMsg::Reply(answer),
        }
    }
}

/// Core 0 publishes the president's leader and last contact here; the other
/// cores read it every turn. Two atomics: no lock and no wake-up.
#[derive(Debug, Default)]
pub struct SharedPresidentView {
    /// Leader id + 1 (0: none known).
    leader: AtomicU64,
    /// Micros since the node started + 1 (0: never heard).
    contact: AtomicU64,
}

impl SharedPresidentView {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn publish(&self, view: PresidentView) {
        self.leader
            .store(view.leader.map_or(0, |l| l + 1), Ordering::Release);
        self.contact
            .store(view.contact.map_or(0, |c| c + 1), Ordering::Release);
    }

    pub fn read(&self) -> PresidentView {
        let leader = self.leader.load(Ordering::Acquire);
        let contact = self.contact.load(Ordering::Acquire);
        PresidentView {
            leader: leader.checked_sub(1),
            contact: contact.checked_sub(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use govfs_core::ids::shard_id;
    use govfs_core::president::MinistryInfo;

    #[test]
    fn shards_spread_over_cores_and_back() {
        let cores = 3;
        let mut seen = Vec::new();
        for core in 0..cores {
            for s in shards_of_core(core, cores, 2) {
                assert_eq!(core_of_shard(s, cores), core);
                seen.push(s);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn ministries_route_to_the_core_of_our_member() {
        let mut map = ClusterMap::new();
        map.ministries.insert(
            9,
            MinistryInfo {
                id: 9,
                members: vec![shard_id(1, 0), shard_id(2, 3), shard_id(3, 1)],
                minister: None,
                term: 1,
                pending: None,
            },
        );
        assert_eq!(core_of_ministry(&map, 2, 9, 2), Some(1));
        assert_eq!(core_of_ministry(&map, 1, 9, 2), Some(0));
        assert_eq!(core_of_ministry(&map, 4, 9, 2), None);
        assert_eq!(core_of_ministry(&map, 1, 8, 2), None);
    }

    #[test]
    fn the_president_view_round_trips() {
        let v = SharedPresidentView::new();
        assert_eq!(v.read(), PresidentView::default());
        let view = PresidentView {
            leader: Some(0),
            contact: Some(0),
        };
        v.publish(view);
        assert_eq!(v.read(), view);
    }
}
