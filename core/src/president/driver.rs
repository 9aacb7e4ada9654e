//! Runs on the elected president: watches member reports and turns failures
//! and missing ministries into orders for the president's log.
//!
//! Sans-IO like the rest of the core: reports and poll answers in, orders to
//! propose out. Every order is re-derived from the replicated map, so a new
//! president simply picks up where the old one stopped.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::map::{ClusterMap, MinistryInfo, Order};
use super::transfer::{Step, Transfer};
use crate::ids::node_of;
use crate::raft::{GroupId, Index, Micros, NodeId, PollAnswer, Term};

#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Ministries to form when enough idle shards exist.
    pub ministries: usize,
    /// Members per ministry.
    pub ministry_size: usize,
    /// A node not heard from within this is considered failed.
    pub failure_timeout: Micros,
    /// Retry an unfinished appointment after this long.
    pub appointment_timeout: Micros,
    /// Injected fault: appoint after a single poll answer instead of a majority.
    pub appoint_without_majority: bool,
}

/// What a shard in a ministry reports about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardReport {
    pub group: GroupId,
    pub term: Term,
    pub leader: bool,
    pub commit: Index,
    /// Term of the entry at `commit`: equal to `term` once a minister has
    /// committed in its own term (its appointment is settled).
    pub commit_term: Term,
    /// Members this shard has not heard from within H (thesis 6.2: the
    /// president may reach both ends of a broken link).
    pub unreachable: Vec<NodeId>,
}

/// The periodic report every shard sends the president.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberReport {
    pub shard: NodeId,
    pub ministry: Option<ShardReport>,
    /// The shard's node's storage, when it stores chunks.
    pub space: Option<StorageSpace>,
}

/// A node's storage space for chunks, in bytes: what they may still use
/// (the disk's free space less a reserve) and the disk's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageSpace {
    pub free: u64,
    pub total: u64,
}

/// A node's free space is written to the map again only when it moved by
/// more than this share of its disk, or it became full or stopped being
/// full: placement needs proportions, not bytes, and every figure is a
/// president log entry.
const SPACE_STEP_DIVISOR: u64 = 32;

/// Whether `new` differs enough from the map's figure `old` to propose it.
pub fn space_changed(old: Option<u64>, new: StorageSpace) -> bool {
    match old {
        None => true,
        Some(old) => {
            (old == 0) != (new.free == 0) || old.abs_diff(new.free) > new.total / SPACE_STEP_DIVISOR
        }
    }
}

const CREATE_KEY: GroupId = GroupId::MAX;

pub struct PresidentDriver {
    cfg: DriverConfig,
    started: Micros,
    heard: BTreeMap<NodeId, (Micros, MemberReport)>,
    answers: BTreeMap<GroupId, (Term, BTreeMap<NodeId, PollAnswer>)>,
    /// When an order was last proposed per ministry (or for creation / registration).
    last_order: BTreeMap<GroupId, Micros>,
    /// The pending term each ministry's Appoint order was proposed for.
    appointed: BTreeMap<GroupId, Term>,
    /// Images of detached entries, by transfer (a new president fetches
    /// them again: detaching twice answers the same image).
    images: BTreeMap<u64, Vec<u8>>,
    /// When each transfer step was last sent or proposed.
    step_sent: BTreeMap<(u64, Step), Micros>,
    /// When each node's free space was last proposed.
    space_sent: BTreeMap<NodeId, Micros>,
    /// When each node's liveness was last proposed.
    state_sent: BTreeMap<NodeId, Micros>,
}

/// A transfer step for a ministry's minister to run.
#[derive(Clone, Debug)]
pub struct StepOrder {
    pub transfer: Transfer,
    pub step: Step,
    pub ministry: GroupId,
    pub minister: NodeId,
    /// The detached image an attach carries.
    pub image: Option<Vec<u8>>,
}

impl PresidentDriver {
    pub fn new(cfg: DriverConfig, now: Micros) -> Self {
        assert!(cfg.ministry_size > 0 && cfg.failure_timeout > 0 && cfg.appointment_timeout > 0);
        PresidentDriver {
            cfg,
            started: now,
            heard: BTreeMap::new(),
            answers: BTreeMap::new(),
            last_order: BTreeMap::new(),
            appointed: BTreeMap::new(),
            images: BTreeMap::new(),
            step_sent: BTreeMap::new(),
            space_sent: BTreeMap::new(),
            state_sent: BTreeMap::new(),
        }
    }

    pub fn on_report(&mut self, now: Micros, report: MemberReport) {
        self.heard.insert(report.shard, (now, report));
    }

    pub fn on_poll_answer(&mut self, answer: PollAnswer) {
        let slot = self
            .answers
            .entry(answer.group)
            .or_insert((answer.term, BTreeMap::new()));
        if answer.term > slot.0 {
            *slot = (answer.term, BTreeMap::new());
        }
        if answer.term == slot.0 {
            slot.1.insert(answer.from, answer);
        }
    }

    /// Free space figures worth writing to the map: from nodes heard from
    /// lately, each at most once per appointment timeout.
    fn space_orders(&mut self, now: Micros, map: &ClusterMap) -> Vec<Order> {
        // Each of a node's shards reports its space: the newest report wins.
        let mut latest: BTreeMap<NodeId, (Micros, StorageSpace)> = BTreeMap::new();
        for (shard, (heard, r)) in &self.heard {
            if let (true, Some(space)) = (
                now.saturating_sub(*heard) < self.cfg.failure_timeout,
                r.space,
            ) {
                let slot = latest.entry(node_of(*shard)).or_insert((*heard, space));
                if *heard > slot.0 {
                    *slot = (*heard, space);
                }
            }
        }
        let mut orders = Vec::new();
        for (node, (_, space)) in latest {
            let due = self
                .space_sent
                .get(&node)
                .is_none_or(|t| now.saturating_sub(*t) >= self.cfg.appointment_timeout);
            if due && space_changed(map.storage.get(&node).copied(), space) {
                self.space_sent.insert(node, now);
                orders.push(Order::StorageSpace {
                    node,
                    free_bytes: space.free,
                });
            }
        }
        orders
    }

    /// A node is down when none of its shards reported within the failure
    /// timeout, up again when one does. A new president judges only after
    /// a failure timeout of its own, each node at most once per
    /// appointment timeout.
    fn liveness_orders(&mut self, now: Micros, map: &ClusterMap) -> Vec<Order> {
        if now.saturating_sub(self.started) < self.cfg.failure_timeout {
            return Vec::new();
        }
        let mut up: BTreeSet<NodeId> = BTreeSet::new();
        for shard in self.heard.keys() {
            if self.alive(now, *shard) {
                up.insert(node_of(*shard));
            }
        }
        let mut orders = Vec::new();
        for node in map.nodes() {
            let down = !up.contains(&node);
            let due = self
                .state_sent
                .get(&node)
                .is_none_or(|t| now.saturating_sub(*t) >= self.cfg.appointment_timeout);
            if due && down != map.down.contains(&node) {
                self.state_sent.insert(node, now);
                orders.push(Order::NodeState { node, down });
            }
        }
        orders
    }

    fn alive(&self, now: Micros, shard: NodeId) -> bool {
        self.heard
            .get(&shard)
            .is_some_and(|(t, _)| now.saturating_sub(*t) < self.cfg.failure_timeout)
    }

    fn report(&self, shard: NodeId) -> Option<&ShardReport> {
        self.heard
            .get(&shard)
            .and_then(|(_, r)| r.ministry.as_ref())
    }

    /// One order per ministry per appointment timeout; a new president also
    /// waits that long before judging ministries it has just started watching.
    fn throttled(&self, now: Micros, key: GroupId) -> bool {
        let since = match self.last_order.get(&key) {
            Some(t) => *t,
            None if key == CREATE_KEY => return false,
            None => self.started,
        };
        now.saturating_sub(since) < self.cfg.appointment_timeout
    }

    /// Orders to propose now. Call on every tick while this node is president;
    /// `president` is this node, whose shards are kept from leading a ministry
    /// where another member will do (thesis 8.2: one failure should not cost both).
    pub fn tick(&mut self, now: Micros, map: &ClusterMap, president: NodeId) -> Vec<Order> {
        let mut orders = Vec::new();
        let reported: Vec<NodeId> = self
            .heard
            .keys()
            .copied()
            .filter(|s| !map.shards.contains(s))
            .collect();
        for shard in reported {
            let key = u64::MAX - 1 - shard;
            if self
                .last_order
                .get(&key)
                .is_none_or(|t| now.saturating_sub(*t) >= self.cfg.appointment_timeout)
            {
                self.last_order.insert(key, now);
                orders.push(Order::RegisterShard { shard });
            }
        }
        orders.extend(self.space_orders(now, map));
        orders.extend(self.liveness_orders(now, map));
        let mut taken: BTreeSet<NodeId> = BTreeSet::new();
        let in_grace = now.saturating_sub(self.started) < self.cfg.failure_timeout;
        for info in map.ministries.values() {
            if let Some(pending) = &info.pending {
                // Appoint the moment a majority has answered (once per term):
                // waiting out a timer here would lengthen every failover.
                if self.appointed.get(&info.id) != Some(&pending.term) {
                    if let Some(order) = self.appointment(info, president) {
                        self.appointed.insert(info.id, pending.term);
                        self.last_order.insert(info.id, now);
                        orders.push(order);
                        continue;
                    }
                }
                if !self.throttled(now, info.id) {
                    // No majority answered in time: poll again at a fresh term.
                    self.last_order.insert(info.id, now);
                    orders.push(Order::BeginAppointment {
                        ministry: Some(info.id),
                        members: pending.members.clone(),
                    });
                }
                continue;
            }
            if in_grace || self.throttled(now, info.id) {
                continue;
            }
            if let Some(order) = self.repair(now, map, info, &mut taken) {
                self.last_order.insert(info.id, now);
                orders.push(order);
            }
        }
        if map.ministries.len() < self.cfg.ministries && !self.throttled(now, CREATE_KEY) {
            // One shard per node: a ministry must survive the loss of a node.
            let mut idle: Vec<NodeId> = Vec::new();
            for s in map.idle_shards() {
                if idle.len() == self.cfg.ministry_size {
                    break;
                }
                if self.alive(now, s)
                    && !taken.contains(&s)
                    && !idle.iter().any(|i| node_of(*i) == node_of(s))
                {
                    idle.push(s);
                }
            }
            if idle.len() == self.cfg.ministry_size {
                self.last_order.insert(CREATE_KEY, now);
                orders.push(Order::BeginAppointment {
                    ministry: None,
                    members: idle,
                });
            }
        }
        orders
    }

    /// Transfers: orders to propose and steps to send to ministers. Call on
    /// every tick while president, after [`PresidentDriver::tick`].
    pub fn transfer_tick(&mut self, now: Micros, map: &ClusterMap) -> (Vec<Order>, Vec<StepOrder>) {
        let (mut orders, mut steps) = (Vec::new(), Vec::new());
        self.images
            .retain(|id, _| map.transfers.active.contains_key(id));
        self.step_sent
            .retain(|(id, _), _| map.transfers.active.contains_key(id));
        let retry = self.cfg.appointment_timeout;
        let mut taken: BTreeSet<NodeId> = BTreeSet::new();
        for t in map.transfers.active.values() {
            let due = |step: Step, sent: &BTreeMap<(u64, Step), Micros>| {
                sent.get(&(t.id, step))
                    .is_none_or(|at| now.saturating_sub(*at) >= retry)
            };
            if t.step == Step::Form {
                if !due(Step::Form, &self.step_sent) {
                    continue;
                }
                match t.to {
                    None => {
                        let mut members: Vec<NodeId> = Vec::new();
                        for s in map.idle_shards() {
                            if members.len() == self.cfg.ministry_size {
                                break;
                            }
                            if self.alive(now, s)
                                && !taken.contains(&s)
                                && !members.iter().any(|m| node_of(*m) == node_of(s))
                            {
                                members.push(s);
                            }
                        }
                        if members.len() == self.cfg.ministry_size {
                            taken.extend(members.iter().copied());
                            self.step_sent.insert((t.id, Step::Form), now);
                            orders.push(Order::FormForTransfer {
                                transfer: t.id,
                                members,
                            });
                        }
                    }
                    Some(to) => {
                        // The new ministry serves once its minister committed in its term.
                        let settled = map.ministries.get(&to).is_some_and(|info| {
                            info.pending.is_none()
                                && info.minister.is_some_and(|m| {
                                    self.report(m).is_some_and(|r| {
                                        r.group == to
                                            && r.leader
                                            && r.term == info.term
                                            && r.commit_term == info.term
                                    })
                                })
                        });
                        if settled {
                            self.step_sent.insert((t.id, Step::Form), now);
                            orders.push(Order::Advance {
                                transfer: t.id,
                                done: Step::Form,
                                failure: None,
                            });
                        }
                    }
                }
                continue;
            }
            // An attach carries the detached image; without it, detach
            // again (it answers the same image) to fetch it.
            let step = if t.step == Step::Attach && !self.images.contains_key(&t.id) {
                Step::Detach
            } else {
                t.step
            };
            let ministry = if step.at_source() {
                Some(t.request.from)
            } else {
                t.to
            };
            let Some(ministry) = ministry else { continue };
            let Some(minister) = map.ministries.get(&ministry).and_then(|i| i.minister) else {
                continue;
            };
            if !due(step, &self.step_sent) {
                continue;
            }
            self.step_sent.insert((t.id, step), now);
            let image = (step == Step::Attach)
                .then(|| self.images.get(&t.id).cloned())
                .flatten();
            steps.push(StepOrder {
                transfer: t.clone(),
                step,
                ministry,
                minister,
                image,
            });
        }
        (orders, steps)
    }

    /// A ministry ran a transfer step: `Ok` with its answer (a detach's
    /// image), or `Err` with why it failed. Returns the order to propose.
    pub fn on_step_done(
        &mut self,
        map: &ClusterMap,
        transfer: u64,
        step: Step,
        result: Result<Vec<u8>, String>,
    ) -> Option<Order> {
        let t = map.transfers.active.get(&transfer)?;
        if let (Step::Detach, Ok(image)) = (step, &result) {
            self.images.insert(transfer, image.clone());
        }
        if t.step != step {
            // A detach sent again to fetch the image: send the attach now.
            self.step_sent.remove(&(transfer, t.step));
            return None;
        }
        Some(Order::Advance {
            transfer,
            done: step,
            failure: result.err(),
        })
    }

    /// With answers from a majority of the poll set, appoint the most up-to-date.
    fn appointment(&self, info: &MinistryInfo, president: NodeId) -> Option<Order> {
        let pending = info.pending.as_ref()?;
        let answers: Vec<&PollAnswer> = self
            .answers
            .get(&info.id)
            .filter(|(t, _)| *t == pending.term)
            .map(|(_, a)| {
                a.values()
                    .filter(|a| pending.poll_set.contains(&a.from))
                    .collect()
            })
            .unwrap_or_default();
        let need = if pending.poll_set.is_empty() {
            0
        } else if self.cfg.appoint_without_majority {
            1
        } else {
            pending.poll_set.len() / 2 + 1
        };
        if answers.len() < need {
            return None;
        }
        // Most up-to-date first (safety); among equals, not the president.
        let rank = |a: &&&PollAnswer| {
            (
                a.last_term,
                a.last_index,
                node_of(a.from) != president,
                std::cmp::Reverse(a.from),
            )
        };
        let minister = match answers.iter().max_by_key(rank) {
            Some(best) => best.from,
            // A new ministry: all logs are empty.
            None => *pending
                .members
                .iter()
                .find(|m| node_of(**m) != president)
                .or(pending.members.first())?,
        };
        // The most up-to-date member may be the one a change would remove:
        // keep the membership this round rather than lose its log.
        let members = if pending.members.contains(&minister) {
            pending.members.clone()
        } else {
            info.members.clone()
        };
        Some(Order::Appoint {
            ministry: info.id,
            term: pending.term,
            minister,
            members,
        })
    }

    /// A settled ministry with a live minister gets at most one membership
    /// change: grow with an idle shard, or drop a member that is gone.
    fn repair(
        &self,
        now: Micros,
        map: &ClusterMap,
        info: &MinistryInfo,
        taken: &mut BTreeSet<NodeId>,
    ) -> Option<Order> {
        let begin = |members: Vec<NodeId>| {
            Some(Order::BeginAppointment {
                ministry: Some(info.id),
                members,
            })
        };
        let Some(minister) = info.minister else {
            return begin(info.members.clone());
        };
        let leading = self.alive(now, minister)
            && self
                .report(minister)
                .is_some_and(|r| r.group == info.id && r.term == info.term && r.leader);
        let clerks: Vec<NodeId> = info
            .members
            .iter()
            .copied()
            .filter(|m| *m != minister)
            .collect();
        let cut_off = clerks
            .iter()
            .filter(|c| {
                self.report(**c)
                    .is_some_and(|r| r.group == info.id && r.unreachable.contains(&minister))
            })
            .count();
        if !leading || (!clerks.is_empty() && cut_off * 2 > clerks.len()) {
            return begin(info.members.clone());
        }
        let report = self.report(minister)?;
        if report.commit_term != info.term {
            return None; // not settled: a second change could break quorum overlap
        }
        let gone: Vec<NodeId> = clerks
            .iter()
            .copied()
            .filter(|c| !self.alive(now, *c) || report.unreachable.contains(c))
            .collect();
        let idle = map.idle_shards().find(|s| {
            self.alive(now, *s)
                && !taken.contains(s)
                && !info.members.iter().any(|m| node_of(*m) == node_of(*s))
        });
        let mut members = info.members.clone();
        if members.len() <= self.cfg.ministry_size
            && (members.len() < self.cfg.ministry_size || !gone.is_empty())
        {
            if let Some(idle) = idle {
                taken.insert(idle);
                members.push(idle);
                return begin(members);
            }
        }
        let dead = *gone.first()?;
        if members.len() > 1 {
            members.retain(|m| *m != dead);
            return begin(members);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::shard_id;
    use crate::president::map::Applied;

    const GIB: u64 = 1 << 30;

    fn driver() -> PresidentDriver {
        PresidentDriver::new(
            DriverConfig {
                ministries: 0,
                ministry_size: 3,
                failure_timeout: 1_000,
                appointment_timeout: 100,
                appoint_without_majority: false,
            },
            0,
        )
    }

    fn report(node: NodeId, shard: u32, free: u64) -> MemberReport {
        MemberReport {
            shard: shard_id(node, shard),
            ministry: None,
            space: Some(StorageSpace {
                free,
                total: 64 * GIB,
            }),
        }
    }

    fn space_orders(d: &mut PresidentDriver, now: Micros, map: &mut ClusterMap) -> Vec<Order> {
        let orders = d.space_orders(now, map);
        for o in &orders {
            map.apply(o);
        }
        orders
    }

    #[test]
    fn free_space_reaches_the_map_when_it_moved_a_lot() {
        let (mut d, mut map) = (driver(), ClusterMap::new());
        // Two shards of node 1 report the same node: one figure.
        d.on_report(0, report(1, 0, 10 * GIB));
        d.on_report(0, report(1, 1, 10 * GIB));
        d.on_report(0, report(2, 0, 30 * GIB));
        assert_eq!(space_orders(&mut d, 0, &mut map).len(), 2);
        assert_eq!(map.storage.get(&1), Some(&(10 * GIB)));
        assert_eq!(map.storage.get(&2), Some(&(30 * GIB)));
        // A small move (under 1/32 of the disk) is not worth a log entry.
        d.on_report(200, report(1, 0, 9 * GIB));
        assert!(space_orders(&mut d, 200, &mut map).is_empty());
        // A large one is, but once per appointment timeout.
        d.on_report(250, report(1, 0, 4 * GIB));
        assert_eq!(
            space_orders(&mut d, 250, &mut map),
            vec![Order::StorageSpace {
                node: 1,
                free_bytes: 4 * GIB
            }]
        );
        d.on_report(260, report(1, 0, 100));
        assert!(space_orders(&mut d, 260, &mut map).is_empty(), "throttled");
        // Becoming full always counts, however small the step.
        d.on_report(400, report(1, 0, 0));
        assert_eq!(space_orders(&mut d, 400, &mut map).len(), 1);
        assert_eq!(map.storage.get(&1), Some(&0));
        // A node not heard from within the failure timeout is not judged.
        d.on_report(500, report(2, 0, GIB));
        assert!(space_orders(&mut d, 500 + 1_000, &mut map).is_empty());
    }

    fn liveness(d: &mut PresidentDriver, now: Micros, map: &mut ClusterMap) -> Vec<Order> {
        let orders = d.liveness_orders(now, map);
        for o in &orders {
            assert_eq!(map.apply(o), Applied::Nothing, "{o:?}");
        }
        orders
    }

    #[test]
    fn a_node_whose_shards_all_went_quiet_is_down_until_one_reports() {
        let (mut d, mut map) = (driver(), ClusterMap::new());
        for shard in [shard_id(1, 0), shard_id(1, 1), shard_id(2, 0)] {
            map.apply(&Order::RegisterShard { shard });
        }
        d.on_report(0, report(1, 0, GIB));
        d.on_report(0, report(2, 0, GIB));
        // A new president waits a failure timeout before judging anyone.
        d.on_report(900, report(1, 0, GIB));
        d.on_report(900, report(2, 0, GIB));
        assert!(liveness(&mut d, 900, &mut map).is_empty(), "in grace");
        // Node 2 goes quiet; node 1's shard 1 never reported but shard 0
        // does, so node 1 is up.
        d.on_report(1_800, report(1, 0, GIB));
        assert!(liveness(&mut d, 1_800, &mut map).is_empty());
        assert_eq!(
            liveness(&mut d, 1_950, &mut map),
            vec![Order::NodeState {
                node: 2,
                down: true
            }]
        );
        assert_eq!(map.down, BTreeSet::from([2]));
        assert!(liveness(&mut d, 2_000, &mut map).is_empty(), "said once");
        // Node 2 is back.
        d.on_report(2_100, report(2, 0, GIB));
        assert_eq!(
            liveness(&mut d, 2_100, &mut map),
            vec![Order::NodeState {
                node: 2,
                down: false
            }]
        );
        assert!(map.down.is_empty());
        // Unregistered nodes are refused by the map.
        assert!(matches!(
            map.apply(&Order::NodeState {
                node: 9,
                down: true
            }),
            Applied::Rejected(_)
        ));
    }
}
