//! An in-memory cluster of Raft members for tests.
//!
//! * Every member has a [`Disk`] holding only what its engine made durable, so
//!   [`Cluster::crash`] + [`Cluster::restart`] rebuild it through
//!   [`Raft::restore`] from exactly that.
//! * A member either syncs every Ready at once (the default) or is *held*:
//!   its Readies pile up unsynced until [`Cluster::sync`]. `messages` leave at
//!   once either way; `persisted_messages` and poll answers leave only after
//!   the sync, as the engine contract says.
//! * All messages go through one FIFO queue ([`Cluster::net`]) that tests can
//!   inspect, drop, duplicate, reorder and deliver selectively.
//! * Safety is checked as the cluster runs, and any violation panics: at most
//!   one leader per term, committed entries agree across members (and across
//!   crashes), every new leader holds every entry committed so far, applied
//!   entries arrive in order, durable logs stay contiguous, and a leader's
//!   `match` for a follower in its term is backed by that follower's disk.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use govfs_core::raft::{
    AppointError, Config, Entry, Event, GroupId, HardState, Index, Membership, Message,
    MessageBody, Micros, Mode, NodeId, PollAnswer, ProposeError, Raft, Ready, Role, Snapshot, Term,
    Ticket,
};

/// What one member's engine has made durable.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub hs: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl Disk {
    fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    fn last_index(&self) -> Index {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |e| e.index)
    }

    /// Persist one Ready's hard state, snapshot and entries, in that order.
    fn write(&mut self, p: &Unsynced) {
        if let Some(hs) = p.hard_state {
            assert!(
                hs.term >= self.hs.term,
                "hard state term went back: {:?} -> {:?}",
                self.hs,
                hs
            );
            self.hs = hs;
        }
        if let Some(s) = &p.snapshot {
            self.snapshot = Some(s.clone());
            self.entries.clear();
        }
        let si = self.snapshot_index();
        let entries: Vec<&Entry> = p.entries.iter().filter(|e| e.index > si).collect();
        if let Some(c) = &p.compaction {
            if self.snapshot_index() < c.meta.index {
                self.entries.retain(|e| e.index > c.meta.index);
                self.snapshot = Some(c.clone());
            }
        }
        if let Some(first) = entries.first() {
            assert!(
                first.index <= self.last_index() + 1,
                "Ready entries start at {} but the durable log ends at {}",
                first.index,
                self.last_index()
            );
            self.entries.retain(|e| e.index < first.index);
            for w in entries.windows(2) {
                assert_eq!(
                    w[1].index,
                    w[0].index + 1,
                    "Ready entries are not consecutive"
                );
            }
            self.entries.extend(entries.into_iter().cloned());
        }
    }
}

/// A Ready that the engine has not made durable yet (held members only), or
/// a compaction queued behind such Readies.
#[derive(Debug, Default)]
pub struct Unsynced {
    pub number: u64,
    pub hard_state: Option<HardState>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub persisted_messages: Vec<Message>,
    pub poll_answers: Vec<PollAnswer>,
    /// The engine's own snapshot from [`Cluster::compact`]: written in
    /// order with the Readies before it, like the simulator's disk does.
    pub compaction: Option<Snapshot>,
}

impl Unsynced {
    fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.entries.is_empty()
            && self.persisted_messages.is_empty()
            && self.poll_answers.is_empty()
            && self.compaction.is_none()
    }

    /// `hs`, `snap5`, `[2..4]`, joined by `+`, for scenario files.
    pub fn render(&self) -> String {
        let mut parts = Vec::new();
        if self.hard_state.is_some() {
            parts.push("hs".to_string());
        }
        if let Some(s) = &self.snapshot {
            parts.push(format!("snap{}", s.meta.index));
        }
        if let (Some(a), Some(b)) = (self.entries.first(), self.entries.last()) {
            parts.push(format!("[{}..{}]", a.index, b.index));
        }
        if let Some(c) = &self.compaction {
            parts.push(format!("compact{}", c.meta.index));
        }
        if parts.is_empty() {
            parts.push("msgs".to_string());
        }
        parts.join("+")
    }
}

pub struct Member {
    pub id: NodeId,
    pub cfg: Config,
    /// The membership it was created with (restore falls back to it).
    pub initial: Membership,
    /// `None` while crashed.
    pub raft: Option<Raft>,
    pub disk: Disk,
    /// Readies stay unsynced until [`Cluster::sync`].
    pub hold: bool,
    pub unsynced: VecDeque<Unsynced>,
    /// The state machine: every entry applied, in order (from a snapshot's
    /// contents, then from `committed`). Rebuilt from the disk on restart.
    pub sm: Vec<Entry>,
    /// Last index applied to `sm` (or covered by an installed snapshot).
    pub sm_index: Index,
    /// Poll answers released to the president, oldest first.
    pub polled: Vec<PollAnswer>,
    pub events: Vec<Event>,
    /// Every Ready this member produced since start (for counting batches).
    pub readies: u64,
    pub incarnation: u64,
}

impl Member {
    pub fn raft(&self) -> &Raft {
        self.raft
            .as_ref()
            .unwrap_or_else(|| panic!("member {} is crashed", self.id))
    }

    pub fn raft_mut(&mut self) -> &mut Raft {
        let id = self.id;
        self.raft
            .as_mut()
            .unwrap_or_else(|| panic!("member {id} is crashed"))
    }

    pub fn alive(&self) -> bool {
        self.raft.is_some()
    }

    /// Messages waiting for a sync, in send order.
    pub fn held(&self) -> Vec<&Message> {
        self.unsynced
            .iter()
            .flat_map(|u| u.persisted_messages.iter())
            .collect()
    }

    pub fn held_answers(&self) -> Vec<&PollAnswer> {
        self.unsynced
            .iter()
            .flat_map(|u| u.poll_answers.iter())
            .collect()
    }
}

/// Snapshot contents: the state machine's applied entries.
fn encode_sm(entries: &[Entry]) -> Vec<u8> {
    postcard::to_allocvec(entries).expect("entries encode")
}

fn decode_sm(data: &[u8]) -> Vec<Entry> {
    postcard::from_bytes(data).expect("snapshot data is ours")
}

pub struct Cluster {
    pub mode: Mode,
    pub group: GroupId,
    pub now: Micros,
    pub members: BTreeMap<NodeId, Member>,
    /// Messages in flight, oldest first.
    pub net: VecDeque<Message>,
    /// Isolated members: every message to or from them is lost.
    pub cut: BTreeSet<NodeId>,
    /// Who led each term, as observed.
    pub leaders: BTreeMap<Term, NodeId>,
    /// Every entry any member applied, by index: they must all agree.
    pub committed: BTreeMap<Index, Entry>,
    /// Messages delivered so far (to bound livelocks in `stabilize`).
    pub delivered: u64,
}

/// Summaries of a message for scenario files, most general first: a pattern
/// matches a message if it equals any of them.
pub fn message_forms(m: &Message) -> Vec<String> {
    let t = m.term;
    let base_and_term = |base: String| vec![format!("{base}@{t}"), base];
    match &m.body {
        MessageBody::PreVote { .. } => base_and_term("prevote".into()),
        MessageBody::PreVoteResponse { granted } => {
            base_and_term(if *granted { "prevote+" } else { "prevote-" }.into())
        }
        MessageBody::Vote { .. } => base_and_term("vote".into()),
        MessageBody::VoteResponse { granted } => {
            base_and_term(if *granted { "vote+" } else { "vote-" }.into())
        }
        MessageBody::Append {
            prev_index,
            entries,
            commit,
            ..
        } => {
            let base = match (entries.first(), entries.last()) {
                (Some(a), Some(b)) => format!("app[{}..{}]", a.index, b.index),
                _ => format!("app[]p{prev_index}"),
            };
            let mut v = Vec::new();
            for b in [format!("{base}c{commit}"), base] {
                v.extend(base_and_term(b));
            }
            v
        }
        MessageBody::AppendResponse {
            success: true,
            index,
            ..
        } => base_and_term(format!("ack{index}")),
        MessageBody::AppendResponse {
            success: false,
            index,
            hint,
        } => {
            let mut v = base_and_term(format!("nack{index}h{hint}"));
            v.extend(base_and_term(format!("nack{index}")));
            v
        }
        MessageBody::InstallSnapshot { snapshot } => {
            base_and_term(format!("snap{}", snapshot.meta.index))
        }
        MessageBody::SnapshotResponse { index } => base_and_term(format!("snapack{index}")),
    }
}

pub fn render_message(m: &Message) -> String {
    format!("{}->{} {}", m.from, m.to, message_forms(m)[0])
}

pub fn answer_forms(a: &PollAnswer) -> Vec<String> {
    vec![
        format!("poll@{}:{}/{}", a.term, a.last_term, a.last_index),
        format!("poll@{}", a.term),
    ]
}

impl Cluster {
    /// Members `voters` + `learners`, all with that membership and an empty log.
    pub fn new(
        mode: Mode,
        voters: &[NodeId],
        learners: &[NodeId],
        tweak: impl Fn(&mut Config),
    ) -> Self {
        let group = if mode == Mode::Elected {
            govfs_core::raft::PRESIDENT_GROUP
        } else {
            7
        };
        let mut c = Cluster {
            mode,
            group,
            now: 0,
            members: BTreeMap::new(),
            net: VecDeque::new(),
            cut: BTreeSet::new(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            delivered: 0,
        };
        let membership = Membership::new(voters.to_vec(), learners.to_vec());
        for &id in voters.iter().chain(learners) {
            let mut cfg = Config::new(id, group, mode);
            tweak(&mut cfg);
            c.add_member_with(cfg, membership.clone());
        }
        c
    }

    /// A fresh member with an empty log that starts out believing `membership`.
    pub fn add_member_with(&mut self, cfg: Config, membership: Membership) {
        let id = cfg.id;
        assert!(!self.members.contains_key(&id), "member {id} exists");
        let raft = Raft::new(
            cfg.clone(),
            HardState::default(),
            membership.clone(),
            self.now,
        );
        self.members.insert(
            id,
            Member {
                id,
                cfg,
                initial: membership,
                raft: Some(raft),
                disk: Disk::default(),
                hold: false,
                unsynced: VecDeque::new(),
                sm: Vec::new(),
                sm_index: 0,
                polled: Vec::new(),
                events: Vec::new(),
                readies: 0,
                incarnation: 0,
            },
        );
    }

    /// A fresh member configured like the others.
    pub fn add_member(&mut self, id: NodeId, membership: Membership) {
        let template = self.members.values().next().map(|m| m.cfg.clone());
        let mut cfg = Config::new(id, self.group, self.mode);
        if let Some(t) = template {
            cfg.heartbeat_interval = t.heartbeat_interval;
            cfg.election_timeout = t.election_timeout;
            cfg.max_inflight = t.max_inflight;
            cfg.max_append_bytes = t.max_append_bytes;
            cfg.serve_timeout = t.serve_timeout;
        }
        self.add_member_with(cfg, membership);
    }

    pub fn member(&self, id: NodeId) -> &Member {
        self.members
            .get(&id)
            .unwrap_or_else(|| panic!("no member {id}"))
    }

    pub fn member_mut(&mut self, id: NodeId) -> &mut Member {
        self.members
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no member {id}"))
    }

    pub fn raft(&self, id: NodeId) -> &Raft {
        self.member(id).raft()
    }

    pub fn raft_mut(&mut self, id: NodeId) -> &mut Raft {
        self.member_mut(id).raft_mut()
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.members.keys().copied().collect()
    }

    pub fn alive(&self, id: NodeId) -> bool {
        self.members.get(&id).is_some_and(Member::alive)
    }

    // ---- the engine loop ----------------------------------------------------

    fn enqueue(&mut self, m: Message) {
        if self.cut.contains(&m.from) || self.cut.contains(&m.to) {
            return;
        }
        self.net.push_back(m);
    }

    /// Drain `id`'s Readies the way an engine does, until it has none.
    pub fn process(&mut self, id: NodeId) {
        for round in 0.. {
            assert!(
                round < 1000,
                "member {id} keeps producing Readies (livelock)"
            );
            let Some(raft) = self.members.get_mut(&id).and_then(|m| m.raft.as_mut()) else {
                return;
            };
            if !raft.has_ready() {
                break;
            }
            let rd = raft.ready();
            self.handle_ready(id, rd);
        }
        self.observe(id);
        self.check_matches();
    }

    fn handle_ready(&mut self, id: NodeId, rd: Ready) {
        let Ready {
            number,
            hard_state,
            snapshot,
            entries,
            messages,
            persisted_messages,
            poll_answers,
            committed,
            events,
        } = rd;
        for m in messages {
            assert_eq!(m.from, id, "member {id} sent a message as {}", m.from);
            self.enqueue(m);
        }
        for e in &events {
            if let Event::BecameLeader { term } = e {
                self.saw_leader(*term, id);
            }
        }
        let m = self.members.get_mut(&id).expect("exists");
        m.readies += 1;
        m.events.extend(events);
        if let Some(s) = &snapshot {
            m.sm = decode_sm(&s.data);
            assert_eq!(
                m.sm.len() as u64,
                s.meta.index,
                "snapshot contents do not match its index"
            );
            m.sm_index = s.meta.index;
        }
        let mut applied = Vec::new();
        for e in committed {
            assert_eq!(
                e.index,
                m.sm_index + 1,
                "member {id} was handed entry {} to apply after {}",
                e.index,
                m.sm_index
            );
            m.sm_index = e.index;
            m.sm.push(e.clone());
            applied.push(e);
        }
        for e in applied {
            self.agree(id, e);
        }
        let u = Unsynced {
            number,
            hard_state,
            snapshot,
            entries,
            persisted_messages,
            poll_answers,
            compaction: None,
        };
        let m = self.members.get_mut(&id).expect("exists");
        // A Ready with nothing to persist or hold back needs no sync of its
        // own: a later `persisted` covers it.
        if !u.is_empty() {
            m.unsynced.push_back(u);
        }
        if !m.hold {
            self.flush(id);
        }
    }

    /// The engine's sync finished: everything unsynced is durable now.
    pub fn sync(&mut self, id: NodeId) {
        if self.alive(id) {
            self.flush(id);
            // `persisted` may commit (leader) and so produce more work.
            self.process(id);
        }
    }

    fn flush(&mut self, id: NodeId) {
        let m = self.members.get_mut(&id).expect("exists");
        let Some(last) = m.unsynced.back().map(|u| u.number) else {
            return;
        };
        let pending: Vec<Unsynced> = m.unsynced.drain(..).collect();
        for u in &pending {
            m.disk.write(u);
        }
        m.raft_mut().persisted(last);
        let mut out = Vec::new();
        for u in pending {
            out.extend(u.persisted_messages);
            m.polled.extend(u.poll_answers);
        }
        for msg in out {
            self.enqueue(msg);
        }
    }

    fn saw_leader(&mut self, term: Term, id: NodeId) {
        if let Some(&other) = self.leaders.get(&term) {
            assert_eq!(other, id, "two leaders in term {term}: {other} and {id}");
        }
        self.leaders.insert(term, id);
        // Leader completeness: everything applied anywhere is in the new leader's log.
        let raft = self.raft(id);
        let si = raft.log().snapshot_index();
        for (i, e) in self.committed.range(si + 1..) {
            assert_eq!(
                raft.log().get(*i),
                Some(e),
                "new leader {id} of term {term} lacks committed entry {i}"
            );
        }
    }

    fn agree(&mut self, id: NodeId, e: Entry) {
        match self.committed.get(&e.index) {
            Some(prev) => assert_eq!(
                prev, &e,
                "member {id} applied a different entry at {}",
                e.index
            ),
            None => {
                self.committed.insert(e.index, e);
            }
        }
    }

    /// Invariants over one member's current state.
    fn observe(&mut self, id: NodeId) {
        let Some(raft) = self.members.get(&id).and_then(|m| m.raft.as_ref()) else {
            return;
        };
        if raft.role() == Role::Leader {
            let term = raft.term();
            if let Some(&other) = self.leaders.get(&term) {
                assert_eq!(other, id, "two leaders in term {term}: {other} and {id}");
            }
            self.leaders.insert(term, id);
        }
        let log = raft.log();
        assert!(
            raft.commit_index() <= log.last_index(),
            "member {id} commits past its log"
        );
        for i in log.first_index()..=raft.commit_index() {
            if let Some(e) = self.committed.get(&i) {
                assert_eq!(
                    log.get(i),
                    Some(e),
                    "member {id} holds a different committed entry at {i}"
                );
            }
        }
    }

    /// Check every member's invariants (cheap enough to run after every step).
    pub fn check(&mut self) {
        for id in self.ids() {
            self.observe(id);
        }
        self.check_matches();
    }

    /// A leader's `match` for a follower still in its term is a promise that
    /// the follower holds the leader's log up to there durably: commits rest
    /// on it.
    fn check_matches(&self) {
        for (&lid, l) in &self.members {
            let Some(leader) = l.raft.as_ref().filter(|r| r.is_leader()) else {
                continue;
            };
            for (&fid, f) in &self.members {
                let (Some(p), Some(fr)) = (leader.progress(fid), f.raft.as_ref()) else {
                    continue;
                };
                if fid == lid || fr.term() != leader.term() || p.matched == 0 {
                    continue;
                }
                let Some(want) = leader.log().term(p.matched) else {
                    continue;
                };
                let d = &f.disk;
                if d.snapshot_index() >= p.matched {
                    continue;
                }
                let got = d
                    .entries
                    .iter()
                    .find(|e| e.index == p.matched)
                    .map(|e| e.term);
                assert_eq!(
                    got,
                    Some(want),
                    "leader {lid} counts on {fid} holding entry {} of term {want}, but its disk has {got:?}",
                    p.matched
                );
            }
        }
    }

    // ---- inputs -------------------------------------------------------------

    pub fn advance(&mut self, d: Micros) {
        self.now += d;
    }

    pub fn tick(&mut self, id: NodeId) {
        let now = self.now;
        if let Some(r) = self.members.get_mut(&id).and_then(|m| m.raft.as_mut()) {
            r.tick(now);
            self.process(id);
        }
    }

    pub fn tick_all(&mut self) {
        for id in self.ids() {
            self.tick(id);
        }
    }

    /// Make `id` start a (pre-)campaign: jump past any election deadline and tick only it.
    pub fn campaign(&mut self, id: NodeId) {
        let t = self.member(id).cfg.election_timeout;
        self.advance(2 * t);
        self.tick(id);
    }

    /// Step one message into its recipient (lost if the recipient is crashed or cut off).
    pub fn step(&mut self, msg: Message) {
        self.delivered += 1;
        if self.cut.contains(&msg.from) || self.cut.contains(&msg.to) {
            return;
        }
        let now = self.now;
        let to = msg.to;
        if let Some(r) = self.members.get_mut(&to).and_then(|m| m.raft.as_mut()) {
            r.step(now, msg);
            self.process(to);
        }
    }

    /// Remove and return the queued messages matching `pred`, at most `limit`.
    pub fn take(&mut self, pred: impl Fn(&Message) -> bool, limit: usize) -> Vec<Message> {
        let mut taken = Vec::new();
        let mut rest = VecDeque::new();
        for m in self.net.drain(..) {
            if taken.len() < limit && pred(&m) {
                taken.push(m);
            } else {
                rest.push_back(m);
            }
        }
        self.net = rest;
        taken
    }

    /// Deliver the messages queued now that match (not the ones they cause).
    pub fn deliver(&mut self, pred: impl Fn(&Message) -> bool, limit: usize) -> usize {
        let msgs = self.take(pred, limit);
        let n = msgs.len();
        for m in msgs {
            self.step(m);
        }
        n
    }

    pub fn deliver_all(&mut self) -> usize {
        self.deliver(|_| true, usize::MAX)
    }

    /// Deliver until no message is in flight (ticks are never triggered).
    pub fn stabilize(&mut self) {
        for _ in 0..10_000 {
            if self.deliver_all() == 0 {
                return;
            }
        }
        panic!("messages keep flowing after 10000 rounds");
    }

    pub fn propose(&mut self, id: NodeId, cmds: &[&[u8]]) -> Result<Vec<Ticket>, ProposeError> {
        let mut tickets = Vec::new();
        let mut result = Ok(());
        for c in cmds {
            match self.raft_mut(id).propose(c.to_vec()) {
                Ok(t) => tickets.push(t),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.process(id);
        result.map(|()| tickets)
    }

    pub fn propose_membership(
        &mut self,
        id: NodeId,
        next: Membership,
    ) -> Result<Ticket, ProposeError> {
        let r = self.raft_mut(id).propose_membership(next);
        self.process(id);
        r
    }

    pub fn poll(&mut self, id: NodeId, term: Term) -> Result<(), AppointError> {
        let now = self.now;
        let r = self.raft_mut(id).poll(now, term);
        self.process(id);
        r
    }

    pub fn appoint(
        &mut self,
        id: NodeId,
        term: Term,
        membership: Membership,
    ) -> Result<(), AppointError> {
        let now = self.now;
        let r = self.raft_mut(id).appoint(now, term, membership);
        self.process(id);
        r
    }

    /// Hold `id`'s syncs until [`Cluster::sync`] (or release them now).
    pub fn set_hold(&mut self, id: NodeId, hold: bool) {
        self.member_mut(id).hold = hold;
        if !hold {
            self.sync(id);
        }
    }

    /// Take a snapshot of `id`'s state machine at `index` (default: all
    /// applied) and compact its log, as an engine does. The snapshot is
    /// written to disk after every Ready still waiting for a sync (at once if
    /// none is): written earlier, it could sit in front of stale entries that
    /// a pending Ready is about to replace.
    pub fn compact(&mut self, id: NodeId, index: Option<Index>) {
        let m = self.member_mut(id);
        let index = index.unwrap_or(m.sm_index);
        assert!(index <= m.sm_index, "cannot snapshot past what was applied");
        let data = encode_sm(&m.sm[..index as usize]);
        let raft = m.raft.as_mut().expect("alive");
        raft.compact(index, data);
        let Some(snap) = raft.snapshot().cloned() else {
            return;
        };
        let u = Unsynced {
            compaction: Some(snap),
            ..Unsynced::default()
        };
        match m.unsynced.back() {
            Some(last) => {
                let number = last.number;
                m.unsynced.push_back(Unsynced { number, ..u });
            }
            None => m.disk.write(&u),
        }
    }

    /// Power loss: all in-memory state and every unsynced Ready are gone.
    pub fn crash(&mut self, id: NodeId) {
        let m = self.member_mut(id);
        m.raft = None;
        m.unsynced.clear();
    }

    /// Start again from the disk alone.
    pub fn restart(&mut self, id: NodeId) {
        let now = self.now;
        let m = self.member_mut(id);
        assert!(m.raft.is_none(), "member {id} is running");
        m.incarnation += 1;
        let mut cfg = m.cfg.clone();
        cfg.seed ^= m.incarnation.wrapping_mul(0x51_7CC1_B727_220A);
        let d = m.disk.clone();
        m.sm = d
            .snapshot
            .as_ref()
            .map_or_else(Vec::new, |s| decode_sm(&s.data));
        m.sm_index = d.snapshot_index();
        let raft = Raft::restore(cfg, d.hs, d.snapshot, d.entries, m.initial.clone(), now);
        m.raft = Some(raft);
        self.process(id);
    }

    // ---- helpers for tests --------------------------------------------------

    /// Elect `id` (elected mode) and let everything settle.
    pub fn elect(&mut self, id: NodeId) {
        self.campaign(id);
        self.stabilize();
        assert_eq!(
            self.raft(id).role(),
            Role::Leader,
            "member {id} did not win"
        );
    }

    /// Poll `polled` at `term` and appoint `leader` over `members` (appointed mode).
    pub fn appoint_after_poll(
        &mut self,
        leader: NodeId,
        term: Term,
        polled: &[NodeId],
        members: &[NodeId],
    ) {
        for &p in polled {
            self.poll(p, term).expect("poll");
        }
        self.appoint(leader, term, Membership::new(members.to_vec(), Vec::new()))
            .expect("appoint");
        self.stabilize();
    }

    /// `index:term` of every entry in `id`'s in-memory log.
    pub fn log_terms(&self, id: NodeId) -> Vec<(Index, Term)> {
        let log = self.raft(id).log();
        (log.first_index()..=log.last_index())
            .map(|i| (i, log.term(i).expect("in log")))
            .collect()
    }

    pub fn queued(&self, pred: impl Fn(&Message) -> bool) -> Vec<&Message> {
        self.net.iter().filter(|m| pred(m)).collect()
    }
}

/// A matcher for one link: `from` and `to` of `None` match anyone.
pub fn link(from: Option<NodeId>, to: Option<NodeId>) -> impl Fn(&Message) -> bool {
    move |m: &Message| from.is_none_or(|f| m.from == f) && to.is_none_or(|t| m.to == t)
}
