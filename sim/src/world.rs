//! The event loop: a virtual clock, a network that loses, duplicates, delays
//! and reorders messages and can be partitioned (also one way), disks that
//! lose unsynced writes on crash, clients, and a fault schedule, all drawn
//! from one seed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use govfs_core::ids::{index_of, node_of};
use govfs_core::president::{DriverConfig, TransferRequest};
use govfs_core::raft::{GroupId, InjectedFaults, Micros, NodeId, PRESIDENT_GROUP};

use govfs_core::node::{
    ClientReply, ClientRequest, Disk, NodeConfig, NodeMsg, NodeTiming, Observation, Output,
};

use crate::checker::{Checker, Violation};
use crate::node::SimNode;
use crate::workload::{Application, Command, MemberView, Workload};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Addr {
    Node(NodeId),
    Client(u64),
}

#[derive(Clone, Debug)]
enum NetMsg {
    Node(NodeMsg),
    Request(ClientRequest),
    Reply(ClientReply),
    Transfer(TransferRequest),
}
use crate::rng::{Fnv, Rng};

/// Deliberate bugs the checker must catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    VoteIgnoresTerm,
    CommitWithoutMajority,
    AppointWithoutMajority,
    AcceptStaleTerm,
}

impl Bug {
    pub const ALL: [Bug; 4] = [
        Bug::VoteIgnoresTerm,
        Bug::CommitWithoutMajority,
        Bug::AppointWithoutMajority,
        Bug::AcceptStaleTerm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::VoteIgnoresTerm => "vote-ignores-term",
            Bug::CommitWithoutMajority => "commit-without-majority",
            Bug::AppointWithoutMajority => "appoint-without-majority",
            Bug::AcceptStaleTerm => "accept-stale-term",
        }
    }

    pub fn parse(s: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == s)
    }
}

#[derive(Clone, Debug)]
pub struct SimOptions {
    pub nodes: u64,
    pub voters: u64,
    pub ministries: usize,
    pub ministry_size: usize,
    /// Shards per node: with more than one, a node serves several ministries.
    pub shards: u32,
    pub clients: u64,
    /// Faults are injected until this virtual time, then the cluster is healed.
    pub fault_until: Micros,
    /// The run ends here; clients stop starting operations a little before.
    pub end: Micros,
    pub bug: Option<Bug>,
    /// What the ministries run, and so what clients do and the checker models.
    pub app: Application,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            nodes: 7,
            voters: 3,
            ministries: 2,
            ministry_size: 3,
            shards: 2,
            clients: 6,
            fault_until: 10_000_000,
            end: 14_000_000,
            bug: None,
            app: Application::Kv,
        }
    }
}

#[derive(Debug)]
pub struct RunReport {
    pub seed: u64,
    pub steps: u64,
    pub hash: u64,
    pub completed_ops: u64,
    pub ops_by_ministry: BTreeMap<GroupId, u64>,
    pub crashes: u64,
    pub partitions: u64,
    pub leader_changes: u64,
    /// President voter-set changes accepted.
    pub reconfigs: u64,
    /// The workload's outcome counts (`Workload::outcomes`).
    pub outcomes: BTreeMap<String, u64>,
}

#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub violation: Violation,
    /// The last steps before the violation, oldest first.
    pub trace: Vec<String>,
}

#[derive(Clone, Debug)]
enum Ev {
    Deliver {
        from: Addr,
        to: Addr,
        msg: NetMsg,
    },
    Tick {
        node: NodeId,
        incarnation: u64,
    },
    Sync {
        node: NodeId,
        incarnation: u64,
        disk: Disk,
        seq: u64,
    },
    ClientTick {
        client: u64,
    },
    Fault,
    Restart {
        node: NodeId,
    },
    Heal {
        cut: u64,
    },
    LossBurstEnd,
    /// Ask the president to move the transfer key (until the map shows it).
    Transfer,
}

struct Scheduled {
    at: Micros,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct Outstanding<Op> {
    cmd: Command<Op>,
    floor: u64,
    sent_at: Micros,
}

struct Client<Op> {
    ministry: GroupId,
    seq: u64,
    target: NodeId,
    outstanding: Option<Outstanding<Op>>,
    next_op_at: Micros,
}

const TICK: Micros = 10_000;
const CLIENT_TICK: Micros = 20_000;
const CLIENT_TIMEOUT: Micros = 200_000;
const TRACE_LEN: usize = 80;
/// When the world first asks for the workload's transfer (if it has one).
const TRANSFER_AT: Micros = 3_000_000;

/// One simulated run of workload `W` (see [`crate::workload`]).
pub struct World<W: Workload> {
    opts: SimOptions,
    workload: W,
    now: Micros,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    rng: Rng,
    nodes: BTreeMap<NodeId, SimNode<W::App>>,
    clients: Vec<Client<W::Op>>,
    checker: Checker<W>,
    /// Directed links that drop everything, with a count of cuts covering each.
    cut_links: BTreeMap<(NodeId, NodeId), u32>,
    cuts: BTreeMap<u64, Vec<(NodeId, NodeId)>>,
    next_cut: u64,
    loss: f64,
    trace: std::collections::VecDeque<String>,
    /// GOVFS_SIM_TRACE set: print every step to stderr as it happens.
    trace_all: bool,
    hash: Fnv,
    steps: u64,
    crashes: u64,
    partitions: u64,
    leader_changes: u64,
    reconfigs: u64,
    /// This seed's transfer (if the workload has one) is a split, else a rename.
    transfer_split: bool,
}

fn timing() -> NodeTiming {
    NodeTiming {
        heartbeat: 50_000,
        election_timeout: 300_000,
        serve_timeout: 500_000,
        report_interval: 100_000,
        snapshot_every: 64,
        max_inflight: 8,
        max_append_bytes: 16 * 1024,
    }
}

/// The president's failure detection, relative to the member timing above.
const FAILURE_TIMEOUT: Micros = 800_000;
const APPOINTMENT_TIMEOUT: Micros = 400_000;

impl<W: Workload> World<W> {
    pub fn new(seed: u64, opts: SimOptions) -> Self {
        assert_eq!(
            opts.app,
            W::APPLICATION,
            "the options name the workload the world runs"
        );
        let faults = InjectedFaults {
            vote_ignores_term: opts.bug == Some(Bug::VoteIgnoresTerm),
            commit_without_majority: opts.bug == Some(Bug::CommitWithoutMajority),
            accept_stale_term: opts.bug == Some(Bug::AcceptStaleTerm),
        };
        let t = timing();
        let driver = DriverConfig {
            ministries: opts.ministries,
            ministry_size: opts.ministry_size,
            failure_timeout: FAILURE_TIMEOUT,
            appointment_timeout: APPOINTMENT_TIMEOUT,
            appoint_without_majority: opts.bug == Some(Bug::AppointWithoutMajority),
        };
        let voters: Vec<NodeId> = (1..=opts.voters).collect();
        let learners: Vec<NodeId> = (opts.voters + 1..=opts.nodes).collect();
        let mut w = World {
            workload: W::new(seed),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            rng: Rng::new(seed),
            nodes: BTreeMap::new(),
            clients: Vec::new(),
            checker: Checker::default(),
            cut_links: BTreeMap::new(),
            cuts: BTreeMap::new(),
            next_cut: 0,
            loss: 0.01,
            trace: Default::default(),
            trace_all: std::env::var_os("GOVFS_SIM_TRACE").is_some(),
            hash: Fnv::default(),
            steps: 0,
            crashes: 0,
            partitions: 0,
            leader_changes: 0,
            reconfigs: 0,
            // A split needs idle shards on distinct nodes for its new ministry.
            transfer_split: seed.is_multiple_of(2)
                && opts.nodes as usize * opts.shards as usize
                    >= (opts.ministries + 1) * opts.ministry_size,
            opts,
        };
        for id in 1..=w.opts.nodes {
            let mut cfg = NodeConfig {
                id,
                voters: voters.clone(),
                learners: learners.clone(),
                timing: t.clone(),
                faults,
                driver: driver.clone(),
                observe_entries: true,
                president: true,
                shards: Vec::new(),
                core: 0,
                share_map: false,
            };
            cfg.single_core(w.opts.shards);
            w.nodes.insert(id, SimNode::new(cfg, 0));
            let at = w.rng.range(0, TICK);
            w.schedule(
                at,
                Ev::Tick {
                    node: id,
                    incarnation: 0,
                },
            );
        }
        for c in 0..w.opts.clients {
            let ministry = c % w.opts.ministries as u64 + 1;
            let target = w.rng.range(1, w.opts.nodes + 1);
            w.clients.push(Client {
                ministry,
                seq: 0,
                target,
                outstanding: None,
                next_op_at: 1_500_000,
            });
            w.schedule(1_000_000 + c * 1000, Ev::ClientTick { client: c + 1 });
        }
        let first_fault = w.rng.range(2_000_000, 3_000_000);
        w.schedule(first_fault, Ev::Fault);
        if W::transfer(w.transfer_split).is_some() {
            w.schedule(TRANSFER_AT, Ev::Transfer);
        }
        w
    }

    fn schedule(&mut self, at: Micros, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            ev,
        }));
    }

    fn note(&mut self, kind: u64, a: u64, b: u64, text: impl FnOnce() -> String) {
        self.hash.u64(self.now);
        self.hash.u64(kind);
        self.hash.u64(a);
        self.hash.u64(b);
        if self.trace.len() == TRACE_LEN {
            self.trace.pop_front();
        }
        let line = format!("t={:>9}us {}", self.now, text());
        if self.trace_all {
            eprintln!("{line}");
        }
        self.trace.push_back(line);
    }

    pub fn run(mut self, seed: u64) -> Result<RunReport, Failure> {
        while let Some(Reverse(s)) = self.queue.pop() {
            if s.at > self.opts.end {
                break;
            }
            self.now = s.at;
            self.steps += 1;
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step(s.ev)));
            let violation = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(v)) => v,
                Err(panic) => format!(
                    "assertion failed inside the cluster: {}",
                    panic_text(&*panic)
                ),
            };
            return Err(Failure {
                seed,
                violation,
                trace: self.trace.into_iter().collect(),
            });
        }
        let transfer = match (W::transfer(self.transfer_split), self.transfer_seen()) {
            (None, _) | (Some(_), Some((true, _))) => Ok(()),
            (Some((request, _)), other) => Err(format!(
                "the transfer {request:?} did not finish after the cluster healed: {other:?}"
            )),
        };
        if let Err(violation) = transfer.and_then(|()| self.check_end()) {
            return Err(Failure {
                seed,
                violation,
                trace: self.trace.into_iter().collect(),
            });
        }
        self.hash.u64(self.checker.completed_ops);
        Ok(RunReport {
            seed,
            steps: self.steps,
            hash: self.hash.0,
            completed_ops: self.checker.completed_ops,
            ops_by_ministry: self.checker.ops_by_ministry.clone(),
            crashes: self.crashes,
            partitions: self.partitions,
            leader_changes: self.leader_changes,
            reconfigs: self.reconfigs,
            outcomes: self.workload.outcomes(),
        })
    }

    /// The workload's end check, over every live member of each ministry.
    fn check_end(&self) -> Result<(), Violation> {
        let mut members = Vec::new();
        for n in self.nodes.values().filter(|n| n.alive) {
            for index in n.core.shard_indexes() {
                let (Some(raft), Some(app)) = (n.core.shard_raft(index), n.core.app(index)) else {
                    continue;
                };
                members.push(MemberView {
                    ministry: raft.group(),
                    member: raft.id(),
                    applied: raft.status().applied,
                    app,
                });
            }
        }
        self.checker.check_end(&self.workload, &members)
    }

    fn step(&mut self, ev: Ev) -> Result<(), Violation> {
        let mut fx = Output::default();
        let mut acted_on: Option<NodeId> = None;
        match ev {
            Ev::Tick { node, incarnation } => {
                let n = self.nodes.get_mut(&node).expect("node exists");
                if !n.alive || n.incarnation != incarnation {
                    return Ok(());
                }
                n.tick(self.now, &mut fx);
                self.schedule(self.now + TICK, Ev::Tick { node, incarnation });
                acted_on = Some(node);
            }
            Ev::Sync {
                node,
                incarnation,
                disk,
                seq,
            } => {
                let n = &self.nodes[&node];
                if !n.alive || n.incarnation != incarnation {
                    return Ok(());
                }
                self.note(2, node, seq, || {
                    format!("node {node} synced {disk:?} #{seq}")
                });
                self.nodes
                    .get_mut(&node)
                    .expect("node exists")
                    .synced(self.now, disk, seq, &mut fx);
                acted_on = Some(node);
            }
            Ev::Deliver { from, to, msg } => match to {
                Addr::Node(id) => {
                    let n = self.nodes.get_mut(&id).expect("node exists");
                    if !n.alive {
                        return Ok(());
                    }
                    let (kind, a) = msg_digest(&msg);
                    self.note(3, id, kind ^ a, || {
                        format!("{from:?} -> node {id}: {}", describe(&msg))
                    });
                    let n = self.nodes.get_mut(&id).expect("node exists");
                    match msg {
                        NetMsg::Node(m) => n.receive(self.now, m, &mut fx),
                        NetMsg::Request(r) => n.client_request(self.now, r, &mut fx),
                        NetMsg::Transfer(r) => n.transfer_request(self.now, r, &mut fx),
                        NetMsg::Reply(_) => {}
                    }
                    acted_on = Some(id);
                }
                Addr::Client(c) => self.client_receive(c, from, msg)?,
            },
            Ev::ClientTick { client } => {
                self.client_tick(client);
                self.schedule(self.now + CLIENT_TICK, Ev::ClientTick { client });
            }
            Ev::Fault => acted_on = self.inject_fault(&mut fx),
            Ev::Restart { node } => {
                self.note(5, node, 0, || format!("node {node} restarts"));
                let n = self.nodes.get_mut(&node).expect("node exists");
                if !n.alive {
                    acted_on = Some(node);
                    n.restart(self.now, &mut fx);
                    let inc = n.incarnation;
                    self.schedule(
                        self.now + 1,
                        Ev::Tick {
                            node,
                            incarnation: inc,
                        },
                    );
                }
            }
            Ev::Heal { cut } => {
                for link in self.cuts.remove(&cut).unwrap_or_default() {
                    if let Some(c) = self.cut_links.get_mut(&link) {
                        *c -= 1;
                        if *c == 0 {
                            self.cut_links.remove(&link);
                        }
                    }
                }
                self.note(6, cut, 0, || format!("cut {cut} healed"));
            }
            Ev::LossBurstEnd => self.loss = 0.01,
            Ev::Transfer => self.start_transfer(),
        }
        self.apply_effects(acted_on, fx)
    }

    fn apply_effects(&mut self, node: Option<NodeId>, fx: Output) -> Result<(), Violation> {
        for obs in &fx.observed {
            self.checker.observe(obs)?;
            if let Observation::BecameLeader { node, group, term } = obs {
                self.leader_changes += 1;
                let (node, group, term) = (*node, *group, *term);
                self.note(7, node, term, || {
                    format!("node {node} leads group {group} at term {term}")
                });
                let n = &self.nodes[&node_of(node)];
                let raft = if group == PRESIDENT_GROUP {
                    Some(n.pres())
                } else {
                    n.shard_raft(index_of(node))
                };
                if let Some(raft) = raft.filter(|r| r.is_leader() && r.term() == term) {
                    self.checker.check_leader_log(raft)?;
                }
            }
        }
        let Some(node) = node else { return Ok(()) };
        let inc = self.nodes[&node].incarnation;
        for (disk, seq, _) in fx.persist {
            let at = self.now + self.rng.range(300, 3_000);
            self.schedule(
                at,
                Ev::Sync {
                    node,
                    incarnation: inc,
                    disk,
                    seq,
                },
            );
        }
        for (to, msg) in fx.send {
            self.send(Addr::Node(node), Addr::Node(to), NetMsg::Node(msg));
        }
        for (client, reply) in fx.replies {
            self.send(Addr::Node(node), Addr::Client(client), NetMsg::Reply(reply));
        }
        Ok(())
    }

    /// Messages name members (shards); the network carries them between nodes.
    fn send(&mut self, from: Addr, to: Addr, msg: NetMsg) {
        let on_node = |a: Addr| match a {
            Addr::Node(m) => Addr::Node(node_of(m)),
            other => other,
        };
        let (from, to) = (on_node(from), on_node(to));
        if let (Addr::Node(a), Addr::Node(b)) = (from, to) {
            if self.cut_links.contains_key(&(a, b)) {
                return;
            }
        }
        if self.rng.chance(self.loss) {
            return;
        }
        let copies = if self.rng.chance(0.01) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = if self.rng.chance(0.05) {
                self.rng.range(20_000, 150_000)
            } else {
                self.rng.range(200, 5_000)
            };
            self.schedule(
                self.now + delay,
                Ev::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
    }

    fn alive_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.alive)
            .map(|n| n.id())
            .collect()
    }

    fn cut(&mut self, links: Vec<(NodeId, NodeId)>, duration: Micros) {
        let id = self.next_cut;
        self.next_cut += 1;
        for l in &links {
            *self.cut_links.entry(*l).or_default() += 1;
        }
        self.cuts.insert(id, links);
        self.partitions += 1;
        self.schedule(self.now + duration, Ev::Heal { cut: id });
    }

    /// Returns the node that acted, if any, so its syncs get scheduled.
    fn inject_fault(&mut self, fx: &mut Output) -> Option<NodeId> {
        if self.now >= self.opts.fault_until {
            // Heal everything and bring every node back: the cluster must settle.
            let cuts: Vec<u64> = self.cuts.keys().copied().collect();
            for cut in cuts {
                self.schedule(self.now, Ev::Heal { cut });
            }
            for id in 1..=self.opts.nodes {
                if !self.nodes[&id].alive {
                    self.schedule(self.now, Ev::Restart { node: id });
                }
            }
            self.loss = 0.01;
            return None;
        }
        let alive = self.alive_nodes();
        let all: Vec<NodeId> = (1..=self.opts.nodes).collect();
        let roll = self.rng.range(0, 100);
        let mut acted = None;
        match roll {
            0..=29 if alive.len() + 2 > self.opts.nodes as usize => {
                let &victim = self.rng.pick(&alive)?;
                self.crashes += 1;
                self.note(8, victim, 0, || format!("node {victim} crashes"));
                let n = self.nodes.get_mut(&victim).expect("node exists");
                n.crash(&mut self.rng);
                let back = self.now + self.rng.range(100_000, 3_000_000);
                self.schedule(back, Ev::Restart { node: victim });
            }
            0..=54 => {
                let side: BTreeSet<NodeId> = all
                    .iter()
                    .copied()
                    .filter(|_| self.rng.chance(0.4))
                    .collect();
                let mut links = Vec::new();
                for a in &all {
                    for b in &all {
                        if side.contains(a) != side.contains(b) {
                            links.push((*a, *b));
                        }
                    }
                }
                let d = self.rng.range(300_000, 3_000_000);
                self.note(9, side.len() as u64, d, || {
                    format!("partition {side:?} from the rest for {d}us")
                });
                self.cut(links, d);
            }
            55..=79 => {
                // Thesis 6.2: only the minister cannot reach one clerk (maybe one way).
                let views: Vec<(NodeId, Vec<NodeId>)> = self
                    .nodes
                    .values()
                    .filter(|n| n.alive)
                    .flat_map(|n| {
                        n.core
                            .map()
                            .ministries
                            .values()
                            .filter_map(|m| m.minister.map(|x| (x, m.members.clone())))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let (minister, members) = self.rng.pick(&views).cloned()?;
                let clerks: Vec<NodeId> = members.into_iter().filter(|m| *m != minister).collect();
                let &clerk = self.rng.pick(&clerks)?;
                let (minister, clerk) = (node_of(minister), node_of(clerk));
                let links = if self.rng.chance(0.5) {
                    vec![(minister, clerk)]
                } else {
                    vec![(minister, clerk), (clerk, minister)]
                };
                let d = self.rng.range(500_000, 3_000_000);
                self.note(10, minister, clerk, || {
                    format!("cut minister {minister} from clerk {clerk}: {links:?} for {d}us")
                });
                self.cut(links, d);
            }
            80..=84 => {
                let &victim = self.rng.pick(&alive)?;
                let links: Vec<(NodeId, NodeId)> = all
                    .iter()
                    .filter(|o| **o != victim)
                    .flat_map(|o| [(victim, *o), (*o, victim)])
                    .collect();
                let d = self.rng.range(300_000, 2_000_000);
                self.note(11, victim, d, || format!("isolate node {victim} for {d}us"));
                self.cut(links, d);
            }
            85..=92 => {
                acted = self.reconfigure_president(fx);
            }
            _ => {
                self.loss = 0.3;
                let d = self.rng.range(200_000, 1_000_000);
                self.note(12, d, 0, || format!("30% message loss for {d}us"));
                self.schedule(self.now + d, Ev::LossBurstEnd);
            }
        }
        let next = self.now + self.rng.range(200_000, 1_000_000);
        self.schedule(next.min(self.opts.fault_until), Ev::Fault);
        acted
    }

    /// Change the president group's voter set by one: promote a live learner
    /// (up to 5 voters) or demote a voter, the president itself included (down to 3).
    fn reconfigure_president(&mut self, fx: &mut Output) -> Option<NodeId> {
        let leader = self
            .nodes
            .values()
            .find(|n| n.alive && n.pres().is_leader())?
            .id();
        let current = self.nodes[&leader].pres().membership().clone();
        let alive = self.alive_nodes();
        let learners: Vec<NodeId> = current
            .learners
            .iter()
            .copied()
            .filter(|l| alive.contains(l))
            .collect();
        let grow = current.voters.len() < 5 && (current.voters.len() <= 3 || self.rng.chance(0.5));
        let next = if grow {
            let add = *self.rng.pick(&learners)?;
            let voters = current.voters.iter().copied().chain([add]).collect();
            let learners = current
                .learners
                .iter()
                .copied()
                .filter(|l| *l != add)
                .collect();
            govfs_core::raft::Membership::new(voters, learners)
        } else {
            let drop = *self.rng.pick(&current.voters)?;
            let voters = current
                .voters
                .iter()
                .copied()
                .filter(|v| *v != drop)
                .collect();
            let learners = current.learners.iter().copied().chain([drop]).collect();
            govfs_core::raft::Membership::new(voters, learners)
        };
        let (voters, now) = (next.voters.clone(), self.now);
        let ok = self
            .nodes
            .get_mut(&leader)
            .expect("node exists")
            .change_president_voters(now, next, fx)
            .is_ok();
        self.note(14, leader, voters.len() as u64, || {
            format!("president {leader} proposes voters {voters:?}: accepted={ok}")
        });
        if ok {
            self.reconfigs += 1;
        }
        Some(leader)
    }

    /// The transfer as the map of any live node knows it: (finished, failure).
    fn transfer_seen(&self) -> Option<(bool, Option<String>)> {
        let (want, _) = W::transfer(self.transfer_split)?;
        let mut seen = None;
        for n in self.nodes.values().filter(|n| n.alive) {
            let t = &n.core.map().transfers;
            if let Some(f) = t.finished.values().find(|f| f.request == want) {
                return Some((true, f.failure.clone()));
            }
            if t.active.values().any(|a| a.request == want) {
                seen = Some((false, None));
            }
        }
        seen
    }

    fn start_transfer(&mut self) {
        let Some((req, writes_first)) = W::transfer(self.transfer_split) else {
            return;
        };
        let c = &self.clients[0];
        let written = c.seq >= writes_first && c.outstanding.is_none();
        if !written {
            self.schedule(self.now + 200_000, Ev::Transfer);
            return;
        }
        if self.transfer_seen().is_some() {
            return;
        }
        let alive = self.alive_nodes();
        let Some(&asked) = self.rng.pick(&alive) else {
            self.schedule(self.now + 300_000, Ev::Transfer);
            return;
        };
        // Like a client following a NotPresident hint: go where that node
        // believes the president is.
        let target = self.nodes[&asked]
            .core
            .president_view(self.now)
            .leader
            .unwrap_or(asked);
        self.note(15, target, 0, || {
            format!("ask node {target} to move {:?}", req.path)
        });
        self.send(Addr::Client(0), Addr::Node(target), NetMsg::Transfer(req));
        self.schedule(self.now + 300_000, Ev::Transfer);
    }

    fn client_tick(&mut self, id: u64) {
        let idx = (id - 1) as usize;
        let now = self.now;
        let stop_at = self.opts.end.saturating_sub(1_500_000);
        let c = &self.clients[idx];
        if let Some(o) = &c.outstanding {
            if now.saturating_sub(o.sent_at) >= CLIENT_TIMEOUT {
                // Resend the same request (same seq) elsewhere: it must apply once.
                let target = self.rng.range(1, self.opts.nodes + 1);
                let c = &mut self.clients[idx];
                c.target = target;
                let o = c.outstanding.as_mut().expect("checked");
                o.sent_at = now;
                let msg = NetMsg::Request(request::<W>(c.ministry, &o.cmd));
                self.send(Addr::Client(id), Addr::Node(target), msg);
            }
            return;
        }
        if now < c.next_op_at || now >= stop_at {
            return;
        }
        let (seq, ministry) = (c.seq + 1, c.ministry);
        let op = self.workload.next_op(&mut self.rng, id, seq, ministry, now);
        let floor = self.checker.invoke(c.ministry);
        let c = &mut self.clients[idx];
        c.seq += 1;
        let cmd = Command {
            client: id,
            seq: c.seq,
            op,
        };
        c.outstanding = Some(Outstanding {
            cmd: cmd.clone(),
            floor,
            sent_at: now,
        });
        let (target, ministry) = (c.target, c.ministry);
        self.send(
            Addr::Client(id),
            Addr::Node(target),
            NetMsg::Request(request::<W>(ministry, &cmd)),
        );
    }

    fn client_receive(&mut self, id: u64, from: Addr, msg: NetMsg) -> Result<(), Violation> {
        let NetMsg::Reply(reply) = msg else {
            return Ok(());
        };
        let seq = match &reply {
            ClientReply::Done { seq, .. } | ClientReply::NotLeader { seq, .. } => *seq,
            // Sessions here start at 1 and are never evicted (a handful of clients).
            ClientReply::UnknownSession { seq } => {
                return Err(format!(
                    "client {id} seq {seq}: its session was called unknown"
                ));
            }
            // Simulated clients name no term.
            ClientReply::StaleTerm { seq, term } => {
                return Err(format!(
                    "client {id} seq {seq}: called stale (term {term}) without naming a term"
                ));
            }
        };
        let idx = (id - 1) as usize;
        let Some(o) = self.clients[idx]
            .outstanding
            .as_ref()
            .filter(|o| o.cmd.seq == seq)
        else {
            return Ok(());
        };
        match reply {
            ClientReply::Done { index, output, .. } => {
                let result = W::decode_answer(&o.cmd.op, index, &output)
                    .ok_or_else(|| format!("client {id}: undecodable answer"))?;
                let (ministry, cmd, floor) = (self.clients[idx].ministry, o.cmd.clone(), o.floor);
                let at = W::answer_index(&result);
                self.note(13, id, at, || {
                    format!("client {id} seq {seq} done at index {at}: {:?}", cmd.op)
                });
                self.checker.complete(ministry, floor, &cmd, &result)?;
                self.workload.acknowledge(ministry, &cmd, &result);
                let think = self.rng.range(0, 20_000);
                let c = &mut self.clients[idx];
                c.outstanding = None;
                c.next_op_at = self.now + think;
            }
            ClientReply::UnknownSession { .. } | ClientReply::StaleTerm { .. } => {
                unreachable!("refused above")
            }
            ClientReply::NotLeader { hint, members, .. } => {
                let target = match hint {
                    Some(h) if Addr::Node(node_of(h)) != from => node_of(h),
                    _ => match self.rng.pick(&members) {
                        Some(m) => node_of(*m),
                        None => self.rng.range(1, self.opts.nodes + 1),
                    },
                };
                let c = &mut self.clients[idx];
                c.target = target;
                // Go to the hinted member at the next client tick's timeout check.
                if let Some(o) = c.outstanding.as_mut() {
                    o.sent_at = self.now.saturating_sub(CLIENT_TIMEOUT - 10_000);
                }
                let (ministry, cmd) = (c.ministry, c.outstanding.as_ref().map(|o| o.cmd.clone()));
                if let Some(cmd) = cmd {
                    self.send(
                        Addr::Client(id),
                        Addr::Node(target),
                        NetMsg::Request(request::<W>(ministry, &cmd)),
                    );
                    if let Some(o) = self.clients[idx].outstanding.as_mut() {
                        o.sent_at = self.now;
                    }
                }
            }
        }
        Ok(())
    }
}

fn request<W: Workload>(ministry: GroupId, cmd: &Command<W::Op>) -> ClientRequest {
    let command = W::command(&cmd.op);
    ClientRequest {
        ministry,
        client: cmd.client,
        seq: cmd.seq,
        command,
        term: None,
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

fn msg_digest(msg: &NetMsg) -> (u64, u64) {
    use govfs_core::raft::MessageBody as B;
    match msg {
        NetMsg::Node(NodeMsg::Raft(m)) => {
            let k = match &m.body {
                B::PreVote { .. } => 1,
                B::PreVoteResponse { .. } => 2,
                B::Vote { .. } => 3,
                B::VoteResponse { .. } => 4,
                B::Append { entries, .. } => 5 + ((entries.len() as u64) << 8),
                B::AppendResponse { index, .. } => 6 + (index << 8),
                B::InstallSnapshot { .. } => 7,
                B::SnapshotResponse { .. } => 8,
            };
            (k, m.term ^ (m.group << 40) ^ (m.from << 48))
        }
        NetMsg::Node(NodeMsg::Poll(a)) => (20, a.term),
        NetMsg::Node(NodeMsg::Report(r)) => (21, r.shard),
        NetMsg::Node(NodeMsg::Step { transfer, .. }) => (24, *transfer),
        NetMsg::Node(NodeMsg::StepDone { transfer, .. }) => (25, *transfer),
        NetMsg::Request(r) => (22, (r.client << 32) | r.seq),
        NetMsg::Transfer(r) => (26, r.ino),
        NetMsg::Reply(_) => (23, 0),
    }
}

fn describe(msg: &NetMsg) -> String {
    use govfs_core::raft::MessageBody as B;
    match msg {
        NetMsg::Node(NodeMsg::Raft(m)) => {
            let body = match &m.body {
                B::Append {
                    prev_index,
                    prev_term,
                    entries,
                    commit,
                } => {
                    format!(
                        "Append prev=({prev_index},{prev_term}) n={} commit={commit}",
                        entries.len()
                    )
                }
                B::InstallSnapshot { snapshot } => {
                    format!("InstallSnapshot up to {}", snapshot.meta.index)
                }
                other => format!("{other:?}"),
            };
            format!("raft g{} t{} {body}", m.group, m.term)
        }
        NetMsg::Node(NodeMsg::Poll(a)) => format!("poll answer {a:?}"),
        NetMsg::Node(NodeMsg::Report(r)) => {
            format!(
                "report {:?}",
                r.ministry
                    .as_ref()
                    .map(|m| (m.group, m.term, m.leader, m.commit))
            )
        }
        NetMsg::Node(NodeMsg::Step {
            transfer,
            step,
            ministry,
            ..
        }) => format!("transfer {transfer} step {step:?} in m{ministry}"),
        NetMsg::Node(NodeMsg::StepDone { transfer, step, .. }) => {
            format!("transfer {transfer} step {step:?} done")
        }
        NetMsg::Request(r) => format!("request m{} client {} seq {}", r.ministry, r.client, r.seq),
        NetMsg::Reply(r) => format!("reply {r:?}"),
        NetMsg::Transfer(r) => format!("transfer request {r:?}"),
    }
}
