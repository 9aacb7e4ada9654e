//! The cluster map: the state machine of the president group's log.
//!
//! Every node follows this log (as voter or learner) and reacts to the orders
//! it applies: a shard polled at a term answers, an appointed shard leads, a
//! shard added to a ministry starts that ministry's log afresh. Terms for
//! appointments come from `next_term`, one counter for the whole cluster.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::transfer::{Step, TransferRequest, Transfers};
use crate::ids::node_of;
use crate::raft::{GroupId, NodeId, Term};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Order {
    /// A shard exists and may be appointed.
    RegisterShard { shard: NodeId },
    /// Draw a fresh term and poll the ministry's current members at it;
    /// `members` is the membership the appointment will have (one change at most).
    /// `ministry: None` forms a new ministry.
    BeginAppointment {
        ministry: Option<GroupId>,
        members: Vec<NodeId>,
    },
    /// Make `minister` lead `ministry` at `term` (the pending appointment's term).
    Appoint {
        ministry: GroupId,
        term: Term,
        minister: NodeId,
        members: Vec<NodeId>,
    },
    /// Start moving part of the namespace (see [`super::transfer`]).
    BeginTransfer { request: TransferRequest },
    /// Form the new ministry a split transfer moves its subtree to.
    FormForTransfer { transfer: u64, members: Vec<NodeId> },
    /// A transfer's step finished (`failure`: it failed).
    Advance {
        transfer: u64,
        done: Step,
        failure: Option<String>,
    },
    /// Node `node`'s storage can take `free_bytes` more of chunks.
    StorageSpace { node: NodeId, free_bytes: u64 },
    /// Node `node` stopped reporting (`down`) or reports again: placement
    /// skips down nodes and ministers move chunks off them.
    NodeState { node: NodeId, down: bool },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAppointment {
    pub term: Term,
    /// Members asked for their log tails: the membership in force when drawn.
    pub poll_set: Vec<NodeId>,
    /// Membership after the appointment.
    pub members: Vec<NodeId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinistryInfo {
    pub id: GroupId,
    /// Sorted.
    pub members: Vec<NodeId>,
    pub minister: Option<NodeId>,
    /// Term of the current appointment (0 before the first).
    pub term: Term,
    pub pending: Option<PendingAppointment>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMap {
    /// The next appointment term; strictly increasing, never reused.
    pub next_term: Term,
    pub next_ministry: GroupId,
    pub shards: BTreeSet<NodeId>,
    pub ministries: BTreeMap<GroupId, MinistryInfo>,
    /// Parts of the namespace moving between ministries, and split subtrees.
    pub transfers: Transfers,
    /// Inode numbers: the next range to hand out, and each ministry's ranges.
    pub next_inode: u64,
    pub inode_ranges: BTreeMap<GroupId, Vec<(u64, u64)>>,
    /// Bytes each node's storage can still take for chunks, as it last
    /// reported (coarsely: the president writes a new figure only when it
    /// moved a lot, see `driver::space_changed`). Placement weighs nodes by
    /// it; a node not listed has not reported yet.
    pub storage: BTreeMap<NodeId, u64>,
    /// Nodes none of whose shards the president heard from within the
    /// failure timeout, as it last judged.
    pub down: BTreeSet<NodeId>,
}

/// Inode numbers a ministry gets at once (2^40: it never needs a second).
pub const INODE_RANGE: u64 = 1 << 40;

/// What applying an order changed, for the nodes to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    Nothing,
    /// Poll `poll_set` at `term`.
    Poll {
        ministry: GroupId,
        term: Term,
        poll_set: Vec<NodeId>,
    },
    /// `minister` leads `members` at `term`; shards in `removed` leave the ministry.
    Appointed {
        ministry: GroupId,
        term: Term,
        minister: NodeId,
        members: Vec<NodeId>,
        removed: Vec<NodeId>,
    },
    /// The order was stale or invalid and changed nothing.
    Rejected(&'static str),
}

fn sorted(mut v: Vec<NodeId>) -> Vec<NodeId> {
    v.sort_unstable();
    v.dedup();
    v
}

/// At most one member added or removed: every old majority overlaps every new one.
fn single_change(old: &[NodeId], new: &[NodeId]) -> bool {
    let added = new.iter().filter(|n| !old.contains(n)).count();
    let removed = old.iter().filter(|o| !new.contains(o)).count();
    added + removed <= 1
}

impl Default for ClusterMap {
    /// Terms and ministry ids start at 1: 0 means "none yet".
    fn default() -> Self {
        ClusterMap {
            next_term: 1,
            next_ministry: 1,
            shards: BTreeSet::new(),
            ministries: BTreeMap::new(),
            transfers: Transfers::default(),
            // 0 and the low numbers stay free for well-known inodes (the root).
            next_inode: INODE_RANGE,
            inode_ranges: BTreeMap::new(),
            storage: BTreeMap::new(),
            down: BTreeSet::new(),
        }
    }
}

impl ClusterMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn apply(&mut self, order: &Order) -> Applied {
        match order {
            Order::RegisterShard { shard } => {
                self.shards.insert(*shard);
                Applied::Nothing
            }
            Order::StorageSpace { node, free_bytes } => {
                self.storage.insert(*node, *free_bytes);
                Applied::Nothing
            }
            Order::NodeState { node, down } => {
                if !self.shards.iter().any(|s| node_of(*s) == *node) {
                    return Applied::Rejected("no shard of that node is registered");
                }
                if *down {
                    self.down.insert(*node);
                } else {
                    self.down.remove(node);
                }
                Applied::Nothing
            }
            Order::BeginAppointment { ministry, members } => {
                self.begin(*ministry, sorted(members.clone()))
            }
            Order::Appoint {
                ministry,
                term,
                minister,
                members,
            } => self.appoint(*ministry, *term, *minister, sorted(members.clone())),
            Order::BeginTransfer { request } => {
                if !self.ministries.contains_key(&request.from) {
                    return Applied::Rejected("no such source ministry");
                }
                match self.transfers.begin(request.clone()) {
                    Ok(_) => Applied::Nothing,
                    Err(why) => Applied::Rejected(why),
                }
            }
            Order::FormForTransfer { transfer, members } => {
                let forming = self
                    .transfers
                    .active
                    .get(transfer)
                    .is_some_and(|t| t.step == Step::Form && t.to.is_none());
                if !forming {
                    return Applied::Rejected("no transfer waiting for a ministry");
                }
                let applied = self.begin(None, sorted(members.clone()));
                if let Applied::Poll { ministry, .. } = &applied {
                    let t = self.transfers.active.get_mut(transfer).expect("checked");
                    t.to = Some(*ministry);
                }
                applied
            }
            Order::Advance {
                transfer,
                done,
                failure,
            } => match self.transfers.advance(*transfer, *done, failure.clone()) {
                Ok(_) => Applied::Nothing,
                Err(why) => Applied::Rejected(why),
            },
        }
    }

    fn begin(&mut self, ministry: Option<GroupId>, members: Vec<NodeId>) -> Applied {
        if members.is_empty() || members.iter().any(|m| !self.shards.contains(m)) {
            return Applied::Rejected("members must be registered shards");
        }
        let mut nodes: Vec<NodeId> = members.iter().map(|m| node_of(*m)).collect();
        nodes.sort_unstable();
        nodes.dedup();
        if nodes.len() != members.len() {
            // Two members on one node would fail together.
            return Applied::Rejected("members must be on distinct nodes");
        }
        let id = match ministry {
            Some(id) => {
                let Some(info) = self.ministries.get(&id) else {
                    return Applied::Rejected("no such ministry");
                };
                if !single_change(&info.members, &members) {
                    return Applied::Rejected("one member added or removed at a time");
                }
                id
            }
            None => {
                if members.iter().any(|m| self.ministry_of(*m).is_some()) {
                    return Applied::Rejected("a new ministry takes idle shards only");
                }
                let id = self.next_ministry;
                self.next_ministry += 1;
                // Every ministry numbers inodes from ranges only the
                // president hands out, from one counter: never two owners.
                let range = (self.next_inode, INODE_RANGE);
                self.next_inode += INODE_RANGE;
                self.inode_ranges.insert(id, vec![range]);
                let info = MinistryInfo {
                    id,
                    members: Vec::new(),
                    minister: None,
                    term: 0,
                    pending: None,
                };
                self.ministries.insert(id, info);
                id
            }
        };
        if members
            .iter()
            .any(|m| self.ministry_of(*m).is_some_and(|g| g != id))
        {
            return Applied::Rejected("a shard serves one ministry at a time");
        }
        let term = self.next_term;
        self.next_term += 1;
        let info = self.ministries.get_mut(&id).expect("ministry exists");
        let poll_set = info.members.clone();
        info.pending = Some(PendingAppointment {
            term,
            poll_set: poll_set.clone(),
            members,
        });
        Applied::Poll {
            ministry: id,
            term,
            poll_set,
        }
    }

    fn appoint(
        &mut self,
        ministry: GroupId,
        term: Term,
        minister: NodeId,
        members: Vec<NodeId>,
    ) -> Applied {
        let Some(info) = self.ministries.get_mut(&ministry) else {
            return Applied::Rejected("no such ministry");
        };
        let Some(pending) = &info.pending else {
            return Applied::Rejected("no appointment pending");
        };
        if pending.term != term {
            return Applied::Rejected("stale appointment term");
        }
        let forming = info.members.is_empty();
        if !members.contains(&minister) || !(forming || single_change(&info.members, &members)) {
            return Applied::Rejected("minister must be a member; one change at a time");
        }
        assert!(term > info.term, "appointment terms only grow");
        let removed: Vec<NodeId> = info
            .members
            .iter()
            .copied()
            .filter(|m| !members.contains(m))
            .collect();
        info.members = members.clone();
        info.minister = Some(minister);
        info.term = term;
        info.pending = None;
        Applied::Appointed {
            ministry,
            term,
            minister,
            members,
            removed,
        }
    }

    /// The ministry `shard` belongs to (current members, or joining through a pending appointment).
    pub fn ministry_of(&self, shard: NodeId) -> Option<GroupId> {
        self.ministries
            .values()
            .find(|m| {
                m.members.contains(&shard)
                    || m.pending
                        .as_ref()
                        .is_some_and(|p| p.members.contains(&shard))
            })
            .map(|m| m.id)
    }

    /// Every node with a registered shard, in order, once each.
    pub fn nodes(&self) -> BTreeSet<NodeId> {
        self.shards.iter().map(|s| node_of(*s)).collect()
    }

    pub fn idle_shards(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.shards
            .iter()
            .copied()
            .filter(|s| self.ministry_of(*s).is_none())
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("the map always encodes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, crate::codec::DecodeError> {
        crate::codec::decode_exact(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_with(shards: &[NodeId]) -> ClusterMap {
        let mut m = ClusterMap::new();
        for s in shards {
            m.apply(&Order::RegisterShard { shard: *s });
        }
        m
    }

    #[test]
    fn terms_come_from_one_counter_and_only_grow() {
        let mut m = map_with(&[1, 2, 3, 4]);
        let a = m.apply(&Order::BeginAppointment {
            ministry: None,
            members: vec![1, 2, 3],
        });
        let Applied::Poll {
            ministry,
            term: t1,
            poll_set,
        } = a
        else {
            panic!("{a:?}")
        };
        assert!(poll_set.is_empty(), "a new ministry has nobody to poll");
        let b = m.apply(&Order::Appoint {
            ministry,
            term: t1,
            minister: 1,
            members: vec![1, 2, 3],
        });
        assert!(
            matches!(b, Applied::Appointed { .. }),
            "forming takes all members at once: {b:?}"
        );
        let Applied::Poll {
            term: t2, poll_set, ..
        } = m.apply(&Order::BeginAppointment {
            ministry: Some(ministry),
            members: vec![1, 2, 3, 4],
        })
        else {
            panic!()
        };
        assert!(t2 > t1);
        assert_eq!(poll_set, vec![1, 2, 3]);
        // A stale appointment (old term) changes nothing.
        let stale = m.apply(&Order::Appoint {
            ministry,
            term: t1,
            minister: 2,
            members: vec![1, 2, 3],
        });
        assert!(matches!(stale, Applied::Rejected(_)));
        // Two changes at once (removing 2 and 3) are refused.
        let two = m.apply(&Order::BeginAppointment {
            ministry: Some(ministry),
            members: vec![1],
        });
        assert!(matches!(two, Applied::Rejected(_)), "{two:?}");
        let Applied::Appointed { removed, .. } = m.apply(&Order::Appoint {
            ministry,
            term: t2,
            minister: 2,
            members: vec![1, 2, 3, 4],
        }) else {
            panic!()
        };
        assert!(removed.is_empty());
        assert_eq!(ClusterMap::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn every_new_ministry_gets_its_own_inode_range() {
        let mut m = ClusterMap::new();
        for shard in 1..=6 {
            m.apply(&Order::RegisterShard { shard });
        }
        for members in [vec![1, 2, 3], vec![4, 5, 6]] {
            let applied = m.apply(&Order::BeginAppointment {
                ministry: None,
                members,
            });
            assert!(matches!(applied, Applied::Poll { .. }), "{applied:?}");
        }
        let r1 = m.inode_ranges[&1].clone();
        let r2 = m.inode_ranges[&2].clone();
        assert_eq!(r1, vec![(INODE_RANGE, INODE_RANGE)]);
        assert_eq!(r2, vec![(2 * INODE_RANGE, INODE_RANGE)]);
        assert_eq!(m.next_inode, 3 * INODE_RANGE);
        assert_eq!(ClusterMap::decode(&m.encode()).unwrap(), m);
    }
}
