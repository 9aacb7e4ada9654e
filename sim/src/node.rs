//! One simulated node: a president-group member (voter or learner) with the
//! cluster map it applies, and one shard that serves a ministry when the map
//! says so. It plays the engine: persists each Ready with one sync, holds
//! messages until their sync completes, applies committed entries, and acts
//! on the orders in the president's log.

use std::collections::BTreeMap;

use govfs_core::president::{
    Applied, ClusterMap, DriverConfig, MemberReport, Order, PresidentDriver, ShardReport,
};
use govfs_core::raft::{
    Config, Entry, Event, GroupId, HardState, Index, InjectedFaults, Membership, Micros, Mode,
    NodeId, Payload, PollAnswer, Raft, Ready, PRESIDENT_GROUP,
};

use crate::disk::{Image, Op, SimDisk};
use crate::kv::{Kv, KvCommand, KvResult};
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Addr {
    Node(NodeId),
    Client(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DiskId {
    President,
    Shard,
}

#[derive(Clone, Debug)]
pub enum Reply {
    Ok(KvResult),
    NotLeader {
        hint: Option<NodeId>,
        members: Vec<NodeId>,
    },
}

#[derive(Clone, Debug)]
pub enum NetMsg {
    Raft(govfs_core::raft::Message),
    Poll(PollAnswer),
    Report(MemberReport),
    Request { ministry: GroupId, cmd: KvCommand },
    Reply { seq: u64, reply: Reply },
}

/// What the checker needs to see.
#[derive(Clone, Debug)]
pub enum Observation {
    BecameLeader {
        node: NodeId,
        group: GroupId,
        term: u64,
    },
    /// Entries written to a member's log (the first one overwrites from its index).
    Persisted {
        node: NodeId,
        group: GroupId,
        entries: Vec<Entry>,
    },
    /// A member's log now starts after a snapshot at (index, term), with nothing after it.
    LogReset {
        node: NodeId,
        group: GroupId,
        index: Index,
        term: u64,
    },
    Applied {
        node: NodeId,
        group: GroupId,
        entry: Entry,
        result: Option<KvResult>,
    },
}

#[derive(Default)]
pub struct Effects {
    pub send: Vec<(Addr, Addr, NetMsg)>,
    pub syncs: Vec<(DiskId, u64)>,
    pub observed: Vec<Observation>,
}

#[derive(Clone, Debug)]
pub struct Timing {
    pub heartbeat: Micros,
    pub election_timeout: Micros,
    pub serve_timeout: Micros,
    pub report_interval: Micros,
    pub failure_timeout: Micros,
    pub appointment_timeout: Micros,
    pub snapshot_every: u64,
}

pub struct NodeConfig {
    pub id: NodeId,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub timing: Timing,
    pub faults: InjectedFaults,
    pub driver: DriverConfig,
}

struct Shard {
    raft: Raft,
    kv: Kv,
    since_snapshot: u64,
}

pub struct SimNode {
    pub cfg: NodeConfig,
    pub alive: bool,
    pub incarnation: u64,
    pub pres: Raft,
    pub map: ClusterMap,
    pres_since_snapshot: u64,
    pres_disk: SimDisk,
    shard: Option<Shard>,
    shard_disk: SimDisk,
    driver: Option<PresidentDriver>,
    /// Messages waiting for a sync: released when (disk, sync seq) is durable.
    held: BTreeMap<(DiskId, u64), Vec<(Addr, NetMsg)>>,
    /// Last sync sequence number issued per disk (never reused).
    last_sync: BTreeMap<DiskId, u64>,
    /// Sync seq -> (shard generation, Ready number) to report to Raft when durable.
    syncs: BTreeMap<(DiskId, u64), (u64, u64)>,
    /// Bumped whenever the shard's Raft is replaced, so old syncs never reach a new Raft.
    shard_generation: u64,
    /// Requests this minister proposed and owes an answer: (client, seq).
    waiting: BTreeMap<(u64, u64), ()>,
    last_report: Micros,
}

fn raft_config(cfg: &NodeConfig, group: GroupId, mode: Mode, incarnation: u64) -> Config {
    let mut c = Config::new(cfg.id, group, mode);
    c.heartbeat_interval = cfg.timing.heartbeat;
    c.election_timeout = cfg.timing.election_timeout;
    c.serve_timeout = cfg.timing.serve_timeout;
    c.max_inflight = 8;
    c.max_append_bytes = 16 * 1024;
    c.seed = cfg.id.wrapping_mul(0x9E37_79B9) ^ (group << 32) ^ incarnation;
    c.faults = cfg.faults;
    c
}

impl SimNode {
    pub fn new(cfg: NodeConfig, now: Micros) -> Self {
        let membership = Membership::new(cfg.voters.clone(), cfg.learners.clone());
        let pres = Raft::new(
            raft_config(&cfg, PRESIDENT_GROUP, Mode::Elected, 0),
            HardState::default(),
            membership,
            now,
        );
        SimNode {
            cfg,
            alive: true,
            incarnation: 0,
            pres,
            map: ClusterMap::new(),
            pres_since_snapshot: 0,
            pres_disk: SimDisk::default(),
            shard: None,
            shard_disk: SimDisk::default(),
            driver: None,
            held: BTreeMap::new(),
            last_sync: BTreeMap::new(),
            syncs: BTreeMap::new(),
            shard_generation: 0,
            waiting: BTreeMap::new(),
            last_report: 0,
        }
    }

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    pub fn shard_raft(&self) -> Option<&Raft> {
        self.shard.as_ref().map(|s| &s.raft)
    }

    pub fn shard_kv(&self) -> Option<&Kv> {
        self.shard.as_ref().map(|s| &s.kv)
    }

    /// Power loss: volatile state is gone; disks keep what they synced and
    /// maybe a prefix of what they did not.
    pub fn crash(&mut self, rng: &mut Rng) {
        self.alive = false;
        self.pres_disk.crash(rng);
        self.shard_disk.crash(rng);
        self.driver = None;
        self.held.clear();
        self.syncs.clear();
        self.waiting.clear();
        self.shard = None;
    }

    /// Start again from disk. Returns the logs as recovered, for the checker.
    pub fn restart(&mut self, now: Micros, fx: &mut Effects) {
        self.alive = true;
        self.incarnation += 1;
        self.shard_generation += 1;
        let id = self.cfg.id;
        let img = self.pres_disk.durable.clone();
        let membership = Membership::new(self.cfg.voters.clone(), self.cfg.learners.clone());
        self.map = img
            .snapshot
            .as_ref()
            .map(|s| ClusterMap::decode(&s.data).expect("our own snapshot decodes"))
            .unwrap_or_default();
        let cfg = raft_config(&self.cfg, PRESIDENT_GROUP, Mode::Elected, self.incarnation);
        self.pres = Raft::restore(
            cfg,
            img.hs,
            img.snapshot.clone(),
            img.entries.clone(),
            membership,
            now,
        );
        observe_recovered(fx, id, PRESIDENT_GROUP, &img);
        let img = self.shard_disk.durable.clone();
        self.shard = img.group.map(|group| {
            let cfg = raft_config(&self.cfg, group, Mode::Appointed, self.incarnation);
            let kv = img
                .snapshot
                .as_ref()
                .map(|s| Kv::decode(&s.data).expect("our own snapshot decodes"))
                .unwrap_or_default();
            let raft = Raft::restore(
                cfg,
                img.hs,
                img.snapshot.clone(),
                img.entries.clone(),
                Membership::default(),
                now,
            );
            observe_recovered(fx, id, group, &img);
            Shard {
                raft,
                kv,
                since_snapshot: 0,
            }
        });
        self.last_report = now;
    }

    /// On the president: propose one change of the voter set.
    pub fn change_president_voters(
        &mut self,
        now: Micros,
        next: Membership,
        fx: &mut Effects,
    ) -> Result<(), govfs_core::raft::ProposeError> {
        let result = self.pres.propose_membership(next).map(|_| ());
        self.turn(now, fx);
        result
    }

    pub fn tick(&mut self, now: Micros, fx: &mut Effects) {
        self.pres.tick(now);
        if let Some(s) = &mut self.shard {
            s.raft.tick(now);
        }
        if let Some(driver) = &mut self.driver {
            for order in driver.tick(now, &self.map) {
                let _ = self
                    .pres
                    .propose(postcard::to_stdvec(&order).expect("orders encode"));
            }
        }
        if now.saturating_sub(self.last_report) >= self.cfg.timing.report_interval {
            self.last_report = now;
            self.report(now, fx);
        }
        self.turn(now, fx);
    }

    fn report(&mut self, now: Micros, fx: &mut Effects) {
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
            Some(l) => fx.send.push((
                Addr::Node(self.cfg.id),
                Addr::Node(l),
                NetMsg::Report(report),
            )),
            None => {}
        }
    }

    pub fn receive(&mut self, now: Micros, from: Addr, msg: NetMsg, fx: &mut Effects) {
        match msg {
            NetMsg::Raft(m) if m.group == PRESIDENT_GROUP => self.pres.step(now, m),
            NetMsg::Raft(m) => {
                if let Some(s) = self.shard.as_mut().filter(|s| s.raft.group() == m.group) {
                    s.raft.step(now, m);
                }
            }
            NetMsg::Poll(a) => {
                if let Some(d) = &mut self.driver {
                    d.on_poll_answer(a)
                }
            }
            NetMsg::Report(r) => {
                if let Some(d) = &mut self.driver {
                    d.on_report(now, r)
                }
            }
            NetMsg::Request { ministry, cmd } => {
                if let Addr::Client(c) = from {
                    self.on_request(now, c, ministry, cmd, fx);
                }
            }
            NetMsg::Reply { .. } => {}
        }
        self.turn(now, fx);
    }

    fn on_request(
        &mut self,
        now: Micros,
        client: u64,
        ministry: GroupId,
        cmd: KvCommand,
        fx: &mut Effects,
    ) {
        let me = Addr::Node(self.cfg.id);
        let seq = cmd.seq;
        if let Some(s) = self.shard.as_mut().filter(|s| s.raft.group() == ministry) {
            if s.raft.is_leader() && s.raft.is_serving(now) {
                if let Some((done, result)) = s.kv.sessions.get(&client) {
                    if *done == seq {
                        fx.send.push((
                            me,
                            Addr::Client(client),
                            NetMsg::Reply {
                                seq,
                                reply: Reply::Ok(result.clone()),
                            },
                        ));
                        return;
                    }
                }
                if self.waiting.contains_key(&(client, seq)) {
                    return;
                }
                if s.raft
                    .propose(postcard::to_stdvec(&cmd).expect("commands encode"))
                    .is_ok()
                {
                    self.waiting.insert((client, seq), ());
                }
                return;
            }
        }
        let info = self.map.ministries.get(&ministry);
        let hint = self
            .shard
            .as_ref()
            .filter(|s| s.raft.group() == ministry)
            .and_then(|s| s.raft.leader())
            .or_else(|| info.and_then(|i| i.minister));
        let members = info.map(|i| i.members.clone()).unwrap_or_default();
        fx.send.push((
            me,
            Addr::Client(client),
            NetMsg::Reply {
                seq,
                reply: Reply::NotLeader { hint, members },
            },
        ));
    }

    pub fn synced(&mut self, now: Micros, disk: DiskId, seq: u64, fx: &mut Effects) {
        let ready = self.syncs.remove(&(disk, seq));
        match disk {
            DiskId::President => {
                self.pres_disk.synced(seq);
                if let Some((_, n)) = ready {
                    self.pres.persisted(n);
                }
            }
            DiskId::Shard => {
                self.shard_disk.synced(seq);
                if let (Some((generation, n)), Some(s)) = (ready, &mut self.shard) {
                    if generation == self.shard_generation {
                        s.raft.persisted(n);
                    }
                }
            }
        }
        let done: Vec<(DiskId, u64)> = self
            .held
            .range((disk, 0)..=(disk, seq))
            .map(|(k, _)| *k)
            .collect();
        for key in done {
            for (to, msg) in self.held.remove(&key).unwrap_or_default() {
                fx.send.push((Addr::Node(self.cfg.id), to, msg));
            }
        }
        self.turn(now, fx);
    }

    /// Drain both Rafts until neither has work: the end of one loop turn.
    fn turn(&mut self, now: Micros, fx: &mut Effects) {
        for _ in 0..8 {
            let mut busy = false;
            if self.pres.has_ready() {
                busy = true;
                let rd = self.pres.ready();
                self.handle_ready(now, DiskId::President, rd, fx);
            }
            if self
                .shard
                .as_ref()
                .is_some_and(|s| s.raft.has_ready() || self.shard_disk.has_staged())
            {
                busy = true;
                let rd = self.shard.as_mut().expect("checked").raft.ready();
                self.handle_ready(now, DiskId::Shard, rd, fx);
            }
            if !busy {
                break;
            }
        }
    }

    fn handle_ready(&mut self, now: Micros, disk_id: DiskId, rd: Ready, fx: &mut Effects) {
        let id = self.cfg.id;
        let me = Addr::Node(id);
        let group = match disk_id {
            DiskId::President => PRESIDENT_GROUP,
            DiskId::Shard => self.shard.as_ref().map_or(0, |s| s.raft.group()),
        };
        let mut ops = Vec::new();
        if let Some(hs) = rd.hard_state {
            ops.push(Op::HardState(hs));
        }
        if let Some(s) = &rd.snapshot {
            fx.observed.push(Observation::LogReset {
                node: id,
                group,
                index: s.meta.index,
                term: s.meta.term,
            });
            ops.push(Op::Install(s.clone()));
            match disk_id {
                DiskId::President => {
                    self.map = ClusterMap::decode(&s.data).expect("leader snapshots decode")
                }
                DiskId::Shard => {
                    if let Some(sh) = &mut self.shard {
                        sh.kv = Kv::decode(&s.data).expect("leader snapshots decode");
                    }
                }
            }
        }
        if !rd.entries.is_empty() {
            fx.observed.push(Observation::Persisted {
                node: id,
                group,
                entries: rd.entries.clone(),
            });
            ops.push(Op::Entries(rd.entries));
        }
        let disk = match disk_id {
            DiskId::President => &mut self.pres_disk,
            DiskId::Shard => &mut self.shard_disk,
        };
        let mut later: Vec<(Addr, NetMsg)> = rd
            .persisted_messages
            .into_iter()
            .map(|m| (Addr::Node(m.to), NetMsg::Raft(m)))
            .collect();
        if let Some(pl) = self.pres.leader() {
            later.extend(
                rd.poll_answers
                    .into_iter()
                    .map(|a| (Addr::Node(pl), NetMsg::Poll(a))),
            );
        }
        if !ops.is_empty() || disk.has_staged() {
            let seq = self.last_sync.get(&disk_id).copied().unwrap_or(0) + 1;
            self.last_sync.insert(disk_id, seq);
            disk.write(seq, ops);
            fx.syncs.push((disk_id, seq));
            let generation = if disk_id == DiskId::Shard {
                self.shard_generation
            } else {
                0
            };
            self.syncs.insert((disk_id, seq), (generation, rd.number));
            self.held.entry((disk_id, seq)).or_default().extend(later);
        } else if let Some(&n) = self
            .last_sync
            .get(&disk_id)
            .filter(|n| self.held.contains_key(&(disk_id, **n)))
        {
            // Nothing new to write, but an earlier sync is still in flight.
            self.held.entry((disk_id, n)).or_default().extend(later);
        } else {
            for (to, msg) in later {
                if to == me {
                    self.receive_local(now, msg);
                } else {
                    fx.send.push((me, to, msg));
                }
            }
        }
        for m in rd.messages {
            fx.send.push((me, Addr::Node(m.to), NetMsg::Raft(m)));
        }
        for ev in rd.events {
            match ev {
                Event::BecameLeader { term } => {
                    fx.observed.push(Observation::BecameLeader {
                        node: id,
                        group,
                        term,
                    });
                    if disk_id == DiskId::President {
                        self.driver = Some(PresidentDriver::new(self.cfg.driver.clone(), now));
                    }
                }
                Event::SteppedDown { .. } => match disk_id {
                    DiskId::President => self.driver = None,
                    DiskId::Shard => self.waiting.clear(),
                },
            }
        }
        for entry in rd.committed {
            match disk_id {
                DiskId::President => self.apply_order(now, entry, fx),
                DiskId::Shard => self.apply_command(entry, fx),
            }
        }
    }

    fn receive_local(&mut self, _now: Micros, msg: NetMsg) {
        if let (NetMsg::Poll(a), Some(d)) = (msg, &mut self.driver) {
            d.on_poll_answer(a);
        }
    }

    fn apply_command(&mut self, entry: Entry, fx: &mut Effects) {
        let id = self.cfg.id;
        let Some(s) = &mut self.shard else { return };
        let group = s.raft.group();
        let result = match &entry.payload {
            Payload::Command(bytes) => match postcard::from_bytes::<KvCommand>(bytes) {
                Ok(cmd) => {
                    let r = s.kv.apply(entry.index, &cmd);
                    if let Some(r) = &r {
                        if self.waiting.remove(&(cmd.client, cmd.seq)).is_some() {
                            let reply = NetMsg::Reply {
                                seq: cmd.seq,
                                reply: Reply::Ok(r.clone()),
                            };
                            fx.send
                                .push((Addr::Node(id), Addr::Client(cmd.client), reply));
                        }
                    }
                    r
                }
                Err(_) => None,
            },
            _ => None,
        };
        fx.observed.push(Observation::Applied {
            node: id,
            group,
            entry: entry.clone(),
            result,
        });
        s.since_snapshot += 1;
        if s.since_snapshot >= self.cfg.timing.snapshot_every {
            s.since_snapshot = 0;
            s.raft.compact(entry.index, s.kv.encode());
            let snap = s.raft.snapshot().expect("just compacted").clone();
            self.shard_disk.stage(Op::Compact(snap));
        }
    }

    fn apply_order(&mut self, now: Micros, entry: Entry, fx: &mut Effects) {
        let id = self.cfg.id;
        fx.observed.push(Observation::Applied {
            node: id,
            group: PRESIDENT_GROUP,
            entry: entry.clone(),
            result: None,
        });
        if let Payload::Command(bytes) = &entry.payload {
            if let Ok(order) = postcard::from_bytes::<Order>(bytes) {
                let applied = self.map.apply(&order);
                self.react(now, applied, fx);
            }
        }
        self.pres_since_snapshot += 1;
        if self.pres_since_snapshot >= self.cfg.timing.snapshot_every {
            self.pres_since_snapshot = 0;
            self.pres.compact(entry.index, self.map.encode());
            let snap = self.pres.snapshot().expect("just compacted").clone();
            self.pres_disk.stage(Op::Compact(snap));
        }
    }

    /// Act on what the president's log says about this node's shard.
    fn react(&mut self, now: Micros, applied: Applied, fx: &mut Effects) {
        let id = self.cfg.id;
        let shard_term = self
            .shard
            .as_ref()
            .map_or(self.shard_disk.durable.hs.term, |s| s.raft.term());
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
                    let cfg = raft_config(&self.cfg, ministry, Mode::Appointed, self.incarnation);
                    let raft = Raft::new(cfg, hs, Membership::default(), now);
                    self.shard = Some(Shard {
                        raft,
                        kv: Kv::default(),
                        since_snapshot: 0,
                    });
                    self.replace_shard_log(Op::Join {
                        group: ministry,
                        hs,
                    });
                    fx.observed.push(Observation::LogReset {
                        node: id,
                        group: ministry,
                        index: 0,
                        term: 0,
                    });
                }
                if removed.contains(&id) && current == Some(ministry) && shard_term <= term {
                    self.shard = None;
                    self.replace_shard_log(Op::Leave);
                }
                if minister == id {
                    if let Some(s) = self.shard.as_mut().filter(|s| s.raft.group() == ministry) {
                        let m = Membership::new(members, Vec::new());
                        let _ = s.raft.appoint(now, term, m);
                    }
                }
            }
            Applied::Nothing | Applied::Rejected(_) => {}
        }
    }
}

impl SimNode {
    /// The shard's log is replaced wholesale (join or leave): done durably at
    /// once, and nothing in flight for the old log may reach the new Raft.
    fn replace_shard_log(&mut self, op: Op) {
        self.shard_disk.reset_now(op);
        self.shard_generation += 1;
        self.held.retain(|(d, _), _| *d != DiskId::Shard);
        self.syncs.retain(|(d, _), _| *d != DiskId::Shard);
        self.waiting.clear();
    }
}

fn observe_recovered(fx: &mut Effects, node: NodeId, group: GroupId, img: &Image) {
    let (index, term) = img
        .snapshot
        .as_ref()
        .map_or((0, 0), |s| (s.meta.index, s.meta.term));
    fx.observed.push(Observation::LogReset {
        node,
        group,
        index,
        term,
    });
    if !img.entries.is_empty() {
        fx.observed.push(Observation::Persisted {
            node,
            group,
            entries: img.entries.clone(),
        });
    }
}
