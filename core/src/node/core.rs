//! `NodeCore`: the part of a node one core thread runs, driven sans-IO: the
//! node's president-group member (on one core only) and the core's shards.
//!
//! A node with one core runs one `NodeCore` with everything (the simulator
//! does this). A node with several cores runs one per core: the first hosts
//! the president member and passes what the president's log decides to the
//! others as [`MapUpdate`]s, together with who leads the president group and
//! when it was last heard from ([`PresidentView`]).

mod grants;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::app::App;
use super::leases::{LeaseOut, LeaseSettings, RaftView, ShardLeases};
use super::log_op::{Disk, LogOp};
use super::session::{Dedup, Sessions};
use super::shard::{Member, ParkedRead, Slot};
use super::wire::{
    ClientReply, ClientRequest, LeaseMsg, LeaseReply, LeaseRequest, NodeMsg, Proposal, ReadReply,
    ReadRequest, ShardStatus, TransferReply,
};
use super::{Observation, Output};
use crate::codec::{decode_exact, DecodeError};
use crate::data::GrantKey;
use crate::ids::{node_of, shard_id, ShardIndex};
use crate::president::{
    transfer_client, Applied, ClusterMap, DriverConfig, MemberReport, Order, PresidentDriver,
    ShardReport, Step, StepOrder, StorageSpace, TransferRequest,
};
use crate::raft::timing::Freshness;
use crate::raft::{
    Config, Entry, Event, GroupId, HardState, Index, InjectedFaults, Membership, Micros, Mode,
    NodeId, Payload, Raft, Ready, Snapshot, Status, PRESIDENT_GROUP,
};

#[derive(Clone, Debug)]
pub struct NodeTiming {
    pub heartbeat: Micros,
    pub election_timeout: Micros,
    /// H: members stop serving when they have not heard from their leader this long.
    pub serve_timeout: Micros,
    pub report_interval: Micros,
    /// Take a snapshot after this many applied entries.
    pub snapshot_every: u64,
    pub max_inflight: usize,
    pub max_append_bytes: usize,
}

#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The node's id: its president member's id and its shard 0's id.
    pub id: NodeId,
    /// Initial president voters and learners (a config entry in the log wins).
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub timing: NodeTiming,
    pub faults: InjectedFaults,
    pub driver: DriverConfig,
    /// Report every persisted and applied entry as an [`Observation`]. The
    /// simulator's checkers need them; a production node does not, and
    /// copying every entry twice more per turn is not free.
    pub observe_entries: bool,
    /// Whether this core hosts the node's president member.
    pub president: bool,
    /// The shards this core hosts.
    pub shards: Vec<ShardIndex>,
    /// The core's number on its node (reported in status).
    pub core: u32,
    /// Emit a [`MapUpdate`] for every applied president order, for the
    /// node's other cores.
    pub share_map: bool,
}

impl NodeConfig {
    /// Everything on one core: the president member and shards `0..shards`.
    pub fn single_core(&mut self, shards: ShardIndex) {
        self.president = true;
        self.shards = (0..shards).collect();
        self.core = 0;
        self.share_map = false;
    }
}

/// What the president's log decided, passed from the core that applies it to
/// the node's other cores, in log order.
#[derive(Clone, Debug)]
pub struct MapUpdate {
    pub applied: Applied,
    pub map: ClusterMap,
}

/// Who leads the president group and when this node last heard from it, as
/// the core hosting the president member sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PresidentView {
    pub leader: Option<NodeId>,
    pub contact: Option<Micros>,
}

/// The session-table client id of a minister's own bootstrap proposals.
const BOOTSTRAP_CLIENT: u64 = 0;

/// A log as recovered from disk.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    pub hs: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

/// A shard's log as recovered from disk, with the ministry it belonged to
/// (None when idle: the log then only carries the shard's term).
#[derive(Clone, Debug, Default)]
pub struct RecoveredShard {
    pub group: Option<GroupId>,
    pub log: Recovered,
}

struct President {
    raft: Raft,
    since_snapshot: u64,
    driver: Option<PresidentDriver>,
}

pub struct NodeCore<A: App> {
    cfg: NodeConfig,
    pres: Option<President>,
    /// The cluster map: applied here on the president's core, received
    /// through [`NodeCore::map_update`] elsewhere.
    map: ClusterMap,
    /// The president as seen from a core without the president member.
    view: PresidentView,
    shards: BTreeMap<ShardIndex, Slot<A>>,
    /// Messages waiting for a sync: released when (disk, seq) is durable.
    held: BTreeMap<(Disk, u64), Vec<(NodeId, NodeMsg)>>,
    /// Last sync sequence number issued per disk (never reused).
    last_sync: BTreeMap<Disk, u64>,
    /// Sync seq -> (shard generation, Ready number) to report to Raft when durable.
    syncs: BTreeMap<(Disk, u64), (u64, u64)>,
    /// Log operations staged for the next write of each disk (snapshots).
    staged: BTreeMap<Disk, Vec<LogOp>>,
    last_report: Micros,
    /// Leases (issue 5), when the engine turned them on.
    leases: Option<LeaseSettings>,
    /// See [`NodeCore::defer_turns`].
    defer_turns: bool,
    /// A call left Raft work for [`NodeCore::finish_turn`].
    turn_pending: bool,
    /// Signs write grants (issue 6), when the engine gave it the key.
    grant_key: Option<Arc<GrantKey>>,
    /// The wall clock (µs since the epoch) at `now` = 0, for grant expiry.
    unix_at_zero: Option<u64>,
    /// This node's storage space, as the engine last measured it.
    space: Option<StorageSpace>,
}

impl<A: App> NodeCore<A> {
    /// A node with empty logs.
    pub fn new(cfg: NodeConfig, now: Micros) -> Self {
        Self::recover(cfg, Recovered::default(), BTreeMap::new(), now)
            .expect("empty logs always recover")
    }

    /// A node restarted from its logs: the president member's (ignored on a
    /// core without it) and each shard's (a shard of the config missing from
    /// `shards` starts empty).
    pub fn recover(
        cfg: NodeConfig,
        pres: Recovered,
        mut shards: BTreeMap<ShardIndex, RecoveredShard>,
        now: Micros,
    ) -> Result<Self, DecodeError> {
        assert!(
            cfg.president || !cfg.shards.is_empty(),
            "a core hosts the president member or shards"
        );
        let mut map = ClusterMap::new();
        let president = if cfg.president {
            let membership = Membership::new(cfg.voters.clone(), cfg.learners.clone());
            if let Some(s) = &pres.snapshot {
                map = ClusterMap::decode(&s.data)?;
            }
            let c = raft_config(&cfg, cfg.id, PRESIDENT_GROUP, Mode::Elected);
            let raft = Raft::restore(c, pres.hs, pres.snapshot, pres.entries, membership, now);
            Some(President {
                raft,
                since_snapshot: 0,
                driver: None,
            })
        } else {
            None
        };
        let mut slots = BTreeMap::new();
        for &index in &cfg.shards {
            let id = shard_id(cfg.id, index);
            let rec = shards.remove(&index).unwrap_or_default();
            let member = match rec.group {
                None => None,
                Some(group) => {
                    let (sessions, app) = match &rec.log.snapshot {
                        Some(s) => Member::<A>::restore(&s.data)?,
                        None => (Sessions::default(), A::default()),
                    };
                    let c = raft_config(&cfg, id, group, Mode::Appointed);
                    let raft = Raft::restore(
                        c,
                        rec.log.hs,
                        rec.log.snapshot,
                        rec.log.entries,
                        Membership::default(),
                        now,
                    );
                    Some(Member {
                        raft,
                        app,
                        sessions,
                        since_snapshot: 0,
                    })
                }
            };
            let slot = Slot {
                index,
                id,
                member,
                idle_term: rec.log.hs.term,
                generation: 0,
                waiting: Default::default(),
                parked: Vec::new(),
                steps: BTreeMap::new(),
                leases: ShardLeases::new(id),
            };
            slots.insert(index, slot);
        }
        Ok(NodeCore {
            cfg,
            pres: president,
            map,
            view: PresidentView::default(),
            shards: slots,
            held: BTreeMap::new(),
            last_sync: BTreeMap::new(),
            syncs: BTreeMap::new(),
            staged: BTreeMap::new(),
            last_report: now,
            leases: None,
            defer_turns: false,
            turn_pending: false,
            grant_key: None,
            unix_at_zero: None,
            space: None,
        })
    }

    /// Run leases on this core's shards (see `node/leases.rs`). Off by
    /// default: the production engine turns them on; the simulator's nodes
    /// do not run them yet (`core/tests/lease_sim.rs` simulates the lease
    /// core alone).
    pub fn enable_leases(&mut self, settings: LeaseSettings) {
        settings.config.validate();
        self.leases = Some(settings);
    }

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }
    /// The president member's Raft, on the core that hosts it.
    pub fn president_raft(&self) -> Option<&Raft> {
        self.pres.as_ref().map(|p| &p.raft)
    }
    pub fn map(&self) -> &ClusterMap {
        &self.map
    }
    /// The shards this core hosts, in index order.
    pub fn shard_indexes(&self) -> impl Iterator<Item = ShardIndex> + '_ {
        self.shards.keys().copied()
    }
    /// A shard's Raft, when it serves a ministry.
    pub fn shard_raft(&self, index: ShardIndex) -> Option<&Raft> {
        self.shards
            .get(&index)
            .and_then(|s| s.member.as_ref())
            .map(|m| &m.raft)
    }
    pub fn app(&self, index: ShardIndex) -> Option<&A> {
        self.shards
            .get(&index)
            .and_then(|s| s.member.as_ref())
            .map(|m| &m.app)
    }
    /// The shard of this core serving `ministry`, if any.
    pub fn shard_of(&self, ministry: GroupId) -> Option<ShardIndex> {
        self.shards
            .values()
            .find(|s| s.group() == Some(ministry))
            .map(|s| s.index)
    }

    /// The president as this core sees it: from its own member, or as last
    /// told by [`NodeCore::set_president_view`].
    pub fn president_view(&self, now: Micros) -> PresidentView {
        match &self.pres {
            Some(p) => PresidentView {
                leader: p.raft.leader(),
                contact: self.president_contact(now),
            },
            None => self.view,
        }
    }

    /// On a core without the president member: who leads the president
    /// group and when the node last heard from it.
    pub fn set_president_view(&mut self, view: PresidentView) {
        debug_assert!(self.pres.is_none(), "the president's core has its own view");
        self.view = view;
    }

    /// On a core without the president member: apply what the president's
    /// log decided, in order.
    pub fn map_update(&mut self, now: Micros, update: MapUpdate, out: &mut Output) {
        debug_assert!(
            self.pres.is_none(),
            "the president's core applies its own log"
        );
        self.map = update.map;
        self.react(now, update.applied, out);
        self.after_call(now, out);
    }

    /// On the president: propose one change of the voter set.
    pub fn change_president_voters(
        &mut self,
        now: Micros,
        next: Membership,
        out: &mut Output,
    ) -> Result<(), crate::raft::ProposeError> {
        let result = match &mut self.pres {
            Some(p) => p.raft.propose_membership(next).map(|_| ()),
            None => Err(crate::raft::ProposeError::NotLeader {
                leader: self.view.leader,
            }),
        };
        self.after_call(now, out);
        result
    }

    pub fn tick(&mut self, now: Micros, out: &mut Output) {
        if let Some(p) = &mut self.pres {
            p.raft.tick(now);
            if let Some(driver) = &mut p.driver {
                let mut orders = driver.tick(now, &self.map, self.cfg.id);
                let (more, steps) = driver.transfer_tick(now, &self.map);
                orders.extend(more);
                for order in orders {
                    // A full or lost proposal is retried by the driver's timeouts.
                    let _ = p
                        .raft
                        .propose(postcard::to_stdvec(&order).expect("orders encode"));
                }
                for step in steps {
                    self.send_step(now, step, out);
                }
            }
        }
        for s in self.shards.values_mut() {
            if let Some(m) = &mut s.member {
                m.raft.tick(now);
            }
        }
        let indexes: Vec<ShardIndex> = self.shards.keys().copied().collect();
        for i in indexes {
            self.release_reads(now, i, out);
            let serving = self.serving(i, now);
            self.lease_step(now, i, out, |s, l, o| l.tick(s, now, serving, o));
        }
        if now.saturating_sub(self.last_report) >= self.cfg.timing.report_interval {
            self.last_report = now;
            self.report(now, out);
        }
        self.after_call(now, out);
    }

    /// Every shard tells the president where it stands.
    fn report(&mut self, now: Micros, out: &mut Output) {
        let reports: Vec<MemberReport> = self
            .shards
            .values()
            .map(|s| MemberReport {
                shard: s.id,
                space: self.space,
                ministry: s.member.as_ref().map(|m| {
                    let st = m.raft.status();
                    ShardReport {
                        group: st.group,
                        term: st.term,
                        leader: m.raft.is_leader(),
                        commit: st.commit,
                        commit_term: m.raft.log().term(st.commit).unwrap_or(0),
                        unreachable: {
                            let mut u = m.raft.unreachable_members(now);
                            // Clerks the lease minister counts fenced (2H without a round trip).
                            for c in s.leases.fenced_clerks() {
                                if !u.contains(&c) {
                                    u.push(c);
                                }
                            }
                            u
                        },
                    }
                }),
            })
            .collect();
        let Some(leader) = self.president_leader() else {
            return;
        };
        for r in reports {
            self.emit(now, leader, NodeMsg::Report(r), out);
        }
    }

    fn president_leader(&self) -> Option<NodeId> {
        match &self.pres {
            Some(p) => p.raft.leader(),
            None => self.view.leader,
        }
    }

    pub fn receive(&mut self, now: Micros, msg: NodeMsg, out: &mut Output) {
        match msg {
            NodeMsg::Raft(m) if m.group == PRESIDENT_GROUP => {
                if let Some(p) = &mut self.pres {
                    p.raft.step(now, m);
                }
            }
            NodeMsg::Raft(m) => {
                if let Some(member) = self
                    .shards
                    .values_mut()
                    .find(|s| s.id == m.to)
                    .and_then(|s| s.member.as_mut())
                    .filter(|mb| mb.raft.group() == m.group)
                {
                    member.raft.step(now, m);
                }
            }
            NodeMsg::Poll(a) => {
                if let Some(d) = self.pres.as_mut().and_then(|p| p.driver.as_mut()) {
                    d.on_poll_answer(a)
                }
            }
            NodeMsg::Report(r) => {
                if let Some(d) = self.pres.as_mut().and_then(|p| p.driver.as_mut()) {
                    d.on_report(now, r)
                }
            }
            NodeMsg::Step {
                transfer,
                step,
                ministry,
                command,
            } => self.run_step(now, transfer, step, ministry, command, out),
            NodeMsg::StepDone {
                transfer,
                step,
                output,
            } => self.step_done(transfer, step, &output),
        }
        self.after_call(now, out);
    }

    /// On the president: send a transfer step to the ministry's minister.
    fn send_step(&mut self, now: Micros, order: StepOrder, out: &mut Output) {
        let command = A::transfer_command(&order.transfer, order.step, order.image.as_deref());
        let Some(command) = command else {
            self.step_done_result(
                order.transfer.id,
                order.step,
                Err("this application cannot move state between ministries".into()),
            );
            return;
        };
        let msg = NodeMsg::Step {
            transfer: order.transfer.id,
            step: order.step,
            ministry: order.ministry,
            command,
        };
        let to = node_of(order.minister);
        if to == self.cfg.id {
            // Our own shard leads that ministry (when it is on this core).
            if self.shard_of(order.ministry).is_some() {
                if let NodeMsg::Step {
                    transfer,
                    step,
                    ministry,
                    command,
                } = msg
                {
                    self.run_step(now, transfer, step, ministry, command, out);
                }
                return;
            }
        }
        out.send.push((to, msg));
    }

    /// On a minister: propose a transfer step as the transfer's own session
    /// (exactly once), or answer at once if it was applied already.
    fn run_step(
        &mut self,
        now: Micros,
        transfer: u64,
        step: Step,
        ministry: GroupId,
        command: Vec<u8>,
        out: &mut Output,
    ) {
        let Some(index) = self.shard_of(ministry) else {
            return;
        };
        let leader = self.president_leader();
        let slot = self.shards.get_mut(&index).expect("found");
        let Some(m) = slot.member.as_mut() else {
            return;
        };
        if !(m.raft.is_leader() && m.raft.is_serving(now)) {
            return; // the president sends it again to whoever leads then
        }
        let (client, seq) = (transfer_client(transfer), step.seq());
        match m.sessions.check(client, seq) {
            Dedup::Done(_, output) => {
                if let Some(leader) = leader {
                    let done = NodeMsg::StepDone {
                        transfer,
                        step,
                        output: output.to_vec(),
                    };
                    self.emit(now, leader, done, out);
                }
            }
            Dedup::Stale | Dedup::Unknown => {}
            Dedup::New if slot.steps.contains_key(&(client, seq)) => {}
            Dedup::New => {
                let p = Proposal {
                    client,
                    seq,
                    command,
                };
                if m.raft
                    .propose(postcard::to_stdvec(&p).expect("proposals encode"))
                    .is_ok()
                {
                    slot.steps.insert((client, seq), (transfer, step));
                }
            }
        }
    }

    /// On the president: a ministry answered a transfer step.
    fn step_done(&mut self, transfer: u64, step: Step, output: &[u8]) {
        let result = A::transfer_outcome(step, output);
        self.step_done_result(transfer, step, result);
    }

    fn step_done_result(&mut self, transfer: u64, step: Step, result: Result<Vec<u8>, String>) {
        let Some(p) = &mut self.pres else { return };
        let Some(d) = &mut p.driver else { return };
        if let Some(order) = d.on_step_done(&self.map, transfer, step, result) {
            let _ = p
                .raft
                .propose(postcard::to_stdvec(&order).expect("orders encode"));
        }
    }

    /// A client asks to move part of the namespace: the president proposes it.
    pub fn transfer_request(
        &mut self,
        now: Micros,
        request: TransferRequest,
        out: &mut Output,
    ) -> TransferReply {
        let reply = match &mut self.pres {
            Some(p) if p.raft.is_leader() => {
                let order = Order::BeginTransfer { request };
                match p
                    .raft
                    .propose(postcard::to_stdvec(&order).expect("orders encode"))
                {
                    Ok(_) => TransferReply::Proposed,
                    Err(_) => TransferReply::NotPresident {
                        hint: p.raft.leader(),
                    },
                }
            }
            _ => TransferReply::NotPresident {
                hint: self.president_leader(),
            },
        };
        self.after_call(now, out);
        reply
    }

    /// A client's change. Answered now (redirect, or an already applied
    /// request) or once it is applied.
    pub fn client_request(&mut self, now: Micros, req: ClientRequest, out: &mut Output) {
        let (client, seq) = (req.client, req.seq);
        let index = self.shard_of(req.ministry);
        let serving = index.is_some_and(|i| {
            self.shard_raft(i)
                .is_some_and(|r| r.is_leader() && r.is_serving(now))
        });
        if let (Some(index), true) = (index, serving) {
            let slot = self.shards.get_mut(&index).expect("found above");
            let m = slot.member.as_mut().expect("serving");
            let term = m.raft.term();
            if req.term.is_some_and(|t| t < term) {
                out.replies
                    .push((client, ClientReply::StaleTerm { seq, term }));
                return;
            }
            // Until this minister has applied an entry of its own term, its
            // session table may lag the committed log (a restarted shard
            // appointed again replays it): only "done" is certain then, and
            // anything else is proposed and decided when applied.
            let caught_up = applied_own_term(&m.raft);
            match m.sessions.check(client, seq) {
                Dedup::Done(at, output) => {
                    out.replies.push((
                        client,
                        ClientReply::Done {
                            seq,
                            index: at,
                            output: output.to_vec(),
                        },
                    ));
                }
                Dedup::Stale if caught_up => {}
                Dedup::Unknown if caught_up => out
                    .replies
                    .push((client, ClientReply::UnknownSession { seq })),
                Dedup::New | Dedup::Stale | Dedup::Unknown
                    if slot.waiting.contains(&(client, seq)) => {}
                Dedup::New | Dedup::Stale | Dedup::Unknown => {
                    let command = m.app.prepare(&req.command, &self.map);
                    let p = Proposal {
                        client,
                        seq,
                        command: command.unwrap_or(req.command),
                    };
                    if m.raft
                        .propose(postcard::to_stdvec(&p).expect("proposals encode"))
                        .is_ok()
                    {
                        slot.waiting.insert((client, seq));
                    }
                }
            }
            self.after_call(now, out);
            return;
        }
        let info = self.map.ministries.get(&req.ministry);
        let own: Vec<NodeId> = self.shards.values().map(|s| s.id).collect();
        let hint = index
            .and_then(|i| self.shard_raft(i))
            .and_then(|r| r.leader())
            .filter(|l| !own.contains(l))
            .or_else(|| info.and_then(|i| i.minister));
        let members = info.map(|i| i.members.clone()).unwrap_or_default();
        out.replies
            .push((client, ClientReply::NotLeader { seq, hint, members }));
    }

    /// A read from the applied state (session consistency, see
    /// [`ReadRequest`]). Answered now, or once this shard has applied
    /// `min_index`, or with `Elsewhere` when it cannot serve; the answer
    /// carries `token`.
    pub fn read(&mut self, now: Micros, req: ReadRequest, token: u64, out: &mut Output) {
        let index = self.shard_of(req.ministry);
        let serving = index.is_some_and(|i| self.serving(i, now));
        let Some(index) = index.filter(|_| serving) else {
            out.reads.push((token, self.elsewhere(req.ministry, index)));
            return;
        };
        let wait = self.cfg.timing.serve_timeout;
        let slot = self.shards.get_mut(&index).expect("found above");
        let m = slot.member.as_ref().expect("serving");
        if caught_up(&m.raft, req.min_index) {
            out.reads.push((token, answer_read(m, &req.query)));
            return;
        }
        slot.parked.push(ParkedRead {
            token,
            min_index: req.min_index,
            query: req.query,
            until: now.saturating_add(wait),
        });
    }

    /// A client's lease request (see [`LeaseRequest`]): answered now or,
    /// for a write acquire or a watch, later; the answer carries `token`.
    pub fn lease(&mut self, now: Micros, req: LeaseRequest, token: u64, out: &mut Output) {
        if self.leases.is_none() {
            out.leases.push((
                token,
                LeaseReply::Refused(super::wire::LeaseRefusal::NotServing(
                    crate::lease::NotServing::Fenced,
                )),
            ));
            return;
        }
        let ministry = req.ministry();
        let index = self.shard_of(ministry);
        let Some(index) = index else {
            let (hint, members) = match self.elsewhere(ministry, None) {
                ReadReply::Elsewhere { hint, members } => (hint, members),
                _ => (None, Vec::new()),
            };
            out.leases
                .push((token, LeaseReply::Elsewhere { hint, members }));
            return;
        };
        if matches!(
            req,
            LeaseRequest::Grants { .. } | LeaseRequest::DeleteGrants { .. }
        ) {
            self.write_grants(now, index, req, token, out);
            return;
        }
        let (hint, members) = match self.elsewhere(ministry, Some(index)) {
            ReadReply::Elsewhere { hint, members } => (hint, members),
            _ => (None, Vec::new()),
        };
        self.lease_step(now, index, out, |s, l, o| {
            l.request(s, now, req, token, (hint, members), o)
        });
        self.after_call(now, out);
    }

    /// A lease message from another node's shard to one of ours.
    pub fn receive_lease(&mut self, now: Micros, msg: LeaseMsg, out: &mut Output) {
        let Some(i) = self.shard_with_id(msg.to()) else {
            return;
        };
        match msg {
            LeaseMsg::LockBatch {
                ministry, batch, ..
            } => self.lease_step(now, i, out, |s, l, o| {
                l.on_batch(s, now, ministry, batch, o)
            }),
            LeaseMsg::ClerkReply {
                ministry, reply, ..
            } => self.lease_step(now, i, out, |s, l, o| {
                l.on_reply(s, now, ministry, reply, o)
            }),
        }
        self.after_call(now, out);
    }

    /// The shard of this core whose id is `id`.
    fn shard_with_id(&self, id: NodeId) -> Option<ShardIndex> {
        self.shards.values().find(|s| s.id == id).map(|s| s.index)
    }

    /// Bring shard `index`'s lease role in line with its Raft, run `f` on
    /// it, and carry out what came of it.
    fn lease_step(
        &mut self,
        now: Micros,
        index: ShardIndex,
        out: &mut Output,
        f: impl FnOnce(&LeaseSettings, &mut ShardLeases, &mut LeaseOut),
    ) {
        let Some(settings) = &self.leases else {
            return;
        };
        let Some(slot) = self.shards.get_mut(&index) else {
            return;
        };
        let view = slot.member.as_ref().map(|m| {
            let st = m.raft.status();
            RaftView {
                group: st.group,
                term: st.term,
                leader: m.raft.is_leader(),
                voters: m.raft.membership().voters.clone(),
                applied: st.applied,
            }
        });
        let mut lo = LeaseOut::default();
        slot.leases.sync(settings, now, view.as_ref(), &mut lo);
        f(settings, &mut slot.leases, &mut lo);
        out.leases.extend(lo.answers);
        // A ministry's members are on distinct nodes: these always leave the node.
        out.lease_send.extend(lo.send);
    }

    /// Where to send a read this core cannot answer.
    fn elsewhere(&self, ministry: GroupId, index: Option<ShardIndex>) -> ReadReply {
        let info = self.map.ministries.get(&ministry);
        let hint = index
            .and_then(|i| self.shard_raft(i))
            .and_then(|r| r.leader())
            .or_else(|| info.and_then(|i| i.minister));
        ReadReply::Elsewhere {
            hint,
            members: info.map(|i| i.members.clone()).unwrap_or_default(),
        }
    }

    /// Answer the parked reads of shard `index` that can be answered now,
    /// and send away those that waited too long or can no longer be served.
    fn release_reads(&mut self, now: Micros, index: ShardIndex, out: &mut Output) {
        if self.shards.get(&index).is_none_or(|s| s.parked.is_empty()) {
            return;
        }
        let serving = self.serving(index, now);
        let slot = self.shards.get_mut(&index).expect("hosted");
        let group = slot.group();
        let parked = std::mem::take(&mut slot.parked);
        let mut away = Vec::new();
        for p in parked {
            let slot = self.shards.get_mut(&index).expect("hosted");
            match slot.member.as_ref().filter(|_| serving) {
                Some(m) if caught_up(&m.raft, p.min_index) => {
                    out.reads.push((p.token, answer_read(m, &p.query)));
                }
                Some(_) if now < p.until => slot.parked.push(p),
                _ => away.push(p.token),
            }
        }
        if !away.is_empty() {
            let reply = match group {
                Some(g) => self.elsewhere(g, Some(index)),
                None => ReadReply::Elsewhere {
                    hint: None,
                    members: Vec::new(),
                },
            };
            for token in away {
                out.reads.push((token, reply.clone()));
            }
        }
    }

    /// The engine made `(disk, seq)` durable (and every earlier seq of that disk).
    pub fn synced(&mut self, now: Micros, disk: Disk, seq: u64, out: &mut Output) {
        let done: Vec<(Disk, u64)> = self
            .syncs
            .range((disk, 0)..=(disk, seq))
            .map(|(k, _)| *k)
            .collect();
        for key in done {
            let (generation, number) = self.syncs.remove(&key).expect("listed");
            match disk {
                Disk::President => {
                    if let Some(p) = &mut self.pres {
                        p.raft.persisted(number)
                    }
                }
                Disk::Shard(i) => {
                    if let Some(m) = self
                        .shards
                        .get_mut(&i)
                        .filter(|s| s.generation == generation)
                        .and_then(|s| s.member.as_mut())
                    {
                        m.raft.persisted(number);
                    }
                }
            }
        }
        let released: Vec<(Disk, u64)> = self
            .held
            .range((disk, 0)..=(disk, seq))
            .map(|(k, _)| *k)
            .collect();
        for key in released {
            for (to, msg) in self.held.remove(&key).unwrap_or_default() {
                self.emit(now, to, msg, out);
            }
        }
        self.after_call(now, out);
    }

    /// A new minister proposes what its application needs first. They go
    /// through the session table as client 0 with ids that grow with the
    /// term, so a later minister's bootstrap is never taken for a resend.
    fn propose_bootstrap(&mut self, index: ShardIndex, group: GroupId, term: u64) {
        let ranges = self
            .map
            .inode_ranges
            .get(&group)
            .cloned()
            .unwrap_or_default();
        let Some(m) = self.shards.get_mut(&index).and_then(|s| s.member.as_mut()) else {
            return;
        };
        for (i, command) in m.app.on_appointed(group, &ranges).into_iter().enumerate() {
            let p = Proposal {
                client: BOOTSTRAP_CLIENT,
                seq: term * 1024 + i as u64,
                command,
            };
            // Only a leader reaches here; a refused proposal means it already stepped down.
            let _ = m
                .raft
                .propose(postcard::to_stdvec(&p).expect("proposals encode"));
        }
    }

    /// Send `msg`, or handle it here when it is for the president driver
    /// this core runs (the president's own shards answer polls and report).
    fn emit(&mut self, now: Micros, to: NodeId, msg: NodeMsg, out: &mut Output) {
        let driver = self
            .pres
            .as_mut()
            .filter(|_| to == self.cfg.id)
            .and_then(|p| p.driver.as_mut());
        match (msg, driver) {
            (NodeMsg::Poll(a), Some(d)) => d.on_poll_answer(a),
            (NodeMsg::Report(r), Some(d)) => d.on_report(now, r),
            (
                NodeMsg::StepDone {
                    transfer,
                    step,
                    output,
                },
                Some(_),
            ) => self.step_done(transfer, step, &output),
            (msg, _) => {
                // Raft never addresses itself, and a ministry's members are on distinct nodes.
                debug_assert!(
                    !matches!(&msg, NodeMsg::Raft(m) if node_of(m.to) == self.cfg.id),
                    "a Raft message to this node: {msg:?}"
                );
                out.send.push((to, msg));
            }
        }
    }

    /// Batch Raft's work over many calls: with `on`, the entry points
    /// (`receive`, `client_request`, `synced`, `tick`, ...) only record that
    /// work is pending, and the engine calls [`NodeCore::finish_turn`] once
    /// it has fed every event of its loop turn. Then one turn makes one
    /// `Ready` per Raft: one log write, one append per follower and one
    /// acknowledgement for everything that arrived together, instead of one
    /// per message. Off (the default), every call ends with a turn.
    pub fn defer_turns(&mut self, on: bool) {
        self.defer_turns = on;
    }

    /// Whether a call since the last [`NodeCore::finish_turn`] left work.
    pub fn turn_pending(&self) -> bool {
        self.turn_pending
    }

    /// Run the turn the calls since the last one deferred (nothing when
    /// none did).
    pub fn finish_turn(&mut self, now: Micros, out: &mut Output) {
        if std::mem::take(&mut self.turn_pending) {
            self.turn(now, out);
        }
    }

    fn after_call(&mut self, now: Micros, out: &mut Output) {
        if self.defer_turns {
            self.turn_pending = true;
        } else {
            self.turn(now, out);
        }
    }

    /// Drain every Raft until none has work: the end of one loop turn.
    fn turn(&mut self, now: Micros, out: &mut Output) {
        for _ in 0..8 {
            let mut busy = false;
            let pres_ready = self.pres.as_ref().is_some_and(|p| p.raft.has_ready())
                || self.staged.contains_key(&Disk::President);
            if pres_ready {
                if let Some(p) = &mut self.pres {
                    busy = true;
                    let rd = p.raft.ready();
                    self.handle_ready(now, Disk::President, rd, out);
                }
            }
            let indexes: Vec<ShardIndex> = self.shards.keys().copied().collect();
            for i in indexes {
                let disk = Disk::Shard(i);
                let slot = &mut self.shards.get_mut(&i).expect("listed");
                let Some(m) = slot.member.as_mut() else {
                    continue;
                };
                if m.raft.has_ready() || self.staged.contains_key(&disk) {
                    busy = true;
                    let rd = m.raft.ready();
                    self.handle_ready(now, disk, rd, out);
                }
            }
            if !busy {
                break;
            }
        }
    }

    fn handle_ready(&mut self, now: Micros, disk: Disk, rd: Ready, out: &mut Output) {
        let (member_id, group, generation) = match disk {
            Disk::President => (self.cfg.id, PRESIDENT_GROUP, 0),
            Disk::Shard(i) => {
                let s = &self.shards[&i];
                (s.id, s.group().unwrap_or(0), s.generation)
            }
        };
        let mut ops = self.staged.remove(&disk).unwrap_or_default();
        if let Some(hs) = rd.hard_state {
            ops.push(LogOp::HardState(hs));
        }
        if let Some(s) = &rd.snapshot {
            out.observed.push(Observation::LogReset {
                node: member_id,
                group,
                index: s.meta.index,
                term: s.meta.term,
            });
            self.install_snapshot(disk, s);
            ops.push(LogOp::Install(s.clone()));
        }
        if !rd.entries.is_empty() {
            if self.cfg.observe_entries {
                out.observed.push(Observation::Persisted {
                    node: member_id,
                    group,
                    entries: rd.entries.clone(),
                });
            }
            ops.push(LogOp::Entries(rd.entries));
        }
        let mut later: Vec<(NodeId, NodeMsg)> = rd
            .persisted_messages
            .into_iter()
            .map(|m| (m.to, NodeMsg::Raft(m)))
            .collect();
        if let Some(pl) = self.president_leader() {
            later.extend(rd.poll_answers.into_iter().map(|a| (pl, NodeMsg::Poll(a))));
        }
        if !ops.is_empty() {
            let seq = self.last_sync.get(&disk).copied().unwrap_or(0) + 1;
            self.last_sync.insert(disk, seq);
            out.persist.push((disk, seq, ops));
            self.syncs.insert((disk, seq), (generation, rd.number));
            self.held.entry((disk, seq)).or_default().extend(later);
        } else if let Some(&seq) = self
            .last_sync
            .get(&disk)
            .filter(|s| self.held.contains_key(&(disk, **s)))
        {
            // Nothing new to write, but an earlier sync is still in flight.
            self.held.entry((disk, seq)).or_default().extend(later);
        } else {
            for (to, msg) in later {
                self.emit(now, to, msg, out);
            }
        }
        for m in rd.messages {
            out.send.push((m.to, NodeMsg::Raft(m)));
        }
        for ev in rd.events {
            match ev {
                Event::BecameLeader { term } => {
                    out.observed.push(Observation::BecameLeader {
                        node: member_id,
                        group,
                        term,
                    });
                    match disk {
                        Disk::President => {
                            if let Some(p) = &mut self.pres {
                                p.driver = Some(PresidentDriver::new(self.cfg.driver.clone(), now))
                            }
                        }
                        Disk::Shard(i) => self.propose_bootstrap(i, group, term),
                    }
                }
                Event::SteppedDown { .. } => match disk {
                    Disk::President => {
                        if let Some(p) = &mut self.pres {
                            p.driver = None
                        }
                    }
                    Disk::Shard(i) => {
                        if let Some(s) = self.shards.get_mut(&i) {
                            s.waiting.clear();
                            s.steps.clear();
                        }
                    }
                },
            }
        }
        let applied_any = !rd.committed.is_empty();
        for entry in rd.committed {
            match disk {
                Disk::President => self.apply_order(now, entry, out),
                Disk::Shard(i) => self.apply_command(now, i, entry, out),
            }
        }
        if let (Disk::Shard(i), true) = (disk, applied_any) {
            self.release_reads(now, i, out);
            // The clerk learns the applied index (locks wait for it).
            self.lease_step(now, i, out, |_, _, _| {});
        }
    }

    fn install_snapshot(&mut self, disk: Disk, s: &Snapshot) {
        // A leader's snapshot that does not decode is a bug on the leader's
        // side; keeping our state is the only safe answer.
        match disk {
            Disk::President => {
                if let Ok(map) = ClusterMap::decode(&s.data) {
                    self.map = map;
                }
            }
            Disk::Shard(i) => {
                if let (Some(m), Ok((sessions, app))) = (
                    self.shards.get_mut(&i).and_then(|s| s.member.as_mut()),
                    Member::<A>::restore(&s.data),
                ) {
                    m.sessions = sessions;
                    m.app = app;
                }
            }
        }
    }

    fn apply_command(&mut self, now: Micros, index: ShardIndex, entry: Entry, out: &mut Output) {
        let observe = self.cfg.observe_entries;
        let snapshot_every = self.cfg.timing.snapshot_every;
        let Some(slot) = self.shards.get_mut(&index) else {
            return;
        };
        let Some(m) = slot.member.as_mut() else {
            return;
        };
        let group = m.raft.group();
        let mut result = None;
        let mut step_answers = Vec::new();
        if let Payload::Command(bytes) = &entry.payload {
            // Proposals are encoded by us; one that does not decode is skipped on every member alike.
            if let Ok(p) = decode_exact::<Proposal>(bytes) {
                let answer = match m.sessions.check(p.client, p.seq) {
                    Dedup::Done(at, output) => Some((at, output.to_vec())),
                    // Checked again here: a proposal made before an
                    // eviction must not apply without its guarantee. A
                    // stale request gets no answer (its client moved on),
                    // but is no longer owed one.
                    Dedup::Stale => {
                        slot.waiting.remove(&(p.client, p.seq));
                        None
                    }
                    Dedup::Unknown => {
                        if slot.waiting.remove(&(p.client, p.seq)) {
                            let reply = ClientReply::UnknownSession { seq: p.seq };
                            out.replies.push((p.client, reply));
                        }
                        None
                    }
                    Dedup::New => {
                        let output = m.app.apply(entry.index, &p.command);
                        m.sessions
                            .record(p.client, p.seq, entry.index, output.clone());
                        Some((entry.index, output))
                    }
                };
                if let Some((at, output)) = answer {
                    if let Some((transfer, step)) = slot.steps.remove(&(p.client, p.seq)) {
                        step_answers.push(NodeMsg::StepDone {
                            transfer,
                            step,
                            output: output.clone(),
                        });
                    }
                    let observed = observe.then(|| (at, output.clone()));
                    if slot.waiting.remove(&(p.client, p.seq)) {
                        let reply = ClientReply::Done {
                            seq: p.seq,
                            index: at,
                            output,
                        };
                        out.replies.push((p.client, reply));
                    }
                    result = observed;
                }
            }
        }
        let at = entry.index;
        if observe {
            out.observed.push(Observation::Applied {
                node: slot.id,
                group,
                entry,
                result,
            });
        }
        m.since_snapshot += 1;
        if m.since_snapshot >= snapshot_every {
            m.since_snapshot = 0;
            let data = m.snapshot_bytes();
            m.raft.compact(at, data);
            let snap = m.raft.snapshot().expect("just compacted").clone();
            self.staged
                .entry(Disk::Shard(index))
                .or_default()
                .push(LogOp::Compact(snap));
        }
        if let Some(leader) = self.president_leader() {
            for msg in step_answers {
                self.emit(now, leader, msg, out);
            }
        }
    }

    fn apply_order(&mut self, now: Micros, entry: Entry, out: &mut Output) {
        if self.cfg.observe_entries {
            out.observed.push(Observation::Applied {
                node: self.cfg.id,
                group: PRESIDENT_GROUP,
                entry: entry.clone(),
                result: None,
            });
        }
        if let Payload::Command(bytes) = &entry.payload {
            if let Ok(order) = decode_exact::<Order>(bytes) {
                let applied = self.map.apply(&order);
                if self.cfg.share_map {
                    out.map_updates.push(MapUpdate {
                        applied: applied.clone(),
                        map: self.map.clone(),
                    });
                }
                self.react(now, applied, out);
            }
        }
        let Some(p) = &mut self.pres else { return };
        p.since_snapshot += 1;
        if p.since_snapshot >= self.cfg.timing.snapshot_every {
            p.since_snapshot = 0;
            p.raft.compact(entry.index, self.map.encode());
            let snap = p.raft.snapshot().expect("just compacted").clone();
            self.staged
                .entry(Disk::President)
                .or_default()
                .push(LogOp::Compact(snap));
        }
    }

    /// Act on what the president's log says about this core's shards.
    /// Orders replayed after a restart are stale by term and change nothing.
    fn react(&mut self, now: Micros, applied: Applied, out: &mut Output) {
        let indexes: Vec<ShardIndex> = self.shards.keys().copied().collect();
        for i in indexes {
            self.react_shard(now, i, &applied, out);
        }
    }

    fn react_shard(&mut self, now: Micros, index: ShardIndex, applied: &Applied, out: &mut Output) {
        let slot = self.shards.get_mut(&index).expect("listed");
        let (id, shard_term) = (slot.id, slot.term());
        match applied {
            Applied::Poll {
                ministry,
                term,
                poll_set,
            } => {
                if poll_set.contains(&id) {
                    if let Some(m) = slot.member.as_mut().filter(|m| m.raft.group() == *ministry) {
                        let _ = m.raft.poll(now, *term);
                    }
                }
            }
            Applied::Appointed {
                ministry,
                term,
                minister,
                members,
                removed,
            } => {
                let (ministry, term) = (*ministry, *term);
                let current = slot.group();
                if members.contains(&id) && current != Some(ministry) && shard_term < term {
                    // Joining a ministry: its log starts afresh; the term carries over.
                    let hs = HardState {
                        term: shard_term,
                        vote: None,
                    };
                    let c = raft_config(&self.cfg, id, ministry, Mode::Appointed);
                    slot.member = Some(Member {
                        raft: Raft::new(c, hs, Membership::default(), now),
                        app: A::default(),
                        sessions: Sessions::default(),
                        since_snapshot: 0,
                    });
                    self.replace_shard_log(
                        index,
                        LogOp::Join {
                            group: ministry,
                            hs,
                        },
                        out,
                    );
                    out.observed.push(Observation::LogReset {
                        node: id,
                        group: ministry,
                        index: 0,
                        term: 0,
                    });
                }
                let slot = self.shards.get_mut(&index).expect("listed");
                if removed.contains(&id) && current == Some(ministry) && shard_term <= term {
                    slot.idle_term = shard_term;
                    slot.member = None;
                    let hs = HardState {
                        term: shard_term,
                        vote: None,
                    };
                    self.replace_shard_log(index, LogOp::Leave { hs }, out);
                }
                let slot = self.shards.get_mut(&index).expect("listed");
                if *minister == id {
                    if let Some(m) = slot.member.as_mut().filter(|m| m.raft.group() == ministry) {
                        let _ =
                            m.raft
                                .appoint(now, term, Membership::new(members.clone(), Vec::new()));
                    }
                }
            }
            Applied::Nothing | Applied::Rejected(_) => {}
        }
    }

    /// A shard's log is replaced wholesale (join or leave). Nothing in
    /// flight for the old log may reach the new Raft.
    fn replace_shard_log(&mut self, index: ShardIndex, op: LogOp, out: &mut Output) {
        let disk = Disk::Shard(index);
        let slot = self.shards.get_mut(&index).expect("hosted");
        slot.generation += 1;
        slot.waiting.clear();
        slot.steps.clear();
        for p in std::mem::take(&mut slot.parked) {
            out.reads.push((
                p.token,
                ReadReply::Elsewhere {
                    hint: None,
                    members: Vec::new(),
                },
            ));
        }
        self.held.retain(|(d, _), _| *d != disk);
        self.syncs.retain(|(d, _), _| *d != disk);
        self.staged.remove(&disk);
        let seq = self.last_sync.get(&disk).copied().unwrap_or(0) + 1;
        self.last_sync.insert(disk, seq);
        out.persist.push((disk, seq, vec![op]));
    }

    /// The president member's status (on the core that hosts it).
    pub fn president_status(&self) -> Option<Status> {
        self.pres.as_ref().map(|p| p.raft.status())
    }

    /// This core's shards, for status tables.
    pub fn shard_statuses(&self, now: Micros) -> Vec<ShardStatus> {
        self.shards
            .values()
            .map(|s| ShardStatus {
                id: s.id,
                core: self.cfg.core,
                member: s.member.as_ref().map(|m| m.raft.status()),
                serving: self.serving(s.index, now),
            })
            .collect()
    }

    /// Whether a shard may serve reads (and, later, grant leases) at `now`:
    /// it must have heard from its minister (a minister: from a majority) and
    /// from the president within H. A member cut off from either fences
    /// itself, which is what lets others assume it fenced after 2H.
    pub fn serving(&self, index: ShardIndex, now: Micros) -> bool {
        let Some(m) = self.shards.get(&index).and_then(|s| s.member.as_ref()) else {
            return false;
        };
        let mut fresh = Freshness::new(self.cfg.timing.serve_timeout);
        match self.president_contact(now) {
            Some(t) => fresh.heard_president(t),
            None => return false,
        }
        if m.raft.is_leader() {
            return m.raft.is_serving(now) && fresh.can_serve_president(now);
        }
        if let Some(t) = m
            .raft
            .last_leader_contact()
            .filter(|_| m.raft.leader().is_some())
        {
            fresh.heard_leader(t);
        }
        fresh.can_serve(now)
    }

    /// When this node last heard from the president (now, if it is the president).
    fn president_contact(&self, now: Micros) -> Option<Micros> {
        match &self.pres {
            Some(p) if p.raft.is_leader() => Some(now),
            Some(p) => p.raft.last_leader_contact(),
            None => self.view.contact,
        }
    }

    /// A shard's commit index, for status tables.
    pub fn shard_commit(&self, index: ShardIndex) -> Option<Index> {
        self.shard_raft(index).map(|r| r.commit_index())
    }
}

/// Whether a leader has applied an entry of its own term, and so
/// everything committed before it: only then do its session table and
/// application state reflect the whole committed log.
fn applied_own_term(raft: &Raft) -> bool {
    let applied = raft.status().applied;
    raft.log().term(applied) == Some(raft.term())
}

/// A read answered from a member's applied state.
fn answer_read<A: App>(m: &Member<A>, query: &[u8]) -> ReadReply {
    let applied = m.raft.status().applied;
    match m.app.query(applied, query) {
        Some(output) => ReadReply::Done {
            index: applied,
            output,
        },
        None => ReadReply::NotARead,
    }
}

/// A member answers a read once it has applied what the reader saw and
/// everything it knows committed: a clerk that just joined (or fell behind)
/// does not answer from a state older than its own log says it should be.
fn caught_up(raft: &Raft, min_index: Index) -> bool {
    let st = raft.status();
    st.applied >= min_index.max(st.commit)
}

fn raft_config(cfg: &NodeConfig, id: NodeId, group: GroupId, mode: Mode) -> Config {
    let mut c = Config::new(id, group, mode);
    c.heartbeat_interval = cfg.timing.heartbeat;
    c.election_timeout = cfg.timing.election_timeout;
    c.serve_timeout = cfg.timing.serve_timeout;
    c.max_inflight = cfg.timing.max_inflight;
    c.max_append_bytes = cfg.timing.max_append_bytes;
    c.seed = id.wrapping_mul(0x9E37_79B9) ^ (group << 32);
    c.faults = cfg.faults;
    c
}
