//! Safety checks run after every step of a simulation:
//! * at most one leader per term (per group for the president; cluster-wide
//!   for ministries, whose terms come from one counter);
//! * log matching: two logs with an entry of the same index and term hold
//!   identical prefixes (tracked with a hash chain per log);
//! * committed entries are never lost or changed, and every new leader holds them all;
//! * every member's state machine result equals a reference model's;
//! * client histories are linearizable: each reply equals the model's result
//!   at the reply's log position, and that position follows every operation
//!   that completed before the request was sent;
//! * at the end, the workload's own check (`Workload::check_end`): every
//!   acknowledged append is in its list exactly once; every acknowledged
//!   create is in the namespace once, unless a committed operation removed it.
//!
//! The models and the decoding of commands and answers are the workload's
//! (`crate::workload`); everything else here is the same for every workload.

use std::collections::BTreeMap;

use govfs_core::codec::decode_exact;
use govfs_core::raft::{Entry, GroupId, Index, NodeId, Payload, Raft, Term, PRESIDENT_GROUP};

use govfs_core::node::{Observation, Proposal};

use crate::rng::Fnv;
use crate::workload::{Command, MemberView, Workload};

fn payload_digest(p: &Payload) -> u64 {
    match p {
        Payload::Noop => 1,
        Payload::Command(c) => Fnv::digest(c),
        Payload::Config(m) => {
            let mut h = Fnv::default();
            m.voters.iter().for_each(|v| h.u64(*v));
            h.u64(u64::MAX);
            m.learners.iter().for_each(|v| h.u64(*v));
            h.0
        }
    }
}

fn chain(prev: u64, e: &Entry) -> u64 {
    let mut h = Fnv(prev);
    h.u64(e.index);
    h.u64(e.term);
    h.u64(payload_digest(&e.payload));
    h.0
}

/// One member's log as seen by the checker: a hash chain from a base point.
#[derive(Default)]
struct Shadow {
    /// Chain value at `base` (None when unknown: checks resume once anchored).
    base: Index,
    base_chain: Option<u64>,
    /// (term, chain) for base+1, base+2, ...
    chain: Vec<(Term, u64)>,
}

struct Model<W: Workload> {
    state: W::Model,
    /// Result of each committed command, by index (None for non-commands).
    results: BTreeMap<Index, Option<W::Answer>>,
}

impl<W: Workload> Default for Model<W> {
    fn default() -> Self {
        Model {
            state: W::Model::default(),
            results: BTreeMap::new(),
        }
    }
}

pub struct Checker<W: Workload> {
    leaders: BTreeMap<(bool, Term), (GroupId, NodeId)>,
    chains: BTreeMap<GroupId, BTreeMap<(Index, Term), u64>>,
    shadows: BTreeMap<(NodeId, GroupId), Shadow>,
    /// Committed entries per group, filled in index order: (term, payload digest).
    committed: BTreeMap<GroupId, Vec<(Term, u64)>>,
    models: BTreeMap<GroupId, Model<W>>,
    /// Highest log index of an operation completed so far, per ministry.
    completed_max: BTreeMap<GroupId, Index>,
    pub completed_ops: u64,
    /// Completed client operations per ministry.
    pub ops_by_ministry: BTreeMap<GroupId, u64>,
}

impl<W: Workload> Default for Checker<W> {
    fn default() -> Self {
        Checker {
            leaders: BTreeMap::new(),
            chains: BTreeMap::new(),
            shadows: BTreeMap::new(),
            committed: BTreeMap::new(),
            models: BTreeMap::new(),
            completed_max: BTreeMap::new(),
            completed_ops: 0,
            ops_by_ministry: BTreeMap::new(),
        }
    }
}

pub type Violation = String;

impl<W: Workload> Checker<W> {
    pub fn observe(&mut self, obs: &Observation) -> Result<(), Violation> {
        match obs {
            Observation::BecameLeader { node, group, term } => {
                let key = (*group != PRESIDENT_GROUP, *term);
                if let Some((g, n)) = self.leaders.insert(key, (*group, *node)) {
                    if (g, n) != (*group, *node) {
                        return Err(format!(
                            "two leaders in term {term}: node {n} of group {g} and node {node} of group {group}"
                        ));
                    }
                }
                Ok(())
            }
            Observation::LogReset {
                node,
                group,
                index,
                term,
            } => {
                let base_chain = if *index == 0 {
                    Some(0)
                } else {
                    self.chains
                        .get(group)
                        .and_then(|c| c.get(&(*index, *term)).copied())
                };
                self.shadows.insert(
                    (*node, *group),
                    Shadow {
                        base: *index,
                        base_chain,
                        chain: Vec::new(),
                    },
                );
                Ok(())
            }
            Observation::Persisted {
                node,
                group,
                entries,
            } => self.persisted(*node, *group, entries),
            Observation::Applied {
                node,
                group,
                entry,
                result,
            } => {
                let proposal = match &entry.payload {
                    Payload::Command(bytes) => decode_exact::<Proposal>(bytes).ok(),
                    _ => None,
                };
                let result = match (result, proposal) {
                    (Some((i, out)), Some(p)) => W::decode_applied(&p.command, *i, out),
                    _ => None,
                };
                self.applied(*node, *group, entry, result.as_ref())
            }
        }
    }

    fn persisted(
        &mut self,
        node: NodeId,
        group: GroupId,
        entries: &[Entry],
    ) -> Result<(), Violation> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let shadow = self.shadows.entry((node, group)).or_insert_with(|| Shadow {
            base: 0,
            base_chain: Some(0),
            chain: Vec::new(),
        });
        if first.index <= shadow.base {
            // Overwrites below our anchor: re-anchor from scratch, unchecked.
            *shadow = Shadow {
                base: first.index - 1,
                base_chain: None,
                chain: Vec::new(),
            };
        }
        let keep = (first.index - shadow.base - 1) as usize;
        if keep > shadow.chain.len() {
            return Err(format!(
                "node {node} group {group}: log gap before index {}",
                first.index
            ));
        }
        shadow.chain.truncate(keep);
        let chains = self.chains.entry(group).or_default();
        for e in entries {
            let prev = match shadow.chain.last() {
                Some((_, c)) => Some(*c),
                None => shadow.base_chain,
            };
            let Some(prev) = prev else {
                shadow.chain.clear();
                shadow.base = e.index;
                shadow.base_chain = None;
                continue;
            };
            let c = chain(prev, e);
            shadow.chain.push((e.term, c));
            if let Some(other) = chains.insert((e.index, e.term), c) {
                if other != c {
                    return Err(format!(
                        "log matching: node {node} group {group} holds index {} term {} with a history another member's log does not share",
                        e.index, e.term
                    ));
                }
            }
        }
        Ok(())
    }

    fn applied(
        &mut self,
        node: NodeId,
        group: GroupId,
        e: &Entry,
        result: Option<&W::Answer>,
    ) -> Result<(), Violation> {
        let log = self.committed.entry(group).or_default();
        let digest = payload_digest(&e.payload);
        let i = e.index as usize;
        if i <= log.len() {
            if log[i - 1] != (e.term, digest) {
                return Err(format!(
                    "committed entry changed: group {group} index {} was term {} and is now term {} at node {node}",
                    e.index,
                    log[i - 1].0,
                    e.term
                ));
            }
        } else if i == log.len() + 1 {
            log.push((e.term, digest));
            if group != PRESIDENT_GROUP {
                let model = self.models.entry(group).or_default();
                let expected = match &e.payload {
                    Payload::Command(bytes) => {
                        let p: Proposal = postcard::from_bytes(bytes)
                            .map_err(|_| format!("undecodable proposal at {}", e.index))?;
                        W::apply(&mut model.state, e.index, &p)
                            .map_err(|why| format!("group {group} index {}: {why}", e.index))?
                    }
                    _ => None,
                };
                model.results.insert(e.index, expected);
            }
        } else {
            return Err(format!(
                "node {node} group {group} applied index {} before anyone applied {}",
                e.index,
                log.len() + 1
            ));
        }
        if group != PRESIDENT_GROUP {
            let expected = self
                .models
                .get(&group)
                .and_then(|m| m.results.get(&e.index))
                .cloned()
                .flatten();
            if expected.as_ref() != result {
                return Err(format!(
                    "state machine diverged: node {node} group {group} index {} gave {result:?}, the model {expected:?}",
                    e.index
                ));
            }
        }
        Ok(())
    }

    /// A new leader must hold every entry known to be committed in its group.
    pub fn check_leader_log(&self, raft: &Raft) -> Result<(), Violation> {
        let Some(log) = self.committed.get(&raft.group()) else {
            return Ok(());
        };
        let l = raft.log();
        if (log.len() as u64) > l.last_index() {
            return Err(format!(
                "leader {} of group {} at term {} lacks committed entries {}..={}",
                raft.id(),
                raft.group(),
                raft.term(),
                l.last_index() + 1,
                log.len()
            ));
        }
        for i in l.first_index()..=(log.len() as u64) {
            if l.term(i) != Some(log[i as usize - 1].0) {
                return Err(format!(
                    "leader {} of group {} holds a different entry at committed index {i}",
                    raft.id(),
                    raft.group()
                ));
            }
        }
        Ok(())
    }

    /// The floor a new request must land above: everything completed so far.
    pub fn invoke(&self, ministry: GroupId) -> Index {
        self.completed_max.get(&ministry).copied().unwrap_or(0)
    }

    pub fn complete(
        &mut self,
        ministry: GroupId,
        floor: Index,
        cmd: &Command<W::Op>,
        got: &W::Answer,
    ) -> Result<(), Violation> {
        let index = W::answer_index(got);
        if index <= floor {
            return Err(format!(
                "not linearizable: client {} seq {} took effect at index {index} though an operation at index {floor} completed before it was sent",
                cmd.client, cmd.seq
            ));
        }
        let expected = self
            .models
            .get(&ministry)
            .and_then(|m| m.results.get(&index))
            .cloned()
            .flatten();
        if expected.as_ref() != Some(got) {
            return Err(format!(
                "not linearizable: client {} seq {} was answered {got:?}, but the committed log gives {expected:?} at that position",
                cmd.client, cmd.seq
            ));
        }
        let max = self.completed_max.entry(ministry).or_default();
        *max = (*max).max(index);
        self.completed_ops += 1;
        *self.ops_by_ministry.entry(ministry).or_default() += 1;
        Ok(())
    }

    /// End of run: the workload's own check, against each ministry's model
    /// after its last committed entry.
    pub fn check_end(
        &self,
        workload: &W,
        members: &[MemberView<'_, W::App>],
    ) -> Result<(), Violation> {
        let models = self.models.iter().map(|(g, m)| (*g, &m.state)).collect();
        let committed = self
            .committed
            .iter()
            .map(|(g, log)| (*g, log.len() as Index))
            .collect();
        workload.check_end(&models, &committed, members)
    }

    pub fn committed_len(&self, group: GroupId) -> usize {
        self.committed.get(&group).map_or(0, |l| l.len())
    }
}
