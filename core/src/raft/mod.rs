//! One sans-IO Raft core with two ways to get a leader.
//!
//! * [`Mode::Elected`] (the president group): pre-vote, check-quorum, learners,
//!   single-voter membership changes.
//! * [`Mode::Appointed`] (ministries): no elections. The president polls a
//!   majority at a fresh term ([`Raft::poll`]) and appoints the most
//!   up-to-date member ([`Raft::appoint`]).
//!
//! The engine drives it like raft-rs's `RawNode`: feed [`Raft::tick`],
//! [`Raft::step`] and [`Raft::propose`]; then take a [`Ready`], persist its
//! hard state, snapshot and entries with one sync, send its messages, apply its
//! committed entries, and report the sync with [`Raft::persisted`].

mod appoint;
mod election;
pub mod log;
pub mod progress;
pub mod quorum;
mod replication;
pub mod timing;
pub mod types;

use std::collections::{BTreeMap, VecDeque};

use thiserror::Error;

pub use log::RaftLog;
pub use progress::{Progress, ProgressState};
pub use types::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Elected,
    Appointed,
}

/// Deliberate bugs, off in production, that the simulator turns on to prove
/// its checkers catch them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectedFaults {
    /// Grant votes without checking the term or an earlier vote.
    pub vote_ignores_term: bool,
    /// Leader commits entries on its own durable copy alone.
    pub commit_without_majority: bool,
    /// Follower accepts appends from a leader with a lower term.
    pub accept_stale_term: bool,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    pub group: GroupId,
    pub mode: Mode,
    /// How often a leader sends heartbeats.
    pub heartbeat_interval: Micros,
    /// Lower bound of the randomized election timeout, in `[t, 2t)`.
    pub election_timeout: Micros,
    /// Appends in flight per follower.
    pub max_inflight: usize,
    /// Soft cap on one append message.
    pub max_append_bytes: usize,
    /// H: a member that has not heard from its leader within H stops serving.
    pub serve_timeout: Micros,
    /// Seeds the election-timeout jitter; the core owns no randomness source.
    pub seed: u64,
    pub faults: InjectedFaults,
}

impl Config {
    pub fn new(id: NodeId, group: GroupId, mode: Mode) -> Self {
        Config {
            id,
            group,
            mode,
            heartbeat_interval: 50_000,
            election_timeout: 500_000,
            max_inflight: 64,
            max_append_bytes: 1 << 20,
            serve_timeout: 1_000_000,
            seed: id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ group,
            faults: InjectedFaults::default(),
        }
    }

    fn validate(&self) {
        assert!(self.heartbeat_interval > 0 && self.election_timeout > self.heartbeat_interval);
        assert!(self.max_inflight > 0 && self.max_append_bytes > 0);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProposeError {
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("a membership change is already in progress")]
    ChangeInProgress,
    #[error("the leader has not committed an entry in its term yet")]
    NotSettled,
    #[error("a membership change may add or remove one voter at a time")]
    NotSingleChange,
    #[error("membership changes are the president's job in appointed groups")]
    WrongMode,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AppointError {
    #[error("term {term} is stale; this member is at term {current}")]
    StaleTerm { term: Term, current: Term },
    #[error("this member already backs {leader} in term {term}")]
    TermTaken { term: Term, leader: NodeId },
    #[error("this member is not in the membership it was appointed to lead")]
    NotMember,
    #[error("only appointed groups take appointments")]
    WrongMode,
}

/// A member's answer to the president's poll: its durable log tail, sent only
/// after the poll's term is durable (so the old minister is fenced).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PollAnswer {
    pub group: GroupId,
    pub from: NodeId,
    pub term: Term,
    pub last_term: Term,
    pub last_index: Index,
}

/// Observable role changes, for the engine's logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    BecameLeader { term: Term },
    SteppedDown { term: Term },
}

/// Work for the engine, produced by [`Raft::ready`].
#[derive(Debug, Default)]
pub struct Ready {
    /// Pass to [`Raft::persisted`] once everything to persist here is durable.
    pub number: u64,
    /// Persist first.
    pub hard_state: Option<HardState>,
    /// Install into the state machine and persist; voids every log entry.
    pub snapshot: Option<Snapshot>,
    /// Persist after the above; the first entry voids all entries at and after its index.
    pub entries: Vec<Entry>,
    /// Send now (leader appends may go out before the leader's own sync).
    pub messages: Vec<Message>,
    /// Send only once this Ready and all before it are durable.
    pub persisted_messages: Vec<Message>,
    /// Send only once durable (the poll's term must be fenced on disk).
    pub poll_answers: Vec<PollAnswer>,
    /// Apply in order.
    pub committed: Vec<Entry>,
    pub events: Vec<Event>,
}

impl Ready {
    /// Whether this Ready carries anything that needs an fdatasync.
    pub fn needs_sync(&self) -> bool {
        self.hard_state.is_some() || self.snapshot.is_some() || !self.entries.is_empty()
    }
}

#[derive(Debug, Default)]
struct Outbox {
    hard_state_dirty: bool,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    poll_answers: Vec<PollAnswer>,
    events: Vec<Event>,
    commit_moved: bool,
}

/// A snapshot of where a member stands, for status tables and the president.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    pub id: NodeId,
    pub group: GroupId,
    pub role: Role,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub last_index: Index,
    pub last_term: Term,
    pub commit: Index,
    pub applied: Index,
    pub durable: Index,
}

pub struct Raft {
    cfg: Config,
    role: Role,
    hs: HardState,
    leader: Option<NodeId>,
    log: RaftLog,
    commit: Index,
    applied: Index,
    membership: Membership,
    /// The membership in force where the log starts (from the snapshot, or
    /// the one the member was created with): what is left after truncating
    /// every config entry.
    base_membership: Membership,
    /// Leader only: one per other member.
    progress: BTreeMap<NodeId, Progress>,
    /// Candidate and pre-candidate only.
    votes: BTreeMap<NodeId, bool>,
    /// Latest snapshot, kept to bring lagging members up to date.
    snapshot: Option<Snapshot>,
    election_deadline: Micros,
    last_heartbeat: Micros,
    last_quorum_check: Micros,
    /// When a valid message from the current leader last arrived.
    last_leader_contact: Option<Micros>,
    /// When this member last became leader.
    leader_since: Micros,
    /// Reused buffers for per-ack and per-turn work on the leader.
    scratch_indexes: Vec<Index>,
    scratch_ids: Vec<NodeId>,
    rng: u64,
    out: Outbox,
    /// Readies handed out but not yet reported durable: (number, last index they make durable).
    unstable: VecDeque<(u64, Index)>,
    durable: Index,
    next_ready: u64,
    now: Micros,
}

impl Raft {
    /// A member with an empty log. `hs` carries the term over when a shard
    /// moves between ministries (terms are cluster-wide in appointed mode).
    pub fn new(cfg: Config, hs: HardState, membership: Membership, now: Micros) -> Self {
        Self::restore(cfg, hs, None, Vec::new(), membership, now)
    }

    /// A member recovered from disk. `membership` is used when neither the
    /// snapshot nor a config entry names one (a fresh group). `entries` must
    /// be a validated log (consecutive, terms never decreasing), as
    /// `wal::Replay` guarantees; anything else is a bug and panics.
    pub fn restore(
        cfg: Config,
        hs: HardState,
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
        membership: Membership,
        now: Micros,
    ) -> Self {
        cfg.validate();
        let (si, st) = snapshot
            .as_ref()
            .map_or((0, 0), |s| (s.meta.index, s.meta.term));
        let entries: Vec<Entry> = entries.into_iter().filter(|e| e.index > si).collect();
        let log = RaftLog::new(si, st, entries);
        let mut hs = hs;
        // A crash may keep entries whose term record was lost; never go below them.
        if log.last_term() > hs.term {
            hs = HardState {
                term: log.last_term(),
                vote: None,
            };
        }
        let base_membership = snapshot
            .as_ref()
            .map_or(membership, |s| s.meta.membership.clone());
        let membership = log
            .last_config(log.last_index())
            .and_then(|e| match &e.payload {
                Payload::Config(m) => Some(m.clone()),
                _ => None,
            })
            .unwrap_or_else(|| base_membership.clone());
        let durable = log.last_index();
        let mut raft = Raft {
            rng: cfg.seed | 1,
            cfg,
            role: Role::Follower,
            hs,
            leader: None,
            log,
            commit: si,
            applied: si,
            membership,
            base_membership,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            snapshot,
            election_deadline: 0,
            last_heartbeat: now,
            last_quorum_check: now,
            last_leader_contact: None,
            leader_since: now,
            scratch_indexes: Vec::new(),
            scratch_ids: Vec::new(),
            out: Outbox::default(),
            unstable: VecDeque::new(),
            durable,
            next_ready: 1,
            now,
        };
        raft.reset_election_deadline();
        raft
    }

    // ---- inputs -------------------------------------------------------------

    /// Advance time: elections (elected mode), heartbeats, quorum checks.
    pub fn tick(&mut self, now: Micros) {
        self.now = self.now.max(now);
        match self.role {
            Role::Leader => self.tick_leader(),
            _ => self.tick_election(),
        }
    }

    /// Handle one message from another member. Stale and late messages are
    /// dropped quietly; they are normal on a real network.
    pub fn step(&mut self, now: Micros, msg: Message) {
        self.now = self.now.max(now);
        if msg.group != self.cfg.group || msg.to != self.cfg.id || msg.from == self.cfg.id {
            return;
        }
        if !self.step_term(&msg) {
            return;
        }
        match msg.body {
            MessageBody::PreVote {
                last_term,
                last_index,
            } => self.on_pre_vote(msg.from, msg.term, last_term, last_index),
            MessageBody::PreVoteResponse { granted } => {
                self.on_vote_response(msg.from, msg.term, granted, true)
            }
            MessageBody::Vote {
                last_term,
                last_index,
            } => self.on_vote(msg.from, msg.term, last_term, last_index),
            MessageBody::VoteResponse { granted } => {
                self.on_vote_response(msg.from, msg.term, granted, false)
            }
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => self.on_append(msg.from, msg.term, prev_index, prev_term, entries, commit),
            MessageBody::AppendResponse {
                success,
                index,
                hint,
            } => self.on_append_response(msg.from, msg.term, success, index, hint),
            MessageBody::InstallSnapshot { snapshot } => {
                self.on_install_snapshot(msg.from, msg.term, snapshot)
            }
            MessageBody::SnapshotResponse { index } => {
                self.on_snapshot_response(msg.from, msg.term, index)
            }
        }
    }

    /// Append a command. Returns its ticket at once; it commits later.
    pub fn propose(&mut self, command: Vec<u8>) -> Result<Ticket, ProposeError> {
        self.propose_payload(Payload::Command(command))
    }

    /// Change the voter/learner set (elected mode): one voter at a time, after
    /// the leader committed an entry of its term, never two changes at once.
    pub fn propose_membership(&mut self, next: Membership) -> Result<Ticket, ProposeError> {
        if self.cfg.mode != Mode::Elected {
            return Err(ProposeError::WrongMode);
        }
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if self
            .log
            .last_config(self.log.last_index())
            .is_some_and(|e| e.index > self.commit)
        {
            return Err(ProposeError::ChangeInProgress);
        }
        if self.log.term(self.commit) != Some(self.hs.term) {
            return Err(ProposeError::NotSettled);
        }
        if !self.membership.is_single_change(&next) {
            return Err(ProposeError::NotSingleChange);
        }
        self.propose_payload(Payload::Config(next))
    }

    fn propose_payload(&mut self, payload: Payload) -> Result<Ticket, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        Ok(self.append_own(payload))
    }

    /// The engine made Ready `number` (and all before it) durable.
    pub fn persisted(&mut self, number: u64) {
        while let Some(&(n, last)) = self.unstable.front() {
            if n > number {
                break;
            }
            self.unstable.pop_front();
            self.durable = self.durable.max(last);
        }
        if self.role == Role::Leader {
            self.maybe_commit();
        }
    }

    /// The state machine has applied through `index` and encoded itself as
    /// `data`: keep it as the snapshot and drop the log up to there.
    ///
    /// The engine must persist this snapshot after the writes of every Ready
    /// handed out before it (in log order): a snapshot that reaches the disk
    /// ahead of earlier entries could be followed by stale ones after a crash.
    pub fn compact(&mut self, index: Index, data: Vec<u8>) {
        assert!(index <= self.applied, "snapshot beyond what was applied");
        if index <= self.log.snapshot_index() {
            return;
        }
        let term = self
            .log
            .term(index)
            .expect("applied entries are in the log");
        let membership = self.membership_at(index);
        self.base_membership = membership.clone();
        self.log.compact(index);
        self.snapshot = Some(Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                membership,
            },
            data,
        });
    }

    // ---- outputs ------------------------------------------------------------

    pub fn has_ready(&self) -> bool {
        let o = &self.out;
        o.hard_state_dirty
            || o.snapshot.is_some()
            || !o.entries.is_empty()
            || !o.messages.is_empty()
            || !o.persisted_messages.is_empty()
            || !o.poll_answers.is_empty()
            || !o.events.is_empty()
            || self.commit > self.applied
            || (self.role == Role::Leader && self.has_pending_appends())
    }

    /// Everything produced since the last call: one batch per turn, so every
    /// proposal of the turn shares one append per follower and one sync.
    pub fn ready(&mut self) -> Ready {
        if self.role == Role::Leader {
            self.flush_appends();
        }
        let out = std::mem::take(&mut self.out);
        let number = self.next_ready;
        self.next_ready += 1;
        let mut ready = Ready {
            number,
            hard_state: out.hard_state_dirty.then_some(self.hs),
            snapshot: out.snapshot,
            entries: out.entries,
            messages: out.messages,
            persisted_messages: out.persisted_messages,
            poll_answers: out.poll_answers,
            committed: Vec::new(),
            events: out.events,
        };
        if ready.snapshot.is_some() || !ready.entries.is_empty() {
            self.unstable.push_back((number, self.log.last_index()));
        }
        if self.commit > self.applied {
            let from = self.applied.max(self.log.snapshot_index()) + 1;
            ready.committed.reserve((self.commit + 1 - from) as usize);
            for i in from..=self.commit {
                let e = self.log.get(i).expect("committed entries are in the log");
                ready.committed.push(e.clone());
            }
            self.applied = self.commit;
        }
        ready
    }

    // ---- queries ------------------------------------------------------------

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }
    pub fn group(&self) -> GroupId {
        self.cfg.group
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn term(&self) -> Term {
        self.hs.term
    }
    pub fn hard_state(&self) -> HardState {
        self.hs
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
    pub fn commit_index(&self) -> Index {
        self.commit
    }
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
    pub fn log(&self) -> &RaftLog {
        &self.log
    }
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }
    pub fn progress(&self, id: NodeId) -> Option<&Progress> {
        self.progress.get(&id)
    }
    pub fn last_leader_contact(&self) -> Option<Micros> {
        self.last_leader_contact
    }

    pub fn status(&self) -> Status {
        Status {
            id: self.cfg.id,
            group: self.cfg.group,
            role: self.role,
            term: self.hs.term,
            leader: self.leader,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            commit: self.commit,
            applied: self.applied,
            durable: self.durable,
        }
    }

    /// Whether this member may answer reads and grant leases at `now`: a
    /// follower must have heard from its leader within H, a leader from a
    /// majority within H. This self-fencing is what the 2H lease rule needs.
    pub fn is_serving(&self, now: Micros) -> bool {
        let fresh =
            |t: Option<Micros>| t.is_some_and(|t| now.saturating_sub(t) < self.cfg.serve_timeout);
        match self.role {
            Role::Leader => self.membership.voters.len() == 1 || fresh(self.quorum_contact()),
            _ => self.leader.is_some() && fresh(self.last_leader_contact),
        }
    }

    /// Leader: members not heard from within H (reported to the president).
    /// Follower: the leader, if it went quiet for H.
    pub fn unreachable_members(&self, now: Micros) -> Vec<NodeId> {
        let h = self.cfg.serve_timeout;
        match self.role {
            Role::Leader => self
                .progress
                .iter()
                .filter(|(id, p)| {
                    self.membership.is_voter(**id)
                        && now.saturating_sub(p.last_heard.unwrap_or(self.leader_since)) >= h
                })
                .map(|(id, _)| *id)
                .collect(),
            _ => match (self.leader, self.last_leader_contact) {
                (Some(l), Some(t)) if now.saturating_sub(t) >= h => vec![l],
                _ => Vec::new(),
            },
        }
    }

    /// What became of a proposal.
    pub fn ticket_status(&self, t: Ticket) -> TicketStatus {
        match self.log.term(t.index) {
            Some(term) if term == t.term => {
                if t.index <= self.commit {
                    TicketStatus::Committed
                } else {
                    TicketStatus::Pending
                }
            }
            Some(_) if t.index <= self.commit => TicketStatus::Superseded,
            // Another, uncommitted entry here does not settle it: a later
            // leader may still hold and commit ours.
            _ => TicketStatus::Unknown,
        }
    }

    // ---- shared internals ---------------------------------------------------

    fn next_rand(&mut self) -> u64 {
        // xorshift64*: deterministic jitter without a randomness source.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn reset_election_deadline(&mut self) {
        let t = self.cfg.election_timeout;
        let jitter = self.next_rand() % t;
        self.election_deadline = self.now + t + jitter;
    }

    fn set_hard_state(&mut self, hs: HardState) {
        if hs != self.hs {
            self.hs = hs;
            self.out.hard_state_dirty = true;
        }
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        let was_leader = self.role == Role::Leader;
        if term > self.hs.term {
            // In appointed mode the vote records the accepted minister.
            let vote = if self.cfg.mode == Mode::Appointed {
                leader
            } else {
                None
            };
            self.set_hard_state(HardState { term, vote });
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.progress.clear();
        self.votes.clear();
        self.reset_election_deadline();
        if was_leader {
            self.out
                .events
                .push(Event::SteppedDown { term: self.hs.term });
        }
    }

    fn become_leader(&mut self, first: Payload) {
        assert!(self.role != Role::Leader);
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.votes.clear();
        let next = self.log.last_index() + 1;
        let window = self.cfg.max_inflight;
        let me = self.cfg.id;
        self.progress = self
            .membership
            .all()
            .filter(|&id| id != me)
            .map(|id| (id, Progress::new(next, window)))
            .collect();
        self.last_heartbeat = self.now;
        self.last_quorum_check = self.now;
        self.leader_since = self.now;
        self.out
            .events
            .push(Event::BecameLeader { term: self.hs.term });
        self.append_own(first);
        self.broadcast_heartbeat();
    }

    /// The leader appends one of its own entries.
    fn append_own(&mut self, payload: Payload) -> Ticket {
        debug_assert_eq!(self.role, Role::Leader);
        let index = self.log.last_index() + 1;
        let entry = Entry {
            term: self.hs.term,
            index,
            payload,
        };
        if let Payload::Config(m) = &entry.payload {
            self.apply_membership(m.clone());
        }
        self.log.append(entry.clone());
        self.out.entries.push(entry);
        if self.membership.voters.len() == 1 && self.membership.is_voter(self.cfg.id) {
            // A lone voter commits on its own durable copy; nothing to wait for.
            self.maybe_commit();
        }
        Ticket {
            term: self.hs.term,
            index,
        }
    }

    /// Entries from `from` on were replaced or removed: nothing past it is
    /// durable any more, whatever earlier syncs said.
    fn note_truncation(&mut self, from: Index) {
        let keep = from.saturating_sub(1);
        self.durable = self.durable.min(keep);
        for (_, last) in self.unstable.iter_mut() {
            *last = (*last).min(keep);
        }
        self.out.entries.retain(|e| e.index < from);
    }

    fn membership_at(&self, index: Index) -> Membership {
        match self.log.last_config(index).map(|e| &e.payload) {
            Some(Payload::Config(m)) => m.clone(),
            _ => self.base_membership.clone(),
        }
    }

    /// A config takes effect when appended (Raft dissertation §4.1).
    fn apply_membership(&mut self, m: Membership) {
        if self.role == Role::Leader {
            let next = self.log.last_index() + 1;
            let window = self.cfg.max_inflight;
            let me = self.cfg.id;
            self.progress.retain(|id, _| m.contains(*id));
            for id in m.all().filter(|&id| id != me) {
                self.progress
                    .entry(id)
                    .or_insert_with(|| Progress::new(next, window));
            }
        }
        self.membership = m;
    }

    /// After a truncation the effective config is the newest one left.
    fn recompute_membership(&mut self) {
        if self.cfg.mode == Mode::Elected {
            let m = self.membership_at(self.log.last_index());
            self.membership = m;
        }
    }

    fn send(&mut self, to: NodeId, body: MessageBody) {
        let msg = Message {
            group: self.cfg.group,
            from: self.cfg.id,
            to,
            term: self.hs.term,
            body,
        };
        self.out.messages.push(msg);
    }

    fn send_after_persist(&mut self, to: NodeId, term: Term, body: MessageBody) {
        let msg = Message {
            group: self.cfg.group,
            from: self.cfg.id,
            to,
            term,
            body,
        };
        self.out.persisted_messages.push(msg);
    }
}
