//! Leases on the node (issue 5): each shard that serves a ministry runs the
//! sans-IO lease core of its role, a [`Minister`] while it leads the ministry
//! at a term, a [`Clerk`] while it follows, and turns what they do into
//! messages, client answers and reports.
//!
//! * Roles follow Raft, checked on every tick and before every input: a new
//!   leader term makes a new `Minister` (with the ministry's other voters as
//!   its clerks; later membership changes go to `set_clerks`); stepping down
//!   drops it. A follower starts a `Clerk` with a fresh incarnation, and
//!   feeds it Raft's term (`observe_term`) and applied index (`applied`).
//! * Write acquires are queued in the minister and granted later: the
//!   request is parked here (at most `write_wait`) and answered when the
//!   minister grants or refuses it. One that waited too long is answered
//!   `Timeout` and dropped; if the minister grants it afterwards, the lease
//!   is released at once (nobody holds it).
//! * Revocations are kept per session (bounded, and only as long as the
//!   revoked lease could still be valid) until a `Watch` of that session
//!   takes them; a watch with nothing to take is parked (at most
//!   `watch_wait`), so revocations reach holders over the ordinary
//!   request/answer connections.
//! * A clerk the minister counts fenced (`ReportClerk`) is listed in the
//!   shard's member reports as unreachable until it leaves the ministry:
//!   the president replaces it as it does any member a minister cannot
//!   reach (thesis 6.2).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::wire::{LeaseMsg, LeaseRefusal, LeaseReply, LeaseRequest};
use crate::lease::{
    Clerk, ClerkAction, ClerkReply, LeaseConfig, LeaseId, LockBatch, Minister, MinisterAction,
    Mode, NotServing, SessionId, WriteRequest,
};
use crate::raft::{GroupId, Index, Micros, NodeId, Term};

/// How a node runs leases (see the module doc). Off unless the engine turns
/// it on with [`super::NodeCore::enable_leases`].
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub config: LeaseConfig,
    /// Clerk incarnations on this node start above this. The engine passes
    /// the wall clock at start in milliseconds (so a restarted node's
    /// clerks never reuse an incarnation unless the clock went back), and
    /// each clerk start takes the larger of that plus the node's monotonic
    /// milliseconds and one more than the shard's previous incarnation.
    /// Lease ids hold it in 32 bits, so it is taken modulo 2^32.
    pub incarnation_base: u64,
    /// Longest a write acquire is parked before it is answered `Timeout`.
    pub write_wait: Micros,
    /// Longest a watch is parked before it is answered `Done`.
    pub watch_wait: Micros,
    /// Parked watches and kept revocations per shard.
    pub max_watches: usize,
    pub max_revocations: usize,
}

impl LeaseSettings {
    /// Defaults for H (`serve_timeout`): read leases at most H, write
    /// leases at most 2H (`LeaseConfig::new`), writes parked 3H, watches H.
    pub fn new(serve_timeout: Micros) -> LeaseSettings {
        LeaseSettings {
            config: LeaseConfig::new(serve_timeout),
            incarnation_base: 0,
            write_wait: 3 * serve_timeout,
            watch_wait: serve_timeout,
            max_watches: 4096,
            max_revocations: 4096,
        }
    }
}

/// What the shard's Raft says about its role, for [`ShardLeases::sync`].
#[derive(Clone, Debug)]
pub(super) struct RaftView {
    pub group: GroupId,
    pub term: Term,
    pub leader: bool,
    /// Voters of the ministry (the shard itself included).
    pub voters: Vec<NodeId>,
    pub applied: Index,
}

enum Role {
    Idle,
    Minister {
        group: GroupId,
        minister: Minister,
        clerks: Vec<NodeId>,
    },
    Clerk {
        group: GroupId,
        clerk: Clerk,
    },
}

struct WriteWait {
    /// None once answered `Timeout`: a late grant is released at once.
    token: Option<u64>,
    until: Micros,
    term: Term,
}

struct Watch {
    token: u64,
    session: SessionId,
    until: Micros,
}

/// Answers for clients (by the engine's token) and messages to send.
#[derive(Default)]
pub(super) struct LeaseOut {
    pub answers: Vec<(u64, LeaseReply)>,
    pub send: Vec<(NodeId, LeaseMsg)>,
}

/// One shard's leases.
pub(super) struct ShardLeases {
    id: NodeId,
    role: Role,
    last_incarnation: u64,
    next_request: u64,
    waits: BTreeMap<u64, WriteWait>,
    watches: Vec<Watch>,
    /// Revoked leases not yet taken by a watch: (session, lease, keep until).
    revoked: VecDeque<(SessionId, LeaseId, Micros)>,
    /// Clerks the minister counts fenced, reported until they leave.
    fenced: BTreeSet<NodeId>,
    serving: bool,
}

impl ShardLeases {
    pub fn new(id: NodeId) -> ShardLeases {
        ShardLeases {
            id,
            role: Role::Idle,
            last_incarnation: 0,
            next_request: 0,
            waits: BTreeMap::new(),
            watches: Vec::new(),
            revoked: VecDeque::new(),
            fenced: BTreeSet::new(),
            serving: false,
        }
    }

    /// Whether this shard is its ministry's minister and serves.
    pub fn is_serving_minister(&self) -> bool {
        self.serving && matches!(self.role, Role::Minister { .. })
    }

    /// Clerks this minister counts fenced (for the member report).
    pub fn fenced_clerks(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.fenced.iter().copied()
    }

    #[cfg(test)]
    /// Counts for tests: (is minister, is clerk, parked writes, parked watches).
    pub fn describe(&self) -> (bool, bool, usize, usize) {
        (
            matches!(self.role, Role::Minister { .. }),
            matches!(self.role, Role::Clerk { .. }),
            self.waits.len(),
            self.watches.len(),
        )
    }

    /// Bring the role in line with Raft (`None`: the shard serves no ministry).
    pub fn sync(
        &mut self,
        s: &LeaseSettings,
        now: Micros,
        view: Option<&RaftView>,
        out: &mut LeaseOut,
    ) {
        let Some(v) = view else {
            if !matches!(self.role, Role::Idle) {
                self.retire(out);
            }
            return;
        };
        let clerks: Vec<NodeId> = v.voters.iter().copied().filter(|c| *c != self.id).collect();
        match &mut self.role {
            Role::Minister {
                group,
                minister,
                clerks: known,
            } if v.leader && *group == v.group && minister.term() == v.term => {
                if *known != clerks {
                    minister.set_clerks(now, &clerks);
                    *known = clerks.clone();
                    self.fenced.retain(|c| clerks.contains(c));
                }
                return;
            }
            Role::Clerk { group, clerk } if !v.leader && *group == v.group => {
                clerk.observe_term(v.term);
                clerk.applied(now, v.applied);
                return;
            }
            _ => {}
        }
        self.retire(out);
        if v.leader {
            let minister = Minister::new(s.config.clone(), self.id, v.term, &clerks, now);
            self.role = Role::Minister {
                group: v.group,
                minister,
                clerks,
            };
        } else {
            let base = s.incarnation_base.wrapping_add(now / 1000);
            let incarnation = base.max(self.last_incarnation + 1) % (1 << 32);
            self.last_incarnation = incarnation;
            let mut clerk = Clerk::start(s.config.clone(), self.id, incarnation, now);
            clerk.observe_term(v.term);
            clerk.applied(now, v.applied);
            self.role = Role::Clerk {
                group: v.group,
                clerk,
            };
        }
    }

    /// The role ends: everyone waiting is answered, what it kept is dropped.
    fn retire(&mut self, out: &mut LeaseOut) {
        let refusal = match self.role {
            Role::Minister { .. } => NotServing::Deposed,
            _ => NotServing::Fenced,
        };
        for (_, w) in std::mem::take(&mut self.waits) {
            if let Some(token) = w.token {
                out.answers.push((
                    token,
                    LeaseReply::Refused(LeaseRefusal::NotServing(refusal)),
                ));
            }
        }
        for w in std::mem::take(&mut self.watches) {
            out.answers.push((w.token, LeaseReply::Done));
        }
        self.revoked.clear();
        self.fenced.clear();
        self.role = Role::Idle;
    }

    /// One tick: the role's own tick with the shard's freshness, then its actions.
    /// On the minister: the valid write lease `lease` of `session` (for
    /// write grants). `None` when this shard is not the minister.
    pub fn held_write(
        &self,
        now: Micros,
        session: SessionId,
        lease: LeaseId,
    ) -> Option<Result<crate::lease::table::Lease, crate::lease::LeaseError>> {
        match &self.role {
            Role::Minister { minister, .. } => Some(minister.held_write(now, session, lease)),
            _ => None,
        }
    }

    pub fn tick(&mut self, s: &LeaseSettings, now: Micros, serving: bool, out: &mut LeaseOut) {
        self.serving = serving;
        match &mut self.role {
            Role::Idle => {}
            Role::Minister { minister, .. } => minister.tick(now, serving),
            Role::Clerk { clerk, .. } => clerk.tick(now, serving),
        }
        self.drain(s, now, out);
        self.expire(now, out);
    }

    pub fn on_batch(
        &mut self,
        s: &LeaseSettings,
        now: Micros,
        group: GroupId,
        batch: LockBatch,
        out: &mut LeaseOut,
    ) {
        if let Role::Clerk { group: g, clerk } = &mut self.role {
            if *g == group {
                // A stale term is answered by the clerk itself (deposing the sender).
                let _ = clerk.on_batch(now, batch);
                self.drain(s, now, out);
            }
        }
    }

    pub fn on_reply(
        &mut self,
        s: &LeaseSettings,
        now: Micros,
        group: GroupId,
        reply: ClerkReply,
        out: &mut LeaseOut,
    ) {
        if let Role::Minister {
            group: g, minister, ..
        } = &mut self.role
        {
            if *g == group {
                minister.on_clerk_reply(now, reply);
                // Grant at once what the reply made ready.
                minister.tick(now, self.serving);
                self.drain(s, now, out);
            }
        }
    }

    /// A client's lease request, answered now or parked (`token` names the
    /// answer); `hint` and `members` say where the minister and the
    /// ministry are, for `Elsewhere`.
    pub fn request(
        &mut self,
        s: &LeaseSettings,
        now: Micros,
        req: LeaseRequest,
        token: u64,
        (hint, members): (Option<NodeId>, Vec<NodeId>),
        out: &mut LeaseOut,
    ) {
        let term = match &self.role {
            Role::Minister { minister, .. } => minister.term(),
            Role::Clerk { clerk, .. } => clerk.term(),
            Role::Idle => 0,
        };
        let node = self.id;
        let elsewhere = |hint: Option<NodeId>| LeaseReply::Elsewhere {
            hint,
            members: members.clone(),
        };
        let answer = match (&mut self.role, req) {
            (Role::Idle, _) => elsewhere(hint),
            // NodeCore answers these itself (they need the namespace).
            (_, LeaseRequest::Grants { .. } | LeaseRequest::DeleteGrants { .. }) => {
                LeaseReply::Refused(LeaseRefusal::BadRequest(
                    "grants are answered by the node".into(),
                ))
            }
            (_, LeaseRequest::Watch { session, .. }) => {
                let taken: Vec<LeaseId> = self
                    .revoked
                    .iter()
                    .filter(|(s2, _, _)| *s2 == session)
                    .map(|(_, l, _)| *l)
                    .collect();
                if !taken.is_empty() {
                    self.revoked.retain(|(s2, _, _)| *s2 != session);
                    LeaseReply::Revoked(taken)
                } else if self.watches.len() >= s.max_watches {
                    LeaseReply::Done
                } else {
                    self.watches.push(Watch {
                        token,
                        session,
                        until: now.saturating_add(s.watch_wait),
                    });
                    return;
                }
            }
            (
                Role::Minister { minister, .. },
                LeaseRequest::Acquire {
                    file,
                    region,
                    mode: Mode::Write,
                    session,
                    duration,
                    min_index,
                    ..
                },
            ) => {
                self.next_request += 1;
                let request = self.next_request;
                minister.tick(now, self.serving);
                let req = WriteRequest {
                    session,
                    request,
                    file,
                    region,
                    duration,
                    index: min_index,
                };
                match minister.request_write(now, req) {
                    Err(e) => LeaseReply::Refused(e.into()),
                    Ok(()) => {
                        self.waits.insert(
                            request,
                            WriteWait {
                                token: Some(token),
                                until: now.saturating_add(s.write_wait),
                                term,
                            },
                        );
                        // An uncontended region with a lingering lock is granted in this turn.
                        minister.tick(now, self.serving);
                        self.drain(s, now, out);
                        return;
                    }
                }
            }
            (
                Role::Minister { clerks, .. },
                LeaseRequest::Acquire {
                    mode: Mode::Read, ..
                },
            ) => {
                // A minister keeps no read leases: they come from clerks.
                if clerks.is_empty() {
                    LeaseReply::Refused(LeaseRefusal::NoClerks)
                } else {
                    LeaseReply::Elsewhere {
                        hint: None,
                        members: clerks.clone(),
                    }
                }
            }
            (
                Role::Minister { minister, .. },
                LeaseRequest::Refresh {
                    session,
                    lease,
                    mode: Mode::Write,
                    duration,
                    ..
                },
            ) => match minister.refresh_write(now, session, lease, duration) {
                Ok(duration) => LeaseReply::Refreshed { lease, duration },
                Err(e) => LeaseReply::Refused(e.into()),
            },
            (
                Role::Minister { minister, .. },
                LeaseRequest::Release {
                    session,
                    lease,
                    mode: Mode::Write,
                    ..
                },
            ) => {
                let r = minister.release_write(now, session, lease);
                // Unlocks travel in this turn (they take priority on the clerks).
                minister.tick(now, self.serving);
                self.drain(s, now, out);
                match r {
                    Ok(()) => LeaseReply::Done,
                    Err(e) => LeaseReply::Refused(e.into()),
                }
            }
            (
                Role::Clerk { clerk, .. },
                LeaseRequest::Acquire {
                    file,
                    region,
                    mode: Mode::Read,
                    session,
                    duration,
                    ..
                },
            ) => match clerk.grant_read(now, session, file, region, duration) {
                Ok(granted) => LeaseReply::Granted {
                    granted,
                    term,
                    node,
                    drift_ppm: s.config.drift.ppm(),
                },
                Err(e) => LeaseReply::Refused(e.into()),
            },
            (
                Role::Clerk { clerk, .. },
                LeaseRequest::Refresh {
                    session,
                    lease,
                    mode: Mode::Read,
                    duration,
                    ..
                },
            ) => match clerk.refresh_read(now, session, lease, duration) {
                Ok(duration) => LeaseReply::Refreshed { lease, duration },
                Err(e) => LeaseReply::Refused(e.into()),
            },
            (
                Role::Clerk { clerk, .. },
                LeaseRequest::Release {
                    session,
                    lease,
                    mode: Mode::Read,
                    ..
                },
            ) => {
                let r = clerk.release_read(now, session, lease);
                self.drain(s, now, out);
                match r {
                    Ok(()) => LeaseReply::Done,
                    Err(e) => LeaseReply::Refused(e.into()),
                }
            }
            (
                Role::Clerk { .. },
                LeaseRequest::Acquire {
                    mode: Mode::Write, ..
                },
            ) => elsewhere(hint),
            // A refresh or release of the other role's lease: this shard
            // holds no such lease (it changed roles since, or it never did).
            (_, LeaseRequest::Refresh { lease, .. } | LeaseRequest::Release { lease, .. }) => {
                LeaseReply::Refused(LeaseRefusal::Unknown(lease))
            }
        };
        out.answers.push((token, answer));
    }

    /// Carry out what the role wants done.
    fn drain(&mut self, s: &LeaseSettings, now: Micros, out: &mut LeaseOut) {
        let keep = now.saturating_add(
            s.config
                .drift
                .granter_span(s.config.max_read_duration.max(s.config.max_write_duration)),
        );
        let mut revoked = Vec::new();
        match &mut self.role {
            Role::Idle => {}
            Role::Minister {
                group, minister, ..
            } => {
                let mut release = Vec::new();
                for a in minister.take_actions() {
                    match a {
                        MinisterAction::Batch { to, batch } => out.send.push((
                            to,
                            LeaseMsg::LockBatch {
                                ministry: *group,
                                to,
                                batch,
                            },
                        )),
                        MinisterAction::Grant { request, granted } => {
                            match self.waits.remove(&request) {
                                Some(WriteWait {
                                    token: Some(token),
                                    term,
                                    ..
                                }) => out.answers.push((
                                    token,
                                    LeaseReply::Granted {
                                        granted,
                                        term,
                                        node: self.id,
                                        drift_ppm: s.config.drift.ppm(),
                                    },
                                )),
                                // Nobody waits for it: give it back at once.
                                _ => release.push((granted.session, granted.lease)),
                            }
                        }
                        MinisterAction::Refuse { request, error, .. } => {
                            if let Some(WriteWait {
                                token: Some(token), ..
                            }) = self.waits.remove(&request)
                            {
                                out.answers.push((token, LeaseReply::Refused(error.into())));
                            }
                        }
                        MinisterAction::Revoke { session, lease } => revoked.push((session, lease)),
                        MinisterAction::ReportClerk { clerk } => {
                            self.fenced.insert(clerk);
                        }
                    }
                }
                for (session, lease) in release {
                    // Granted this turn to this session: it is there to release.
                    let _ = minister.release_write(now, session, lease);
                }
            }
            Role::Clerk { group, clerk } => {
                for a in clerk.take_actions() {
                    match a {
                        ClerkAction::Reply { to, reply } => out.send.push((
                            to,
                            LeaseMsg::ClerkReply {
                                ministry: *group,
                                to,
                                reply,
                            },
                        )),
                        ClerkAction::Revoke { session, lease } => revoked.push((session, lease)),
                    }
                }
            }
        }
        for (session, lease) in revoked {
            self.revoke(s, session, lease, keep, out);
        }
    }

    /// Tell a watching holder now, or keep it for its next watch.
    fn revoke(
        &mut self,
        s: &LeaseSettings,
        session: SessionId,
        lease: LeaseId,
        keep: Micros,
        out: &mut LeaseOut,
    ) {
        if let Some(i) = self.watches.iter().position(|w| w.session == session) {
            let w = self.watches.swap_remove(i);
            out.answers
                .push((w.token, LeaseReply::Revoked(vec![lease])));
            return;
        }
        if self.revoked.len() >= s.max_revocations {
            self.revoked.pop_front();
        }
        self.revoked.push_back((session, lease, keep));
    }

    /// Answer what waited too long; forget revocations of leases that ended.
    fn expire(&mut self, now: Micros, out: &mut LeaseOut) {
        for w in self.waits.values_mut() {
            if now >= w.until {
                if let Some(token) = w.token.take() {
                    out.answers
                        .push((token, LeaseReply::Refused(LeaseRefusal::Timeout)));
                }
            }
        }
        let (done, kept): (Vec<Watch>, Vec<Watch>) = std::mem::take(&mut self.watches)
            .into_iter()
            .partition(|w| now >= w.until);
        self.watches = kept;
        for w in done {
            out.answers.push((w.token, LeaseReply::Done));
        }
        self.revoked.retain(|(_, _, keep)| now < *keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::Region;
    use crate::meta::types::Ino;

    const H: Micros = 100_000;
    const TERM: Term = 5;
    const M: NodeId = 1;

    /// A minister (shard 1) and two clerks (2, 3) wired by hand.
    struct Ministry {
        s: LeaseSettings,
        shards: BTreeMap<NodeId, ShardLeases>,
        /// Shards whose messages are lost (both ways).
        cut: BTreeSet<NodeId>,
        answers: Vec<(u64, LeaseReply)>,
        now: Micros,
    }

    fn view(leader: bool) -> RaftView {
        RaftView {
            group: 9,
            term: TERM,
            leader,
            voters: vec![1, 2, 3],
            applied: 10,
        }
    }

    impl Ministry {
        fn new() -> Ministry {
            let s = LeaseSettings::new(H);
            let mut shards = BTreeMap::new();
            for id in [1, 2, 3] {
                let mut l = ShardLeases::new(id);
                l.sync(&s, 0, Some(&view(id == M)), &mut LeaseOut::default());
                shards.insert(id, l);
            }
            Ministry {
                s,
                shards,
                cut: BTreeSet::new(),
                answers: Vec::new(),
                now: 0,
            }
        }

        fn deliver(&mut self, mut out: LeaseOut) {
            for _ in 0..16 {
                self.answers.append(&mut out.answers);
                let send = std::mem::take(&mut out.send);
                if send.is_empty() {
                    return;
                }
                for (to, msg) in send {
                    let from_cut = match &msg {
                        LeaseMsg::LockBatch { .. } => self.cut.contains(&M),
                        LeaseMsg::ClerkReply { reply, .. } => self.cut.contains(&reply.clerk),
                    };
                    if from_cut || self.cut.contains(&to) {
                        continue;
                    }
                    let l = self.shards.get_mut(&to).expect("a shard of the ministry");
                    match msg {
                        LeaseMsg::LockBatch {
                            ministry, batch, ..
                        } => l.on_batch(&self.s, self.now, ministry, batch, &mut out),
                        LeaseMsg::ClerkReply {
                            ministry, reply, ..
                        } => l.on_reply(&self.s, self.now, ministry, reply, &mut out),
                    }
                }
            }
        }

        /// Tick every shard each millisecond for `d`.
        fn run(&mut self, d: Micros) {
            let end = self.now + d;
            while self.now < end {
                self.now += 1_000;
                let mut out = LeaseOut::default();
                for l in self.shards.values_mut() {
                    l.tick(&self.s, self.now, true, &mut out);
                }
                self.deliver(out);
            }
        }

        fn ask(&mut self, shard: NodeId, req: LeaseRequest, token: u64) {
            let mut out = LeaseOut::default();
            let l = self.shards.get_mut(&shard).expect("shard");
            l.request(
                &self.s,
                self.now,
                req,
                token,
                (Some(M), vec![1, 2, 3]),
                &mut out,
            );
            self.deliver(out);
        }

        fn answer(&mut self, token: u64) -> Option<LeaseReply> {
            let i = self.answers.iter().position(|(t, _)| *t == token)?;
            Some(self.answers.remove(i).1)
        }
    }

    fn acquire(mode: Mode, session: SessionId, start: u64, end: u64) -> LeaseRequest {
        LeaseRequest::Acquire {
            ministry: 9,
            file: Ino(42),
            region: Region::new(start, end).expect("non-empty"),
            mode,
            session,
            duration: H,
            min_index: 10,
        }
    }

    #[test]
    fn roles_follow_raft() {
        let mut m = Ministry::new();
        assert_eq!(m.shards[&1].describe(), (true, false, 0, 0));
        assert_eq!(m.shards[&2].describe(), (false, true, 0, 0));
        m.run(5 * H);
        m.ask(M, acquire(Mode::Write, 8, 0, 10), 1);
        m.run(H);
        assert!(matches!(
            m.answer(1),
            Some(LeaseReply::Granted {
                term: TERM,
                node: M,
                ..
            })
        ));
        // A parked write is answered when the minister steps down.
        m.ask(M, acquire(Mode::Write, 9, 0, 10), 2);
        assert_eq!(m.shards[&1].describe().2, 1);
        let mut out = LeaseOut::default();
        let s = m.s.clone();
        let l = m.shards.get_mut(&M).expect("minister");
        l.sync(&s, m.now, Some(&view(false)), &mut out);
        m.deliver(out);
        assert_eq!(
            m.answer(2),
            Some(LeaseReply::Refused(LeaseRefusal::NotServing(
                NotServing::Deposed
            )))
        );
        assert_eq!(m.shards[&1].describe(), (false, true, 0, 0));
    }

    #[test]
    fn a_write_revokes_an_overlapping_read_and_waits_for_its_release() {
        let mut m = Ministry::new();
        m.run(5 * H);
        m.ask(2, acquire(Mode::Read, 7, 0, 100), 1);
        let Some(LeaseReply::Granted {
            granted, node: 2, ..
        }) = m.answer(1)
        else {
            panic!("the clerk grants a read lease");
        };
        // The minister sends read acquires to a clerk, clerks send writes to the minister.
        m.ask(M, acquire(Mode::Read, 7, 0, 100), 2);
        assert!(matches!(
            m.answer(2),
            Some(LeaseReply::Elsewhere { hint: None, .. })
        ));
        m.ask(3, acquire(Mode::Write, 7, 0, 100), 3);
        assert!(matches!(
            m.answer(3),
            Some(LeaseReply::Elsewhere { hint: Some(M), .. })
        ));
        m.ask(
            2,
            LeaseRequest::Watch {
                ministry: 9,
                session: 7,
            },
            4,
        );
        assert_eq!(m.answer(4), None, "a watch with nothing to take is parked");
        m.ask(M, acquire(Mode::Write, 8, 50, 150), 5);
        m.run(10_000);
        assert_eq!(m.answer(4), Some(LeaseReply::Revoked(vec![granted.lease])));
        assert_eq!(m.answer(5), None, "the read lease is still valid");
        m.ask(
            2,
            LeaseRequest::Release {
                ministry: 9,
                session: 7,
                lease: granted.lease,
                mode: Mode::Read,
            },
            6,
        );
        assert_eq!(m.answer(6), Some(LeaseReply::Done));
        m.run(5_000);
        assert!(matches!(m.answer(5), Some(LeaseReply::Granted { .. })));
        // A watch with nothing revoked ends after `watch_wait`.
        m.ask(
            2,
            LeaseRequest::Watch {
                ministry: 9,
                session: 7,
            },
            7,
        );
        m.run(m.s.watch_wait + 2_000);
        assert_eq!(m.answer(7), Some(LeaseReply::Done));
    }

    #[test]
    fn a_silent_clerk_delays_a_write_by_2h_and_is_reported() {
        let mut m = Ministry::new();
        m.run(5 * H);
        m.cut.insert(3);
        let asked = m.now;
        m.ask(M, acquire(Mode::Write, 8, 0, 10), 1);
        let mut granted_at = None;
        while m.now < asked + 4 * H {
            m.run(1_000);
            if let Some(a) = m.answer(1) {
                assert!(matches!(a, LeaseReply::Granted { .. }), "{a:?}");
                granted_at = Some(m.now);
                break;
            }
        }
        let waited = granted_at.expect("granted within 4H") - asked;
        assert!(
            waited >= H && waited <= 2 * H + 2 * m.s.config.heartbeat,
            "{waited}"
        );
        assert_eq!(m.shards[&M].fenced_clerks().collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn a_write_that_waits_too_long_times_out_and_a_late_grant_is_released() {
        let mut m = Ministry::new();
        m.s.write_wait = H / 2;
        m.run(5 * H);
        m.ask(M, acquire(Mode::Write, 8, 0, 10), 1);
        m.run(1_000);
        assert!(matches!(m.answer(1), Some(LeaseReply::Granted { .. })));
        // Session 9 waits behind session 8's lease, which is never released.
        m.ask(M, acquire(Mode::Write, 9, 0, 10), 2);
        m.run(m.s.write_wait + 2_000);
        assert_eq!(
            m.answer(2),
            Some(LeaseReply::Refused(LeaseRefusal::Timeout))
        );
        // Session 8's lease ends; the abandoned request is granted and given back.
        m.run(3 * H);
        m.ask(M, acquire(Mode::Write, 10, 0, 10), 3);
        m.run(5_000);
        assert!(matches!(m.answer(3), Some(LeaseReply::Granted { .. })));
    }
}
