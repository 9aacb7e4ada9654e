//! The minister's side, the lock manager: write leases, and the clerk locks
//! that must be in place before one is granted.
//!
//! A write request waits (in a bounded FIFO queue) while it conflicts with a
//! valid write lease of another session or an earlier waiting request;
//! after `revoke_after` the conflicting leases are revoked. Otherwise it
//! needs a clerk lock covering its region: an existing one (held for other
//! write leases, or lingering after them: hot files skip the round trip), or
//! a new one, sent to every clerk in the next batch. The lock is
//! *established* once every clerk reported it clear or is fenced (2H without
//! a reply; the minister then reports the clerk to the president), and the
//! write lease is granted. A lock whose last write lease ended lingers for
//! `linger`, then is unlocked (unlocks go first in each batch).
//!
//! Nothing is granted or refreshed unless the minister has a round trip with
//! a majority of its ministry within H, and not before a new term's quiet
//! period has passed (see the module doc of [`super`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::clerk_link::ClerkLink;
use super::config::LeaseConfig;
use super::error::{LeaseError, NotServing};
use super::messages::{ClerkReply, Granted, Lock, LockBatch, LockOp, LockTableSnapshot};
use super::region::{Claim, Mode, Region};
use super::table::LeaseTable;
use super::{LeaseId, LockId, SessionId};
use crate::meta::types::Ino;
use crate::raft::{Index, Micros, NodeId, Term};

/// A client's request for a write lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteRequest {
    pub session: SessionId,
    /// The client's id for this request, returned with the grant.
    pub request: u64,
    pub file: Ino,
    pub region: Region,
    pub duration: Micros,
    /// The ministry log index at which the file exists.
    pub index: Index,
}

/// What the engine must carry out after a minister turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MinisterAction {
    /// Send to clerk `to` (one per clerk per turn at most).
    Batch { to: NodeId, batch: LockBatch },
    /// A queued write request is granted.
    Grant { request: u64, granted: Granted },
    /// A queued write request cannot be granted after all.
    Refuse {
        session: SessionId,
        request: u64,
        error: LeaseError,
    },
    /// Tell the holder its write lease is revoked (it should release it).
    Revoke { session: SessionId, lease: LeaseId },
    /// The clerk stayed silent for 2H and was counted as fenced: the
    /// president should remove it from the ministry.
    ReportClerk { clerk: NodeId },
}

#[derive(Clone, Debug)]
struct LockState {
    lock: Lock,
    /// Position in the stream; set when the turn's operations are flushed.
    seq: Option<u64>,
    established: bool,
    /// Granted write leases and waiting requests using it.
    users: usize,
    idle_since: Option<Micros>,
    clear_by: BTreeSet<NodeId>,
}

#[derive(Clone, Debug)]
struct Waiting {
    req: WriteRequest,
    arrived: Micros,
    lock: Option<LockId>,
    revoked_others: bool,
}

/// Counters for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinisterStats {
    pub granted: u64,
    pub locks_created: u64,
    pub locks_reused: u64,
    pub fenced_clerks: u64,
    pub revoked: u64,
}

#[derive(Debug)]
pub struct Minister {
    cfg: LeaseConfig,
    id: NodeId,
    term: Term,
    engine_serving: bool,
    deposed: bool,
    majority_at: Option<Micros>,
    /// Clerks removed during the term: the majority's denominator never shrinks
    /// within a term, so this term's majorities keep meeting the previous one's.
    members: usize,
    clerks: BTreeMap<NodeId, ClerkLink>,
    stream: VecDeque<LockOp>,
    stream_first: u64,
    next_seq: u64,
    turn_unlocks: Vec<LockId>,
    turn_locks: Vec<LockId>,
    locks: BTreeMap<LockId, LockState>,
    next_lock: u64,
    writes: LeaseTable,
    lease_lock: BTreeMap<LeaseId, LockId>,
    queue: VecDeque<Waiting>,
    actions: Vec<MinisterAction>,
    stats: MinisterStats,
}

impl Minister {
    /// A minister appointed with `term` at `now`, for a ministry whose other
    /// members are `clerks`. It knows nothing of earlier ministers' locks or
    /// write leases: its first batch to each clerk replaces that clerk's
    /// table, and it grants nothing during its quiet period. Terms must fit
    /// 32 bits (they name the minister's lease ids).
    pub fn new(
        cfg: LeaseConfig,
        id: NodeId,
        term: Term,
        clerks: &[NodeId],
        now: Micros,
    ) -> Minister {
        cfg.validate();
        let clerks: BTreeMap<NodeId, ClerkLink> =
            clerks.iter().map(|c| (*c, ClerkLink::new(now))).collect();
        Minister {
            writes: LeaseTable::new(term, cfg.max_leases, cfg.max_leases_per_session),
            cfg,
            id,
            term,
            engine_serving: false,
            deposed: false,
            majority_at: None,
            members: clerks.len() + 1,
            clerks,
            stream: VecDeque::new(),
            stream_first: 0,
            next_seq: 0,
            turn_unlocks: Vec::new(),
            turn_locks: Vec::new(),
            locks: BTreeMap::new(),
            next_lock: 1,
            lease_lock: BTreeMap::new(),
            queue: VecDeque::new(),
            actions: Vec::new(),
            stats: MinisterStats::default(),
        }
    }

    pub fn term(&self) -> Term {
        self.term
    }

    pub fn stats(&self) -> MinisterStats {
        self.stats
    }

    pub fn is_deposed(&self) -> bool {
        self.deposed
    }

    pub fn lock_count(&self) -> usize {
        self.locks.len()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The engine learned of a newer term: this minister was replaced.
    pub fn observe_term(&mut self, term: Term) {
        if term > self.term {
            self.deposed = true;
        }
    }

    /// The president changed the ministry. Added clerks get the table; a
    /// removed clerk gets no more batches (so it soon stops serving) but is
    /// still waited for until it is fenced.
    pub fn set_clerks(&mut self, now: Micros, clerks: &[NodeId]) {
        for c in clerks {
            if !self.clerks.contains_key(c) {
                self.clerks.insert(*c, ClerkLink::new(now));
                self.members += 1;
            }
        }
        for (id, link) in self.clerks.iter_mut() {
            if !clerks.contains(id) {
                link.removed = true;
            }
        }
    }

    /// Why the minister may not grant or refresh at `now`, if it may not.
    pub fn serving(&self, now: Micros) -> Result<(), NotServing> {
        if self.deposed {
            return Err(NotServing::Deposed);
        }
        if !self.engine_serving {
            return Err(NotServing::Fenced);
        }
        if !self.majority_fresh(now) {
            return Err(NotServing::NoMajority);
        }
        if now < self.quiet_until().unwrap_or(Micros::MAX) {
            return Err(NotServing::NewTermWait);
        }
        Ok(())
    }

    fn majority_fresh(&self, now: Micros) -> bool {
        let fresh = self
            .clerks
            .values()
            .filter(|c| c.round_trip_fresh(&self.cfg, now))
            .count();
        fresh + 1 > self.members / 2
    }

    /// Earlier ministers lose their majority within H of this one getting
    /// it, and their write leases end at most a write-lease duration later.
    fn quiet_until(&self) -> Option<Micros> {
        let d = &self.cfg.drift;
        self.majority_at.map(|m| {
            d.granter_deadline(
                d.granter_deadline(m, self.cfg.serve_timeout),
                self.cfg.max_write_duration,
            )
        })
    }

    /// Queues a write lease request; the grant (or refusal) comes as an action.
    pub fn request_write(&mut self, now: Micros, req: WriteRequest) -> Result<(), LeaseError> {
        if !req.region.is_valid() {
            return Err(LeaseError::BadRegion);
        }
        if req.duration == 0 {
            return Err(LeaseError::ZeroDuration);
        }
        if self.deposed {
            return Err(LeaseError::NotServing(NotServing::Deposed));
        }
        if !self.engine_serving {
            return Err(LeaseError::NotServing(NotServing::Fenced));
        }
        if self
            .queue
            .iter()
            .any(|w| w.req.session == req.session && w.req.request == req.request)
        {
            return Err(LeaseError::DuplicateRequest(req.request));
        }
        if self.queue.len() >= self.cfg.max_queued_writes {
            return Err(LeaseError::QueueFull {
                limit: self.cfg.max_queued_writes,
            });
        }
        let queued = self
            .queue
            .iter()
            .filter(|w| w.req.session == req.session)
            .count();
        if self.writes.session_count(req.session) + queued >= self.cfg.max_leases_per_session {
            return Err(LeaseError::SessionFull {
                session: req.session,
                limit: self.cfg.max_leases_per_session,
            });
        }
        let _ = now;
        self.queue.push_back(Waiting {
            req,
            arrived: now,
            lock: None,
            revoked_others: false,
        });
        Ok(())
    }

    /// Extends a write lease by `duration` (capped) from now; returns the
    /// duration granted, which the holder counts from its send time.
    pub fn refresh_write(
        &mut self,
        now: Micros,
        session: SessionId,
        lease: LeaseId,
        duration: Micros,
    ) -> Result<Micros, LeaseError> {
        if duration == 0 {
            return Err(LeaseError::ZeroDuration);
        }
        self.serving(now).map_err(LeaseError::NotServing)?;
        self.writes.refresh_capped(
            now,
            lease,
            session,
            duration,
            self.cfg.max_write_duration,
            self.cfg.drift,
        )
    }

    /// The valid write lease `lease` of `session`, for signing write grants.
    pub fn held_write(
        &self,
        now: Micros,
        session: SessionId,
        lease: LeaseId,
    ) -> Result<super::table::Lease, LeaseError> {
        self.serving(now).map_err(LeaseError::NotServing)?;
        match self.writes.get(lease) {
            Some(l) if l.session == session && l.is_valid(now) && !l.revoked => Ok(l.clone()),
            Some(l) if l.session == session => Err(LeaseError::Expired(lease)),
            _ => Err(LeaseError::UnknownLease(lease)),
        }
    }

    pub fn release_write(
        &mut self,
        now: Micros,
        session: SessionId,
        lease: LeaseId,
    ) -> Result<(), LeaseError> {
        self.writes.release(lease, session)?;
        self.drop_lease_lock(now, lease);
        Ok(())
    }

    /// The session ended: its write leases and waiting requests go.
    pub fn end_session(&mut self, now: Micros, session: SessionId) {
        for lease in self.writes.remove_session(session) {
            self.drop_lease_lock(now, lease.id);
        }
        let (gone, kept): (Vec<Waiting>, Vec<Waiting>) =
            self.queue.drain(..).partition(|w| w.req.session == session);
        self.queue = kept.into();
        for w in gone {
            if let Some(l) = w.lock {
                self.unuse_lock(now, l);
            }
        }
    }

    fn drop_lease_lock(&mut self, now: Micros, lease: LeaseId) {
        if let Some(l) = self.lease_lock.remove(&lease) {
            self.unuse_lock(now, l);
        }
    }

    fn unuse_lock(&mut self, now: Micros, id: LockId) {
        if let Some(l) = self.locks.get_mut(&id) {
            debug_assert!(l.users > 0);
            l.users -= 1;
            if l.users == 0 {
                l.idle_since = Some(now);
            }
        }
    }

    /// A clerk's reply.
    pub fn on_clerk_reply(&mut self, now: Micros, reply: ClerkReply) {
        if reply.term > self.term {
            self.deposed = true;
            return;
        }
        if reply.term < self.term {
            return;
        }
        let Some(link) = self.clerks.get_mut(&reply.clerk) else {
            return;
        };
        link.on_reply(now, &reply);
        for id in &reply.clear {
            if let Some(l) = self.locks.get_mut(id) {
                if !l.established {
                    l.clear_by.insert(reply.clerk);
                }
            }
        }
        if self.majority_at.is_none() && self.majority_fresh(now) {
            self.majority_at = Some(now);
        }
    }

    /// The end of a turn: whether the engine lets this minister serve
    /// (Raft leader with a quorum, heard the president), expiry, lingering
    /// locks, the queue, grants, and one batch per clerk.
    pub fn tick(&mut self, now: Micros, engine_serving: bool) {
        self.engine_serving = engine_serving;
        if self.deposed {
            return;
        }
        if self.majority_at.is_none() && self.majority_fresh(now) {
            self.majority_at = Some(now);
        }
        for lease in self.writes.expire(now) {
            self.drop_lease_lock(now, lease.id);
        }
        self.unlock_idle(now);
        self.attach_locks(now);
        self.flush();
        self.establish(now);
        self.grant(now);
        self.clerks
            .retain(|_, c| !(c.removed && c.fenced(&self.cfg, self.majority_at, now)));
        self.send_batches(now);
        self.trim_stream();
        self.check();
    }

    /// The actions produced since the last call, in order.
    pub fn take_actions(&mut self) -> Vec<MinisterAction> {
        std::mem::take(&mut self.actions)
    }

    fn unlock(&mut self, id: LockId) {
        if self.locks.remove(&id).is_some() {
            self.turn_unlocks.push(id);
        }
    }

    /// Unlocks idle locks past their linger time, and the oldest idle ones
    /// beyond `max_lingering`.
    fn unlock_idle(&mut self, now: Micros) {
        let mut idle: Vec<(Micros, LockId)> = self
            .locks
            .values()
            .filter(|l| l.users == 0)
            .map(|l| (l.idle_since.unwrap_or(now), l.lock.id))
            .collect();
        idle.sort_unstable();
        let excess = idle.len().saturating_sub(self.cfg.max_lingering);
        for (i, (since, id)) in idle.into_iter().enumerate() {
            if i < excess || now >= since.saturating_add(self.cfg.linger) {
                self.unlock(id);
            }
        }
    }

    /// Frees one idle lock to make room; false if there is none.
    fn evict_idle(&mut self) -> bool {
        let oldest = self
            .locks
            .values()
            .filter(|l| l.users == 0)
            .min_by_key(|l| l.idle_since)
            .map(|l| l.lock.id);
        match oldest {
            Some(id) => {
                self.unlock(id);
                true
            }
            None => false,
        }
    }

    fn conflicts_with_granted(&self, now: Micros, req: &WriteRequest) -> Vec<(SessionId, LeaseId)> {
        let claim = Claim {
            file: req.file,
            region: req.region,
            mode: Mode::Write,
            holder: req.session,
        };
        self.writes
            .overlapping(req.file, req.region)
            .filter(|l| l.is_valid(now) && l.claim().conflicts(&claim))
            .map(|l| (l.session, l.id))
            .collect()
    }

    /// Gives each unblocked waiting request a covering lock (existing or new),
    /// and revokes what blocks requests that waited too long.
    fn attach_locks(&mut self, now: Micros) {
        for i in 0..self.queue.len() {
            let req = self.queue[i].req;
            let blocked_by_earlier = self.queue.iter().take(i).any(|w| {
                w.req.file == req.file
                    && w.req.session != req.session
                    && w.req.region.overlaps(&req.region)
            });
            let granted = self.conflicts_with_granted(now, &req);
            if !granted.is_empty() {
                let w = &mut self.queue[i];
                if !w.revoked_others && now >= w.arrived.saturating_add(self.cfg.revoke_after) {
                    w.revoked_others = true;
                    for (session, lease) in granted {
                        if self.writes.revoke(lease) {
                            self.stats.revoked += 1;
                            self.actions.push(MinisterAction::Revoke { session, lease });
                        }
                    }
                }
                continue;
            }
            if blocked_by_earlier || self.queue[i].lock.is_some() {
                continue;
            }
            let covering = self
                .locks
                .values()
                .filter(|l| l.lock.file == req.file && l.lock.region.contains(&req.region))
                .max_by_key(|l| l.established)
                .map(|l| l.lock.id);
            let id = match covering {
                Some(id) => {
                    self.stats.locks_reused += 1;
                    id
                }
                None => {
                    if self.locks.len() >= self.cfg.max_locks && !self.evict_idle() {
                        continue;
                    }
                    let id = LockId(self.next_lock);
                    self.next_lock += 1;
                    self.stats.locks_created += 1;
                    let lock = Lock {
                        id,
                        file: req.file,
                        region: req.region,
                        index: req.index,
                    };
                    self.locks.insert(
                        id,
                        LockState {
                            lock,
                            seq: None,
                            established: false,
                            users: 0,
                            idle_since: None,
                            clear_by: BTreeSet::new(),
                        },
                    );
                    self.turn_locks.push(id);
                    id
                }
            };
            let l = self.locks.get_mut(&id).expect("just found or made");
            l.users += 1;
            l.idle_since = None;
            self.queue[i].lock = Some(id);
        }
    }

    /// Puts the turn's operations on the stream, unlocks first.
    fn flush(&mut self) {
        for id in std::mem::take(&mut self.turn_unlocks) {
            self.stream.push_back(LockOp::Unlock(id));
            self.next_seq += 1;
        }
        for id in std::mem::take(&mut self.turn_locks) {
            if let Some(l) = self.locks.get_mut(&id) {
                l.seq = Some(self.next_seq);
                self.stream.push_back(LockOp::Lock(l.lock));
                self.next_seq += 1;
            }
        }
        debug_assert_eq!(self.stream_first + self.stream.len() as u64, self.next_seq);
    }

    /// A pending lock is established once every clerk reported it clear or
    /// is fenced; a clerk counted as fenced is reported to the president.
    fn establish(&mut self, now: Micros) {
        if self.serving(now).is_err() {
            return;
        }
        let pending: Vec<LockId> = self
            .locks
            .values()
            .filter(|l| !l.established && l.seq.is_some() && l.users > 0)
            .map(|l| l.lock.id)
            .collect();
        for id in pending {
            let Some(l) = self.locks.get(&id) else {
                continue;
            };
            let mut fenced = Vec::new();
            let ok = self.clerks.iter().all(|(c, link)| {
                l.clear_by.contains(c) || {
                    let f = link.fenced(&self.cfg, self.majority_at, now);
                    if f {
                        fenced.push(*c);
                    }
                    f
                }
            });
            if !ok {
                continue;
            }
            if let Some(l) = self.locks.get_mut(&id) {
                l.established = true;
            }
            for c in fenced {
                if let Some(link) = self.clerks.get_mut(&c) {
                    if !link.reported && !link.removed {
                        link.reported = true;
                        self.stats.fenced_clerks += 1;
                        self.actions.push(MinisterAction::ReportClerk { clerk: c });
                    }
                }
            }
        }
    }

    /// Grants waiting requests whose lock is established, in order.
    fn grant(&mut self, now: Micros) {
        if self.serving(now).is_err() {
            return;
        }
        let mut i = 0;
        while i < self.queue.len() {
            let w = &self.queue[i];
            let ready = w
                .lock
                .and_then(|l| self.locks.get(&l))
                .is_some_and(|l| l.established)
                && self.conflicts_with_granted(now, &w.req).is_empty();
            if !ready {
                i += 1;
                continue;
            }
            let Some(w) = self.queue.remove(i) else { break };
            let req = w.req;
            let lock = w.lock.expect("checked ready");
            let duration = req.duration.min(self.cfg.max_write_duration);
            let claim = Claim {
                file: req.file,
                region: req.region,
                mode: Mode::Write,
                holder: req.session,
            };
            match self
                .writes
                .grant(claim, self.cfg.drift.granter_deadline(now, duration))
            {
                Ok(lease) => {
                    self.lease_lock.insert(lease, lock);
                    self.stats.granted += 1;
                    self.actions.push(MinisterAction::Grant {
                        request: req.request,
                        granted: Granted {
                            lease,
                            session: req.session,
                            file: req.file,
                            region: req.region,
                            duration,
                        },
                    });
                }
                Err(error) => {
                    self.unuse_lock(now, lock);
                    self.actions.push(MinisterAction::Refuse {
                        session: req.session,
                        request: req.request,
                        error,
                    });
                }
            }
        }
    }

    /// One past the highest stream position of an established lock: a clerk
    /// behind it lacks a lock the minister counts on, and is not vouched for.
    fn required_seq(&self) -> u64 {
        self.locks
            .values()
            .filter(|l| l.established)
            .filter_map(|l| l.seq)
            .map(|s| s + 1)
            .max()
            .unwrap_or(0)
    }

    fn send_batches(&mut self, now: Micros) {
        let vouch = self.serving(now).is_ok();
        let required = self.required_seq();
        let awaiting_all: Vec<(LockId, &BTreeSet<NodeId>)> = self
            .locks
            .values()
            .filter(|l| !l.established && l.seq.is_some())
            .map(|l| (l.lock.id, &l.clear_by))
            .collect();
        let mut out = Vec::new();
        for (id, link) in self.clerks.iter() {
            if link.removed {
                continue;
            }
            let has_new = link.sent_upto < self.next_seq;
            let due = link
                .last_sent
                .is_none_or(|t| now >= t.saturating_add(self.cfg.heartbeat));
            if !has_new && !due {
                continue;
            }
            let from = link
                .next_seq
                .filter(|s| *s >= self.stream_first && *s <= self.next_seq);
            let (table, first_seq, ops) = match from {
                None => {
                    let mut locks: Vec<Lock> = self
                        .locks
                        .values()
                        .filter(|l| l.seq.is_some())
                        .map(|l| l.lock)
                        .collect();
                    locks.sort_by_key(|l| l.id);
                    let snap = LockTableSnapshot {
                        next_seq: self.next_seq,
                        locks,
                    };
                    (Some(snap), self.next_seq, Vec::new())
                }
                Some(s) => {
                    let skip = (s - self.stream_first) as usize;
                    let ops: Vec<LockOp> = self
                        .stream
                        .iter()
                        .skip(skip)
                        .take(self.cfg.max_ops_per_batch)
                        .copied()
                        .collect();
                    (None, s, ops)
                }
            };
            let awaiting: Vec<LockId> = awaiting_all
                .iter()
                .filter(|(_, by)| !by.contains(id))
                .map(|(l, _)| *l)
                .take(self.cfg.max_ops_per_batch)
                .collect();
            let echo = if vouch { link.echo(required) } else { None };
            out.push((
                *id,
                LockBatch {
                    term: self.term,
                    minister: self.id,
                    sent_at: now,
                    table,
                    first_seq,
                    ops,
                    awaiting,
                    echo,
                },
            ));
        }
        for (to, batch) in out {
            if let Some(link) = self.clerks.get_mut(&to) {
                link.last_sent = Some(now);
                link.sent_upto = self.next_seq;
            }
            self.actions.push(MinisterAction::Batch { to, batch });
        }
    }

    /// Drops operations every clerk has, and the oldest beyond `max_stream`
    /// (a clerk that far behind gets the whole table).
    fn trim_stream(&mut self) {
        let min_needed = self
            .clerks
            .values()
            .filter(|c| !c.removed)
            .filter_map(|c| c.next_seq)
            .filter(|s| *s >= self.stream_first)
            .min()
            .unwrap_or(self.next_seq);
        let cap_first = self.next_seq.saturating_sub(self.cfg.max_stream as u64);
        let new_first = min_needed.max(cap_first).min(self.next_seq);
        while self.stream_first < new_first {
            self.stream.pop_front();
            self.stream_first += 1;
        }
    }

    fn check(&self) {
        if cfg!(debug_assertions) {
            assert!(self.locks.len() <= self.cfg.max_locks);
            assert!(self.queue.len() <= self.cfg.max_queued_writes);
            assert!(self.stream.len() <= self.cfg.max_stream);
            assert_eq!(self.stream_first + self.stream.len() as u64, self.next_seq);
            for lock in self.lease_lock.values() {
                let l = self.locks.get(lock);
                assert!(
                    l.is_some_and(|l| l.established),
                    "a granted write lease has its lock"
                );
            }
            let users: usize = self.locks.values().map(|l| l.users).sum();
            let held =
                self.lease_lock.len() + self.queue.iter().filter(|w| w.lock.is_some()).count();
            assert_eq!(users, held, "lock users match leases and waiting requests");
        }
    }
}

#[cfg(test)]
mod tests;
