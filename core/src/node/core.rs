//! `NodeCore`: one node's president member and shard, driven sans-IO.

use std::collections::BTreeMap;

use super::app::App;
use super::log_op::{Disk, LogOp};
use super::session::{Dedup, Sessions};
use super::wire::{ClientReply, ClientRequest, NodeMsg, Proposal};
use super::{Observation, Output};
use crate::codec::{decode_exact, DecodeError};
use crate::president::{
    Applied, ClusterMap, DriverConfig, MemberReport, Order, PresidentDriver, ShardReport,
};
use crate::raft::timing::Freshness;
use crate::raft::{
    Config, Entry, Event, GroupId, HardState, Index, InjectedFaults, Membership, Micros, Mode,
    NodeId, Payload, Raft, Ready, Snapshot, PRESIDENT_GROUP,
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
    /// The node's id, which is also its shard's id (one shard per node here).
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

/// The shard's snapshot: sessions travel with the application state.
#[derive(serde::Serialize, serde::Deserialize)]
struct ShardSnapshot {
    sessions: Sessions,
    app: Vec<u8>,
}

struct Shard<A> {
    raft: Raft,
    app: A,
    sessions: Sessions,
    since_snapshot: u64,
}

impl<A: App> Shard<A> {
    fn snapshot_bytes(&self) -> Vec<u8> {
        let s = ShardSnapshot {
            sessions: self.sessions.clone(),
            app: self.app.snapshot(),
        };
        postcard::to_stdvec(&s).expect("snapshots encode")
    }

    fn restore(bytes: &[u8]) -> Result<(Sessions, A), DecodeError> {
        let s: ShardSnapshot = decode_exact(bytes)?;
        Ok((s.sessions, A::restore(&s.app)?))
    }
}

pub struct NodeCore<A: App> {
    cfg: NodeConfig,
    pres: Raft,
    map: ClusterMap,
    pres_since_snapshot: u64,
    shard: Option<Shard<A>>,
    /// The shard's term while it is idle (terms are cluster-wide and only grow).
    idle_term: u64,
    driver: Option<PresidentDriver>,
    /// Messages waiting for a sync: released when (disk, seq) is durable.
    held: BTreeMap<(Disk, u64), Vec<(NodeId, NodeMsg)>>,
    /// Last sync sequence number issued per disk (never reused).
    last_sync: BTreeMap<Disk, u64>,
    /// Sync seq -> (shard generation, Ready number) to report to Raft when durable.
    syncs: BTreeMap<(Disk, u64), (u64, u64)>,
    /// Bumped whenever the shard's Raft is replaced, so old syncs never reach a new one.
    shard_generation: u64,
    /// Client requests this minister proposed and owes an answer: (client, seq).
    waiting: BTreeMap<(u64, u64), ()>,
    /// Log operations staged for the next write of each disk (snapshots).
    staged: BTreeMap<Disk, Vec<LogOp>>,
    last_report: Micros,
}

impl<A: App> NodeCore<A> {
    /// A node with empty logs.
    pub fn new(cfg: NodeConfig, now: Micros) -> Self {
        Self::recover(cfg, Recovered::default(), None, Recovered::default(), now)
            .expect("empty logs always recover")
    }

    /// A node restarted from its logs. `shard_group` is the ministry its shard
    /// belonged to (None when idle: the shard log then only carries its term).
    pub fn recover(
        cfg: NodeConfig,
        pres: Recovered,
        shard_group: Option<GroupId>,
        shard: Recovered,
        now: Micros,
    ) -> Result<Self, DecodeError> {
        let membership = Membership::new(cfg.voters.clone(), cfg.learners.clone());
        let map = match &pres.snapshot {
            Some(s) => ClusterMap::decode(&s.data)?,
            None => ClusterMap::new(),
        };
        let pres_cfg = raft_config(&cfg, PRESIDENT_GROUP, Mode::Elected);
        let pres = Raft::restore(
            pres_cfg,
            pres.hs,
            pres.snapshot,
            pres.entries,
            membership,
            now,
        );
        let idle_term = shard.hs.term;
        let shard = match shard_group {
            None => None,
            Some(group) => {
                let (sessions, app) = match &shard.snapshot {
                    Some(s) => Shard::<A>::restore(&s.data)?,
                    None => (Sessions::default(), A::default()),
                };
                let c = raft_config(&cfg, group, Mode::Appointed);
                let raft = Raft::restore(
                    c,
                    shard.hs,
                    shard.snapshot,
                    shard.entries,
                    Membership::default(),
                    now,
                );
                Some(Shard {
                    raft,
                    app,
                    sessions,
                    since_snapshot: 0,
                })
            }
        };
        Ok(NodeCore {
            cfg,
            pres,
            map,
            pres_since_snapshot: 0,
            shard,
            idle_term,
            driver: None,
            held: BTreeMap::new(),
            last_sync: BTreeMap::new(),
            syncs: BTreeMap::new(),
            shard_generation: 0,
            waiting: BTreeMap::new(),
            staged: BTreeMap::new(),
            last_report: now,
        })
    }

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }
    pub fn president_raft(&self) -> &Raft {
        &self.pres
    }
    pub fn map(&self) -> &ClusterMap {
        &self.map
    }
    pub fn shard_raft(&self) -> Option<&Raft> {
        self.shard.as_ref().map(|s| &s.raft)
    }
    pub fn app(&self) -> Option<&A> {
        self.shard.as_ref().map(|s| &s.app)
    }
    /// The shard's term, whether or not it serves a ministry.
    pub fn shard_term(&self) -> u64 {
        self.shard
            .as_ref()
            .map_or(self.idle_term, |s| s.raft.term())
    }

    /// On the president: propose one change of the voter set.
    pub fn change_president_voters(
        &mut self,
        now: Micros,
        next: Membership,
        out: &mut Output,
    ) -> Result<(), crate::raft::ProposeError> {
        let result = self.pres.propose_membership(next).map(|_| ());
        self.turn(now, out);
        result
    }

    pub fn tick(&mut self, now: Micros, out: &mut Output) {
        self.pres.tick(now);
        if let Some(s) = &mut self.shard {
            s.raft.tick(now);
        }
        if let Some(driver) = &mut self.driver {
            for order in driver.tick(now, &self.map, self.cfg.id) {
                // A full or lost proposal is retried by the driver's timeouts.
                let _ = self
                    .pres
                    .propose(postcard::to_stdvec(&order).expect("orders encode"));
            }
        }
        if now.saturating_sub(self.last_report) >= self.cfg.timing.report_interval {
            self.last_report = now;
            self.report(now, out);
        }
        self.turn(now, out);
    }

    fn report(&mut self, now: Micros, out: &mut Output) {
        let ministry = self.shard.as_ref().map(|s| {
            let st = s.raft.status();
            ShardReport {
                group: st.group,
                term: st.term,
                leader: s.raft.is_leader(),
                commit: st.commit,
                commit_term: s.raft.log().term(st.commit).unwrap_or(0),
                unreachable: s.raft.unreachable_members(now),
            }
        });
        let report = MemberReport {
            shard: self.cfg.id,
            ministry,
        };
        match self.pres.leader() {
            Some(l) if l == self.cfg.id => {
                if let Some(d) = &mut self.driver {
                    d.on_report(now, report)
                }
            }
            Some(l) => out.send.push((l, NodeMsg::Report(report))),
            None => {}
        }
    }

    pub fn receive(&mut self, now: Micros, msg: NodeMsg, out: &mut Output) {
        match msg {
            NodeMsg::Raft(m) if m.group == PRESIDENT_GROUP => self.pres.step(now, m),
            NodeMsg::Raft(m) => {
                if let Some(s) = self.shard.as_mut().filter(|s| s.raft.group() == m.group) {
                    s.raft.step(now, m);
                }
            }
            NodeMsg::Poll(a) => {
                if let Some(d) = &mut self.driver {
                    d.on_poll_answer(a)
                }
            }
            NodeMsg::Report(r) => {
                if let Some(d) = &mut self.driver {
                    d.on_report(now, r)
                }
            }
        }
        self.turn(now, out);
    }

    /// A client's change. Answered now (redirect, or an already applied
    /// request) or once it is applied.
    pub fn client_request(&mut self, now: Micros, req: ClientRequest, out: &mut Output) {
        let (client, seq) = (req.client, req.seq);
        if let Some(s) = self
            .shard
            .as_mut()
            .filter(|s| s.raft.group() == req.ministry)
        {
            if s.raft.is_leader() && s.raft.is_serving(now) {
                match s.sessions.check(client, seq) {
                    Dedup::Done(index, output) => {
                        out.replies.push((
                            client,
                            ClientReply::Done {
                                seq,
                                index,
                                output: output.to_vec(),
                            },
                        ));
                    }
                    Dedup::Stale => {}
                    Dedup::New if self.waiting.contains_key(&(client, seq)) => {}
                    Dedup::New => {
                        let p = Proposal {
                            client,
                            seq,
                            command: req.command,
                        };
                        if s.raft
                            .propose(postcard::to_stdvec(&p).expect("proposals encode"))
                            .is_ok()
                        {
                            self.waiting.insert((client, seq), ());
                        }
                    }
                }
                self.turn(now, out);
                return;
            }
        }
        let info = self.map.ministries.get(&req.ministry);
        let hint = self
            .shard
            .as_ref()
            .filter(|s| s.raft.group() == req.ministry)
            .and_then(|s| s.raft.leader())
            .filter(|l| *l != self.cfg.id)
            .or_else(|| info.and_then(|i| i.minister));
        let members = info.map(|i| i.members.clone()).unwrap_or_default();
        out.replies
            .push((client, ClientReply::NotLeader { seq, hint, members }));
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
                Disk::President => self.pres.persisted(number),
                Disk::Shard => {
                    if let Some(s) = self
                        .shard
                        .as_mut()
                        .filter(|_| generation == self.shard_generation)
                    {
                        s.raft.persisted(number);
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
        self.turn(now, out);
    }

    /// A new minister proposes what its application needs first. They go
    /// through the session table as client 0 with ids that grow with the
    /// term, so a later minister's bootstrap is never taken for a resend.
    fn propose_bootstrap(&mut self, group: GroupId, term: u64) {
        let Some(s) = self.shard.as_mut() else { return };
        for (i, command) in s.app.on_appointed(group).into_iter().enumerate() {
            let p = Proposal {
                client: BOOTSTRAP_CLIENT,
                seq: term * 1024 + i as u64,
                command,
            };
            // Only a leader reaches here; a refused proposal means it already stepped down.
            let _ = s
                .raft
                .propose(postcard::to_stdvec(&p).expect("proposals encode"));
        }
    }

    /// Send `msg`, or handle it here when it is addressed to this node (the
    /// president's own shard answers the president's poll).
    fn emit(&mut self, now: Micros, to: NodeId, msg: NodeMsg, out: &mut Output) {
        if to != self.cfg.id {
            out.send.push((to, msg));
            return;
        }
        match msg {
            NodeMsg::Poll(a) => {
                if let Some(d) = &mut self.driver {
                    d.on_poll_answer(a);
                }
            }
            NodeMsg::Report(r) => {
                if let Some(d) = &mut self.driver {
                    d.on_report(now, r);
                }
            }
            // Raft never addresses itself.
            NodeMsg::Raft(_) => debug_assert!(false, "a Raft message to ourselves"),
        }
    }

    /// Drain both Rafts until neither has work: the end of one loop turn.
    fn turn(&mut self, now: Micros, out: &mut Output) {
        for _ in 0..8 {
            let mut busy = false;
            if self.pres.has_ready() || self.staged.contains_key(&Disk::President) {
                busy = true;
                let rd = self.pres.ready();
                self.handle_ready(now, Disk::President, rd, out);
            }
            let shard_busy = self.shard.as_ref().is_some_and(|s| s.raft.has_ready())
                || self.staged.contains_key(&Disk::Shard);
            if shard_busy && self.shard.is_some() {
                busy = true;
                let rd = self.shard.as_mut().expect("checked").raft.ready();
                self.handle_ready(now, Disk::Shard, rd, out);
            }
            if !busy {
                break;
            }
        }
    }

    fn handle_ready(&mut self, now: Micros, disk: Disk, rd: Ready, out: &mut Output) {
        let id = self.cfg.id;
        let group = match disk {
            Disk::President => PRESIDENT_GROUP,
            Disk::Shard => self.shard.as_ref().map_or(0, |s| s.raft.group()),
        };
        let mut ops = self.staged.remove(&disk).unwrap_or_default();
        if let Some(hs) = rd.hard_state {
            ops.push(LogOp::HardState(hs));
        }
        if let Some(s) = &rd.snapshot {
            out.observed.push(Observation::LogReset {
                node: id,
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
                    node: id,
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
        if let Some(pl) = self.pres.leader() {
            later.extend(rd.poll_answers.into_iter().map(|a| (pl, NodeMsg::Poll(a))));
        }
        if !ops.is_empty() {
            let seq = self.last_sync.get(&disk).copied().unwrap_or(0) + 1;
            self.last_sync.insert(disk, seq);
            out.persist.push((disk, seq, ops));
            let generation = if disk == Disk::Shard {
                self.shard_generation
            } else {
                0
            };
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
                        node: id,
                        group,
                        term,
                    });
                    match disk {
                        Disk::President => {
                            self.driver = Some(PresidentDriver::new(self.cfg.driver.clone(), now))
                        }
                        Disk::Shard => self.propose_bootstrap(group, term),
                    }
                }
                Event::SteppedDown { .. } => match disk {
                    Disk::President => self.driver = None,
                    Disk::Shard => self.waiting.clear(),
                },
            }
        }
        for entry in rd.committed {
            match disk {
                Disk::President => self.apply_order(now, entry, out),
                Disk::Shard => self.apply_command(entry, out),
            }
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
            Disk::Shard => {
                if let (Some(sh), Ok((sessions, app))) =
                    (&mut self.shard, Shard::<A>::restore(&s.data))
                {
                    sh.sessions = sessions;
                    sh.app = app;
                }
            }
        }
    }

    fn apply_command(&mut self, entry: Entry, out: &mut Output) {
        let (id, observe) = (self.cfg.id, self.cfg.observe_entries);
        let Some(s) = &mut self.shard else { return };
        let group = s.raft.group();
        let mut result = None;
        if let Payload::Command(bytes) = &entry.payload {
            // Proposals are encoded by us; one that does not decode is skipped on every member alike.
            if let Ok(p) = decode_exact::<Proposal>(bytes) {
                let answer = match s.sessions.check(p.client, p.seq) {
                    Dedup::Done(index, output) => Some((index, output.to_vec())),
                    Dedup::Stale => None,
                    Dedup::New => {
                        let output = s.app.apply(entry.index, &p.command);
                        s.sessions
                            .record(p.client, p.seq, entry.index, output.clone());
                        Some((entry.index, output))
                    }
                };
                if let Some((index, output)) = answer {
                    let observed = observe.then(|| (index, output.clone()));
                    if self.waiting.remove(&(p.client, p.seq)).is_some() {
                        let reply = ClientReply::Done {
                            seq: p.seq,
                            index,
                            output,
                        };
                        out.replies.push((p.client, reply));
                    }
                    result = observed;
                }
            }
        }
        let index = entry.index;
        if observe {
            out.observed.push(Observation::Applied {
                node: id,
                group,
                entry,
                result,
            });
        }
        s.since_snapshot += 1;
        if s.since_snapshot >= self.cfg.timing.snapshot_every {
            s.since_snapshot = 0;
            let data = s.snapshot_bytes();
            s.raft.compact(index, data);
            let snap = s.raft.snapshot().expect("just compacted").clone();
            self.staged
                .entry(Disk::Shard)
                .or_default()
                .push(LogOp::Compact(snap));
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
                self.react(now, applied, out);
            }
        }
        self.pres_since_snapshot += 1;
        if self.pres_since_snapshot >= self.cfg.timing.snapshot_every {
            self.pres_since_snapshot = 0;
            self.pres.compact(entry.index, self.map.encode());
            let snap = self.pres.snapshot().expect("just compacted").clone();
            self.staged
                .entry(Disk::President)
                .or_default()
                .push(LogOp::Compact(snap));
        }
    }

    /// Act on what the president's log says about this node's shard. Orders
    /// replayed after a restart are stale by term and change nothing.
    fn react(&mut self, now: Micros, applied: Applied, out: &mut Output) {
        let id = self.cfg.id;
        let shard_term = self.shard_term();
        match applied {
            Applied::Poll {
                ministry,
                term,
                poll_set,
            } => {
                if poll_set.contains(&id) {
                    if let Some(s) = self.shard.as_mut().filter(|s| s.raft.group() == ministry) {
                        let _ = s.raft.poll(now, term);
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
                let current = self.shard.as_ref().map(|s| s.raft.group());
                if members.contains(&id) && current != Some(ministry) && shard_term < term {
                    // Joining a ministry: its log starts afresh; the term carries over.
                    let hs = HardState {
                        term: shard_term,
                        vote: None,
                    };
                    let c = raft_config(&self.cfg, ministry, Mode::Appointed);
                    let raft = Raft::new(c, hs, Membership::default(), now);
                    self.shard = Some(Shard {
                        raft,
                        app: A::default(),
                        sessions: Sessions::default(),
                        since_snapshot: 0,
                    });
                    self.replace_shard_log(
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
                if removed.contains(&id) && current == Some(ministry) && shard_term <= term {
                    self.idle_term = shard_term;
                    self.shard = None;
                    let hs = HardState {
                        term: shard_term,
                        vote: None,
                    };
                    self.replace_shard_log(LogOp::Leave { hs }, out);
                }
                if minister == id {
                    if let Some(s) = self.shard.as_mut().filter(|s| s.raft.group() == ministry) {
                        let _ = s
                            .raft
                            .appoint(now, term, Membership::new(members, Vec::new()));
                    }
                }
            }
            Applied::Nothing | Applied::Rejected(_) => {}
        }
    }

    /// The shard's log is replaced wholesale (join or leave). Nothing in
    /// flight for the old log may reach the new Raft.
    fn replace_shard_log(&mut self, op: LogOp, out: &mut Output) {
        self.shard_generation += 1;
        self.held.retain(|(d, _), _| *d != Disk::Shard);
        self.syncs.retain(|(d, _), _| *d != Disk::Shard);
        self.staged.remove(&Disk::Shard);
        self.waiting.clear();
        let seq = self.last_sync.get(&Disk::Shard).copied().unwrap_or(0) + 1;
        self.last_sync.insert(Disk::Shard, seq);
        out.persist.push((Disk::Shard, seq, vec![op]));
    }

    pub fn status(&self, now: Micros) -> super::NodeStatus {
        super::NodeStatus {
            id: self.cfg.id,
            president: self.pres.status(),
            shard: self.shard.as_ref().map(|s| s.raft.status()),
            serving: self.serving(now),
        }
    }

    /// Whether the shard may serve reads (and, later, grant leases) at `now`:
    /// it must have heard from its minister (a minister: from a majority) and
    /// from the president within H. A member cut off from either fences
    /// itself, which is what lets others assume it fenced after 2H.
    pub fn serving(&self, now: Micros) -> bool {
        let Some(s) = &self.shard else { return false };
        let mut fresh = Freshness::new(self.cfg.timing.serve_timeout);
        match self.president_contact(now) {
            Some(t) => fresh.heard_president(t),
            None => return false,
        }
        if s.raft.is_leader() {
            return s.raft.is_serving(now) && fresh.can_serve_president(now);
        }
        if let Some(t) = s
            .raft
            .last_leader_contact()
            .filter(|_| s.raft.leader().is_some())
        {
            fresh.heard_leader(t);
        }
        fresh.can_serve(now)
    }

    /// When this node last heard from the president (now, if it is the president).
    fn president_contact(&self, now: Micros) -> Option<Micros> {
        if self.pres.is_leader() {
            Some(now)
        } else {
            self.pres.last_leader_contact()
        }
    }

    /// The commit index a member reports, for status tables.
    pub fn shard_commit(&self) -> Option<Index> {
        self.shard.as_ref().map(|s| s.raft.commit_index())
    }
}

fn raft_config(cfg: &NodeConfig, group: GroupId, mode: Mode) -> Config {
    let mut c = Config::new(cfg.id, group, mode);
    c.heartbeat_interval = cfg.timing.heartbeat;
    c.election_timeout = cfg.timing.election_timeout;
    c.serve_timeout = cfg.timing.serve_timeout;
    c.max_inflight = cfg.timing.max_inflight;
    c.max_append_bytes = cfg.timing.max_append_bytes;
    c.seed = cfg.id.wrapping_mul(0x9E37_79B9) ^ (group << 32);
    c.faults = cfg.faults;
    c
}
