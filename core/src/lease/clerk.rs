//! The clerk's side: read leases, and the minister's locks that stop them.
//!
//! A clerk grants a read lease only while [`Clerk::serving`] holds: the
//! engine says it heard its minister and the president within H, it has
//! loaded its minister's lock table for its newest term, it is past its
//! restart wait, and it has a round trip with that minister within H (the
//! minister echoed one of its replies; see the module doc of [`super`]).
//! A lock stops overlapping grants at once, revokes the overlapping read
//! leases, and is reported clear once none of them is still valid by the
//! granter's rule and the clerk has applied the log index the lock names.

use std::collections::{BTreeMap, BTreeSet};

use super::config::LeaseConfig;
use super::error::{LeaseError, NotServing};
use super::messages::{ClerkReply, Granted, Lock, LockBatch, LockOp, LockTableSnapshot};
use super::region::{Claim, Mode, Region};
use super::table::LeaseTable;
use super::{LeaseId, LockId, SessionId};
use crate::meta::types::Ino;
use crate::raft::{Index, Micros, NodeId, Term};

/// What the engine must carry out after a clerk turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClerkAction {
    /// Send to the minister `to`.
    Reply { to: NodeId, reply: ClerkReply },
    /// Tell the holder its read lease is revoked (it should release it).
    Revoke { session: SessionId, lease: LeaseId },
}

#[derive(Debug)]
pub struct Clerk {
    cfg: LeaseConfig,
    id: NodeId,
    incarnation: u64,
    /// Newest minister term seen (from batches or [`Clerk::observe_term`]).
    term: Term,
    /// The minister of `term`, once a batch of that term arrived.
    minister: Option<NodeId>,
    /// The table of `term` is loaded; `locks` and `next_seq` are that term's.
    loaded: bool,
    next_seq: u64,
    locks: BTreeMap<LockId, Lock>,
    leases: LeaseTable,
    applied: Index,
    /// No grants and no clear reports before this (restart wait).
    wait_until: Micros,
    /// Latest own send time the minister of `term` echoed back.
    echoed: Option<Micros>,
    last_batch_sent_at: Option<Micros>,
    engine_serving: bool,
    awaiting: BTreeSet<LockId>,
    reported: BTreeSet<LockId>,
    actions: Vec<ClerkAction>,
}

impl Clerk {
    /// A clerk that starts, or restarts, at `now`: its lease table is empty
    /// (leases are volatile), so it waits out the longest read lease it could
    /// have granted before, and serves nothing until it has loaded a lock
    /// table. `incarnation` must differ on every start of this shard (it
    /// keeps lease ids and round-trip proofs of different lives apart); it
    /// must fit 32 bits.
    pub fn start(cfg: LeaseConfig, id: NodeId, incarnation: u64, now: Micros) -> Clerk {
        cfg.validate();
        let wait_until = if cfg.faults.clerk_skips_restart_wait {
            now
        } else {
            cfg.drift.granter_deadline(now, cfg.max_read_duration)
        };
        Clerk {
            leases: LeaseTable::new(incarnation, cfg.max_leases, cfg.max_leases_per_session),
            cfg,
            id,
            incarnation,
            term: 0,
            minister: None,
            loaded: false,
            next_seq: 0,
            locks: BTreeMap::new(),
            applied: 0,
            wait_until,
            echoed: None,
            last_batch_sent_at: None,
            engine_serving: false,
            awaiting: BTreeSet::new(),
            reported: BTreeSet::new(),
            actions: Vec::new(),
        }
    }

    pub fn term(&self) -> Term {
        self.term
    }

    pub fn lock_count(&self) -> usize {
        self.locks.len()
    }

    pub fn lease_count(&self) -> usize {
        self.leases.len()
    }

    /// The engine learned of a newer minister term (from Raft or the
    /// president's map): older ministers' batches are ignored from now on,
    /// and nothing is granted until the new minister's table arrives.
    pub fn observe_term(&mut self, term: Term) {
        if term > self.term {
            self.enter_term(term);
        }
    }

    fn enter_term(&mut self, term: Term) {
        self.term = term;
        self.minister = None;
        self.loaded = false;
        self.echoed = None;
        self.last_batch_sent_at = None;
        self.awaiting.clear();
        self.reported.clear();
    }

    /// The clerk's state machine has applied the ministry log up to `index`.
    pub fn applied(&mut self, now: Micros, index: Index) {
        self.applied = self.applied.max(index);
        self.report_newly_clear(now);
    }

    /// Why the clerk may not grant at `now`, if it may not.
    pub fn serving(&self, now: Micros) -> Result<(), NotServing> {
        if !self.engine_serving {
            return Err(NotServing::Fenced);
        }
        if !self.loaded {
            return Err(NotServing::NoLockTable);
        }
        if now < self.wait_until {
            return Err(NotServing::RestartWait);
        }
        let h = self.cfg.drift.holder_span(self.cfg.serve_timeout);
        if self.echoed.is_none_or(|s| now >= s.saturating_add(h)) {
            return Err(NotServing::NoMinisterContact);
        }
        Ok(())
    }

    /// A lock batch from a minister. A batch of an older term is refused
    /// (thesis problem 1); the clerk answers it with its own term so the
    /// stale minister learns it was replaced.
    pub fn on_batch(&mut self, now: Micros, batch: LockBatch) -> Result<(), LeaseError> {
        if batch.term < self.term && !self.cfg.faults.clerk_ignores_term {
            let reply = ClerkReply {
                term: self.term,
                clerk: self.id,
                incarnation: self.incarnation,
                sent_at: now,
                minister_sent_at: None,
                next_seq: None,
                clear: Vec::new(),
            };
            self.actions.push(ClerkAction::Reply {
                to: batch.minister,
                reply,
            });
            return Err(LeaseError::StaleTerm {
                got: batch.term,
                newest: self.term,
            });
        }
        if batch.term != self.term {
            self.enter_term(batch.term);
        }
        self.minister = Some(batch.minister);
        self.last_batch_sent_at = Some(
            self.last_batch_sent_at
                .map_or(batch.sent_at, |t| t.max(batch.sent_at)),
        );
        if let Some(table) = batch.table {
            // Never step back within a term: a late, older table would drop
            // locks the minister already counts on.
            if !self.loaded || table.next_seq >= self.next_seq {
                self.load_table(now, table);
            }
        }
        if self.loaded {
            for (seq, op) in (batch.first_seq..).zip(batch.ops) {
                if seq == self.next_seq {
                    self.apply_op(now, op);
                    self.next_seq += 1;
                }
            }
        }
        self.awaiting = batch
            .awaiting
            .into_iter()
            .take(self.cfg.max_ops_per_batch)
            .collect();
        self.reported.clear();
        if let Some(echo) = batch.echo {
            if self.loaded && echo.incarnation == self.incarnation && echo.sent_at <= now {
                self.echoed = Some(self.echoed.map_or(echo.sent_at, |e| e.max(echo.sent_at)));
            }
        }
        let clear: Vec<LockId> = self.clear_awaited(now);
        self.reported.extend(clear.iter().copied());
        self.reply(now, clear);
        self.check(now);
        Ok(())
    }

    fn load_table(&mut self, now: Micros, table: LockTableSnapshot) {
        self.locks.clear();
        for lock in table.locks.into_iter().take(self.cfg.max_locks) {
            self.install(now, lock);
        }
        self.next_seq = table.next_seq;
        self.loaded = true;
    }

    fn apply_op(&mut self, now: Micros, op: LockOp) {
        match op {
            LockOp::Lock(lock) => {
                if self.locks.len() < self.cfg.max_locks || self.locks.contains_key(&lock.id) {
                    self.install(now, lock);
                }
            }
            LockOp::Unlock(id) => {
                self.locks.remove(&id);
            }
        }
    }

    /// Holds `lock` and revokes every read lease it overlaps.
    fn install(&mut self, _now: Micros, lock: Lock) {
        if !lock.region.is_valid() {
            return;
        }
        let hit: Vec<(LeaseId, SessionId)> = self
            .leases
            .overlapping(lock.file, lock.region)
            .map(|l| (l.id, l.session))
            .collect();
        for (lease, session) in hit {
            if self.leases.revoke(lease) {
                self.actions.push(ClerkAction::Revoke { session, lease });
            }
        }
        self.locks.insert(lock.id, lock);
    }

    fn locked(&self, file: Ino, region: &Region) -> Option<&Lock> {
        self.locks
            .values()
            .find(|l| l.file == file && l.region.overlaps(region))
    }

    /// The lock is installed, the file exists here (problem 4), the restart
    /// wait is over, and no read lease it overlaps is still valid.
    fn is_clear(&self, now: Micros, id: LockId) -> bool {
        let Some(lock) = self.locks.get(&id) else {
            return false;
        };
        self.loaded
            && self.applied >= lock.index
            && now >= self.wait_until
            && !self
                .leases
                .overlapping(lock.file, lock.region)
                .any(|l| l.is_valid(now))
    }

    fn clear_awaited(&self, now: Micros) -> Vec<LockId> {
        self.awaiting
            .iter()
            .copied()
            .filter(|id| self.is_clear(now, *id))
            .collect()
    }

    fn reply(&mut self, now: Micros, clear: Vec<LockId>) {
        let Some(to) = self.minister else { return };
        let reply = ClerkReply {
            term: self.term,
            clerk: self.id,
            incarnation: self.incarnation,
            sent_at: now,
            minister_sent_at: self.last_batch_sent_at,
            next_seq: self.loaded.then_some(self.next_seq),
            clear,
        };
        self.actions.push(ClerkAction::Reply { to, reply });
    }

    /// Tells the minister at once when a lock it waits for became clear.
    fn report_newly_clear(&mut self, now: Micros) {
        let fresh: Vec<LockId> = self
            .clear_awaited(now)
            .into_iter()
            .filter(|id| !self.reported.contains(id))
            .collect();
        if !fresh.is_empty() {
            self.reported.extend(fresh.iter().copied());
            self.reply(now, self.clear_awaited(now));
        }
    }

    /// Grants a read lease for at most `max_read_duration`.
    pub fn grant_read(
        &mut self,
        now: Micros,
        session: SessionId,
        file: Ino,
        region: Region,
        duration: Micros,
    ) -> Result<Granted, LeaseError> {
        if !region.is_valid() {
            return Err(LeaseError::BadRegion);
        }
        if duration == 0 {
            return Err(LeaseError::ZeroDuration);
        }
        self.serving(now).map_err(LeaseError::NotServing)?;
        if let Some(lock) = self.locked(file, &region) {
            return Err(LeaseError::Conflict {
                file,
                region: lock.region,
                mode: Mode::Write,
            });
        }
        let duration = duration.min(self.cfg.max_read_duration);
        let claim = Claim {
            file,
            region,
            mode: Mode::Read,
            holder: session,
        };
        let lease = self
            .leases
            .grant(claim, self.cfg.drift.granter_deadline(now, duration))?;
        self.check(now);
        Ok(Granted {
            lease,
            session,
            file,
            region,
            duration,
        })
    }

    /// Extends a read lease by `duration` (capped) from now; returns the
    /// duration granted, which the holder counts from its send time.
    pub fn refresh_read(
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
        self.leases.refresh_capped(
            now,
            lease,
            session,
            duration,
            self.cfg.max_read_duration,
            self.cfg.drift,
        )
    }

    pub fn release_read(
        &mut self,
        now: Micros,
        session: SessionId,
        lease: LeaseId,
    ) -> Result<(), LeaseError> {
        self.leases.release(lease, session)?;
        self.report_newly_clear(now);
        Ok(())
    }

    /// The session ended: its leases go.
    pub fn end_session(&mut self, now: Micros, session: SessionId) {
        self.leases.remove_session(session);
        self.report_newly_clear(now);
    }

    /// Once per turn: whether the engine lets this clerk serve (heard its
    /// minister and the president within H), expiry, and clear reports.
    pub fn tick(&mut self, now: Micros, engine_serving: bool) {
        self.engine_serving = engine_serving;
        self.leases.expire(now);
        self.report_newly_clear(now);
        self.check(now);
    }

    /// The actions produced since the last call, in order.
    pub fn take_actions(&mut self) -> Vec<ClerkAction> {
        std::mem::take(&mut self.actions)
    }

    /// Invariant: every read lease overlapping a held lock has been revoked.
    fn check(&self, now: Micros) {
        if cfg!(debug_assertions) {
            for lock in self.locks.values() {
                for l in self.leases.overlapping(lock.file, lock.region) {
                    assert!(
                        l.revoked,
                        "read lease {:?} overlaps lock {:?} unrevoked",
                        l.id, lock.id
                    );
                }
            }
            assert!(self.locks.len() <= self.cfg.max_locks);
            let _ = now;
        }
    }
}

#[cfg(test)]
mod tests;
