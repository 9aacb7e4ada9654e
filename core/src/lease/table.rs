//! The lease table: the leases one granter has handed out, with their
//! deadlines on the granter's clock (see [`super::clock`]). Used by clerks
//! for read leases and by the minister for write leases. It enforces the
//! table's bounds and answers conflict questions; it does not decide policy.

use std::collections::{BTreeMap, BTreeSet};

use super::clock::Drift;
use super::error::LeaseError;
use super::region::{Claim, Mode, Region};
use super::{LeaseId, SessionId};
use crate::meta::types::Ino;
use crate::raft::Micros;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub id: LeaseId,
    pub session: SessionId,
    pub file: Ino,
    pub region: Region,
    pub mode: Mode,
    /// Honoured while the granter's clock reads less than this.
    pub expires_at: Micros,
    /// A revoke callback went out; refreshes are refused.
    pub revoked: bool,
}

impl Lease {
    pub fn claim(&self) -> Claim {
        Claim {
            file: self.file,
            region: self.region,
            mode: self.mode,
            holder: self.session,
        }
    }

    pub fn is_valid(&self, now: Micros) -> bool {
        now < self.expires_at
    }
}

#[derive(Clone, Debug)]
pub struct LeaseTable {
    leases: BTreeMap<LeaseId, Lease>,
    by_file: BTreeMap<Ino, BTreeSet<LeaseId>>,
    per_session: BTreeMap<SessionId, usize>,
    /// Ids are `base << 32 | counter`, so a restarted granter (new base)
    /// never reuses an id a holder may still refresh.
    base: u64,
    counter: u32,
    max_leases: usize,
    max_per_session: usize,
}

impl LeaseTable {
    pub fn new(base: u64, max_leases: usize, max_per_session: usize) -> LeaseTable {
        assert!(
            base < (1 << 32),
            "lease id base {base} does not fit 32 bits"
        );
        assert!(max_leases > 0 && max_per_session > 0);
        LeaseTable {
            leases: BTreeMap::new(),
            by_file: BTreeMap::new(),
            per_session: BTreeMap::new(),
            base,
            counter: 0,
            max_leases,
            max_per_session,
        }
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    pub fn get(&self, id: LeaseId) -> Option<&Lease> {
        self.leases.get(&id)
    }

    pub fn session_count(&self, session: SessionId) -> usize {
        self.per_session.get(&session).copied().unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// Leases on `file` whose region overlaps `region` (valid or not yet expired away).
    pub fn overlapping(&self, file: Ino, region: Region) -> impl Iterator<Item = &Lease> + '_ {
        self.by_file
            .get(&file)
            .into_iter()
            .flatten()
            .filter_map(|id| self.leases.get(id))
            .filter(move |l| l.region.overlaps(&region))
    }

    /// A lease valid at `now` that conflicts with `claim`.
    pub fn conflicting(&self, claim: &Claim, now: Micros) -> Option<&Lease> {
        self.overlapping(claim.file, claim.region)
            .find(|l| l.is_valid(now) && l.claim().conflicts(claim))
    }

    /// Adds a lease (the caller has checked conflicts). Fails only on bounds.
    pub fn grant(&mut self, claim: Claim, expires_at: Micros) -> Result<LeaseId, LeaseError> {
        if !claim.region.is_valid() {
            return Err(LeaseError::BadRegion);
        }
        if self.leases.len() >= self.max_leases {
            return Err(LeaseError::TableFull {
                limit: self.max_leases,
            });
        }
        if self.session_count(claim.holder) >= self.max_per_session {
            return Err(LeaseError::SessionFull {
                session: claim.holder,
                limit: self.max_per_session,
            });
        }
        self.counter = self.counter.checked_add(1).ok_or(LeaseError::TableFull {
            limit: u32::MAX as usize,
        })?;
        let id = LeaseId((self.base << 32) | u64::from(self.counter));
        debug_assert!(!self.leases.contains_key(&id));
        self.leases.insert(
            id,
            Lease {
                id,
                session: claim.holder,
                file: claim.file,
                region: claim.region,
                mode: claim.mode,
                expires_at,
                revoked: false,
            },
        );
        self.by_file.entry(claim.file).or_default().insert(id);
        *self.per_session.entry(claim.holder).or_insert(0) += 1;
        self.check();
        Ok(id)
    }

    fn holder_lease(&mut self, id: LeaseId, session: SessionId) -> Result<&mut Lease, LeaseError> {
        let lease = self
            .leases
            .get_mut(&id)
            .ok_or(LeaseError::UnknownLease(id))?;
        if lease.session != session {
            return Err(LeaseError::NotHolder(id));
        }
        Ok(lease)
    }

    /// Moves a valid, unrevoked lease's deadline to `expires_at` (never back).
    pub fn refresh(
        &mut self,
        now: Micros,
        id: LeaseId,
        session: SessionId,
        expires_at: Micros,
    ) -> Result<(), LeaseError> {
        let lease = self.holder_lease(id, session)?;
        if !lease.is_valid(now) {
            return Err(LeaseError::Expired(id));
        }
        if lease.revoked {
            return Err(LeaseError::Revoked(id));
        }
        lease.expires_at = lease.expires_at.max(expires_at);
        Ok(())
    }

    /// Extends a lease by `duration` from `now`, capped at `max`, counted by
    /// the granter's rule; returns the duration granted, which the holder
    /// counts from its send time.
    pub fn refresh_capped(
        &mut self,
        now: Micros,
        id: LeaseId,
        session: SessionId,
        duration: Micros,
        max: Micros,
        drift: Drift,
    ) -> Result<Micros, LeaseError> {
        let duration = duration.min(max);
        self.refresh(now, id, session, drift.granter_deadline(now, duration))?;
        Ok(duration)
    }

    /// Marks a lease revoked; true the first time.
    pub fn revoke(&mut self, id: LeaseId) -> bool {
        match self.leases.get_mut(&id) {
            Some(l) if !l.revoked => {
                l.revoked = true;
                true
            }
            _ => false,
        }
    }

    /// The holder gave the lease back.
    pub fn release(&mut self, id: LeaseId, session: SessionId) -> Result<Lease, LeaseError> {
        self.holder_lease(id, session)?;
        Ok(self.remove(id).expect("checked above"))
    }

    fn remove(&mut self, id: LeaseId) -> Option<Lease> {
        let lease = self.leases.remove(&id)?;
        if let Some(ids) = self.by_file.get_mut(&lease.file) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_file.remove(&lease.file);
            }
        }
        if let Some(n) = self.per_session.get_mut(&lease.session) {
            *n -= 1;
            if *n == 0 {
                self.per_session.remove(&lease.session);
            }
        }
        self.check();
        Some(lease)
    }

    /// Removes and returns every lease no longer valid at `now`.
    pub fn expire(&mut self, now: Micros) -> Vec<Lease> {
        let gone: Vec<LeaseId> = self
            .leases
            .values()
            .filter(|l| !l.is_valid(now))
            .map(|l| l.id)
            .collect();
        gone.into_iter().filter_map(|id| self.remove(id)).collect()
    }

    /// Removes every lease of a session (it ended).
    pub fn remove_session(&mut self, session: SessionId) -> Vec<Lease> {
        let ids: Vec<LeaseId> = self
            .leases
            .values()
            .filter(|l| l.session == session)
            .map(|l| l.id)
            .collect();
        ids.into_iter().filter_map(|id| self.remove(id)).collect()
    }

    /// The indexes agree with the leases (cheap enough in debug builds).
    fn check(&self) {
        if cfg!(debug_assertions) {
            let indexed: usize = self.by_file.values().map(BTreeSet::len).sum();
            let counted: usize = self.per_session.values().sum();
            assert_eq!(indexed, self.leases.len());
            assert_eq!(counted, self.leases.len());
            assert!(self.leases.len() <= self.max_leases);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claim(file: u64, s: u64, e: u64, mode: Mode, holder: SessionId) -> Claim {
        Claim {
            file: Ino(file),
            region: Region::new(s, e).expect("non-empty"),
            mode,
            holder,
        }
    }

    #[test]
    fn bounds_are_enforced_with_clear_errors() {
        let mut t = LeaseTable::new(1, 3, 2);
        t.grant(claim(1, 0, 1, Mode::Read, 7), 10).expect("first");
        t.grant(claim(1, 0, 1, Mode::Read, 7), 10).expect("second");
        assert_eq!(
            t.grant(claim(1, 0, 1, Mode::Read, 7), 10),
            Err(LeaseError::SessionFull {
                session: 7,
                limit: 2
            })
        );
        t.grant(claim(1, 0, 1, Mode::Read, 8), 10).expect("third");
        assert_eq!(
            t.grant(claim(1, 0, 1, Mode::Read, 9), 10),
            Err(LeaseError::TableFull { limit: 3 })
        );
    }

    #[test]
    fn refresh_release_and_expiry() {
        let mut t = LeaseTable::new(1, 8, 8);
        let a = t.grant(claim(1, 0, 10, Mode::Write, 1), 100).expect("a");
        assert_eq!(t.refresh(50, a, 2, 200), Err(LeaseError::NotHolder(a)));
        t.refresh(50, a, 1, 200).expect("refresh");
        assert_eq!(t.get(a).map(|l| l.expires_at), Some(200));
        assert_eq!(t.refresh(200, a, 1, 300), Err(LeaseError::Expired(a)));
        assert!(t.revoke(a) && !t.revoke(a));
        assert_eq!(t.expire(200).len(), 1);
        assert_eq!(t.release(a, 1), Err(LeaseError::UnknownLease(a)));
        assert!(t.is_empty());
    }

    #[test]
    fn ids_from_different_bases_never_meet() {
        let mut a = LeaseTable::new(1, 8, 8);
        let mut b = LeaseTable::new(2, 8, 8);
        let x = a.grant(claim(1, 0, 1, Mode::Read, 1), 5).expect("a");
        let y = b.grant(claim(1, 0, 1, Mode::Read, 1), 5).expect("b");
        assert_ne!(x, y);
    }

    // The table against a model: a plain list of leases.

    #[derive(Clone, Debug)]
    enum Op {
        Grant {
            file: u64,
            s: u64,
            len: u64,
            write: bool,
            session: u64,
            ttl: u64,
        },
        Refresh {
            pick: usize,
            session_other: bool,
            ttl: u64,
        },
        Release {
            pick: usize,
            session_other: bool,
        },
        Revoke {
            pick: usize,
        },
        Advance {
            by: u64,
        },
        Expire,
        Conflicting {
            file: u64,
            s: u64,
            len: u64,
            write: bool,
            session: u64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3u64, 0..8u64, 1..5u64, any::<bool>(), 0..4u64, 1..30u64).prop_map(
                |(file, s, len, write, session, ttl)| Op::Grant {
                    file,
                    s,
                    len,
                    write,
                    session,
                    ttl
                }
            ),
            (any::<usize>(), any::<bool>(), 1..30u64).prop_map(|(pick, session_other, ttl)| {
                Op::Refresh {
                    pick,
                    session_other,
                    ttl,
                }
            }),
            (any::<usize>(), any::<bool>()).prop_map(|(pick, session_other)| Op::Release {
                pick,
                session_other
            }),
            any::<usize>().prop_map(|pick| Op::Revoke { pick }),
            (0..20u64).prop_map(|by| Op::Advance { by }),
            Just(Op::Expire),
            (0..3u64, 0..8u64, 1..5u64, any::<bool>(), 0..4u64).prop_map(
                |(file, s, len, write, session)| Op::Conflicting {
                    file,
                    s,
                    len,
                    write,
                    session
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn table_matches_a_list_model(ops in proptest::collection::vec(op(), 1..120)) {
            let mut t = LeaseTable::new(3, 12, 4);
            let mut model: Vec<Lease> = Vec::new();
            let mut ever: Vec<LeaseId> = Vec::new();
            let mut now = 0u64;
            let mode = |w: bool| if w { Mode::Write } else { Mode::Read };
            for op in ops {
                match op {
                    Op::Grant { file, s, len, write, session, ttl } => {
                        let c = claim(file, s, s + len, mode(write), session);
                        let expect_err = if model.len() >= 12 {
                            Some(LeaseError::TableFull { limit: 12 })
                        } else if model.iter().filter(|l| l.session == session).count() >= 4 {
                            Some(LeaseError::SessionFull { session, limit: 4 })
                        } else {
                            None
                        };
                        match (t.grant(c, now + ttl), expect_err) {
                            (Ok(id), None) => {
                                prop_assert!(!ever.contains(&id), "ids are never reused");
                                ever.push(id);
                                model.push(Lease { id, session, file: Ino(file), region: c.region,
                                    mode: c.mode, expires_at: now + ttl, revoked: false });
                            }
                            (Err(e), Some(m)) => prop_assert_eq!(e, m),
                            (got, want) => prop_assert!(false, "table {:?}, model {:?}", got, want),
                        }
                    }
                    Op::Refresh { pick, session_other, ttl } => {
                        if ever.is_empty() { continue; }
                        let id = ever[pick % ever.len()];
                        let m = model.iter_mut().find(|l| l.id == id);
                        let session = m.as_ref().map_or(0, |l| l.session + u64::from(session_other));
                        let want = match m {
                            None => Err(LeaseError::UnknownLease(id)),
                            Some(l) if l.session != session => Err(LeaseError::NotHolder(id)),
                            Some(l) if now >= l.expires_at => Err(LeaseError::Expired(id)),
                            Some(l) if l.revoked => Err(LeaseError::Revoked(id)),
                            Some(l) => { l.expires_at = l.expires_at.max(now + ttl); Ok(()) }
                        };
                        prop_assert_eq!(t.refresh(now, id, session, now + ttl), want);
                    }
                    Op::Release { pick, session_other } => {
                        if ever.is_empty() { continue; }
                        let id = ever[pick % ever.len()];
                        let pos = model.iter().position(|l| l.id == id);
                        let session = pos.map_or(0, |p| model[p].session + u64::from(session_other));
                        let want = match pos {
                            None => Err(LeaseError::UnknownLease(id)),
                            Some(p) if model[p].session != session => Err(LeaseError::NotHolder(id)),
                            Some(p) => Ok(model.remove(p)),
                        };
                        prop_assert_eq!(t.release(id, session), want);
                    }
                    Op::Revoke { pick } => {
                        if ever.is_empty() { continue; }
                        let id = ever[pick % ever.len()];
                        let want = match model.iter_mut().find(|l| l.id == id) {
                            Some(l) if !l.revoked => { l.revoked = true; true }
                            _ => false,
                        };
                        prop_assert_eq!(t.revoke(id), want);
                    }
                    Op::Advance { by } => now += by,
                    Op::Expire => {
                        let mut gone: Vec<LeaseId> = t.expire(now).iter().map(|l| l.id).collect();
                        let mut want: Vec<LeaseId> =
                            model.iter().filter(|l| now >= l.expires_at).map(|l| l.id).collect();
                        model.retain(|l| now < l.expires_at);
                        gone.sort();
                        want.sort();
                        prop_assert_eq!(gone, want);
                    }
                    Op::Conflicting { file, s, len, write, session } => {
                        let c = claim(file, s, s + len, mode(write), session);
                        let got = t.conflicting(&c, now).is_some();
                        let want = model.iter().any(|l| now < l.expires_at && l.claim().conflicts(&c));
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                for l in &model {
                    prop_assert_eq!(t.get(l.id), Some(l));
                    prop_assert_eq!(t.session_count(l.session),
                        model.iter().filter(|m| m.session == l.session).count());
                }
            }
        }
    }
}
