use super::*;
use crate::lease::clerk::{Clerk, ClerkAction};

const H: Micros = 100_000;
const STEP: Micros = 1_000;

fn cfg() -> LeaseConfig {
    LeaseConfig::new(H)
}

fn r(s: u64, e: u64) -> Region {
    Region::new(s, e).expect("non-empty")
}

/// A minister and its clerks with instant delivery; `cut` clerks neither
/// receive batches nor have their replies delivered.
struct Ministry {
    now: Micros,
    minister: Minister,
    clerks: BTreeMap<NodeId, Clerk>,
    cut: BTreeSet<NodeId>,
    /// Replies from these clerks are lost, batches still reach them.
    mute: BTreeSet<NodeId>,
    grants: Vec<(u64, Granted)>,
    revokes: Vec<LeaseId>,
    reports: Vec<NodeId>,
    batches: Vec<(NodeId, LockBatch)>,
    heard: BTreeMap<NodeId, Micros>,
}

impl Ministry {
    fn new(n: u64) -> Ministry {
        let ids: Vec<NodeId> = (1..=n).collect();
        let mut clerks = BTreeMap::new();
        for id in &ids {
            let mut c = Clerk::start(cfg(), *id, 1, 0);
            c.applied(0, 100);
            clerks.insert(*id, c);
        }
        Ministry {
            now: 0,
            minister: Minister::new(cfg(), 100, 1, &ids, 0),
            clerks,
            cut: BTreeSet::new(),
            mute: BTreeSet::new(),
            grants: Vec::new(),
            revokes: Vec::new(),
            reports: Vec::new(),
            batches: Vec::new(),
            heard: BTreeMap::new(),
        }
    }

    fn step(&mut self) {
        self.now += STEP;
        let now = self.now;
        for c in self.clerks.values_mut() {
            c.tick(now, true);
        }
        self.minister.tick(now, true);
        for a in self.minister.take_actions() {
            match a {
                MinisterAction::Batch { to, batch } => {
                    self.batches.push((to, batch.clone()));
                    if !self.cut.contains(&to) {
                        if let Some(c) = self.clerks.get_mut(&to) {
                            let _ = c.on_batch(now, batch);
                        }
                    }
                }
                MinisterAction::Grant { request, granted } => self.grants.push((request, granted)),
                MinisterAction::Revoke { lease, .. } => self.revokes.push(lease),
                MinisterAction::ReportClerk { clerk } => self.reports.push(clerk),
                MinisterAction::Refuse { error, .. } => panic!("refused: {error}"),
            }
        }
        for (id, c) in self.clerks.iter_mut() {
            for a in c.take_actions() {
                if let ClerkAction::Reply { reply, .. } = a {
                    if !self.cut.contains(id) && !self.mute.contains(id) {
                        self.heard.insert(*id, now);
                        self.minister.on_clerk_reply(now, reply);
                    }
                }
            }
        }
    }

    fn run_until(&mut self, t: Micros) {
        while self.now < t {
            self.step();
        }
    }

    /// Steps until the minister and every clerk serve.
    fn until_serving(&mut self) {
        while self.minister.serving(self.now).is_err()
            || self.clerks.values().any(|c| c.serving(self.now).is_err())
        {
            assert!(self.now < 10 * H, "minister never served");
            self.step();
        }
    }

    fn write(&mut self, session: SessionId, request: u64, file: u64, region: Region) {
        let req = WriteRequest {
            session,
            request,
            file: Ino(file),
            region,
            duration: 2 * H,
            index: 1,
        };
        self.minister.request_write(self.now, req).expect("queued");
    }

    /// Steps until request `request` is granted; returns the grant time.
    fn until_granted(&mut self, request: u64, limit: Micros) -> Micros {
        let end = self.now + limit;
        while !self.grants.iter().any(|(q, _)| *q == request) {
            assert!(self.now < end, "request {request} not granted by {end}");
            self.step();
        }
        self.now
    }

    fn lease(&self, request: u64) -> LeaseId {
        self.grants
            .iter()
            .find(|(q, _)| *q == request)
            .map(|(_, g)| g.lease)
            .expect("granted")
    }
}

#[test]
fn a_write_lease_waits_for_every_clerk_and_its_reads() {
    let mut m = Ministry::new(3);
    m.until_serving();
    let t = m.now;
    let read = m
        .clerks
        .get_mut(&2)
        .expect("clerk 2")
        .grant_read(t, 50, Ino(7), r(0, 10), H)
        .expect("serving clerk");
    m.write(60, 1, 7, r(5, 15));
    m.step();
    m.step();
    assert!(m.grants.is_empty(), "clerk 2's read lease is still valid");
    let c2 = m.clerks.get_mut(&2).expect("clerk 2");
    c2.release_read(m.now, 50, read.lease).expect("held");
    let granted = m.until_granted(1, 5 * STEP);
    assert!(granted < t + H, "release, not expiry, cleared it");
    assert!(m.reports.is_empty());
}

/// Thesis problem 3 on the minister's side: a clerk that is silent is
/// counted fenced only 2H (granter rule) after its last reply, and reported.
#[test]
fn problem3_a_silent_clerk_is_fenced_after_2h_and_reported() {
    let mut m = Ministry::new(3);
    m.until_serving();
    m.mute.insert(3);
    let silent_since = m.heard[&3];
    m.write(60, 1, 7, r(0, 10));
    let granted = m.until_granted(1, 4 * H);
    assert!(
        granted >= silent_since + cfg().drift.granter_span(2 * H),
        "granted at {granted}, silent since {silent_since}"
    );
    assert!(granted <= silent_since + cfg().drift.granter_span(2 * H) + 2 * STEP);
    assert_eq!(m.reports, vec![3]);
    assert_eq!(m.minister.stats().fenced_clerks, 1);
    // Clerk 3 heard every batch, yet it stopped serving long before.
    assert_eq!(
        m.clerks.get(&3).expect("clerk 3").serving(granted),
        Err(NotServing::NoMinisterContact)
    );
}

#[test]
fn unlocks_go_first_and_one_batch_per_clerk_per_turn() {
    let mut m = Ministry::new(2);
    m.until_serving();
    m.write(60, 1, 7, r(0, 10));
    m.until_granted(1, 10 * STEP);
    let lease = m.lease(1);
    m.minister.release_write(m.now, 60, lease).expect("held");
    // The lock lingers; let it pass, and ask for another file in the same turn.
    m.run_until(m.now + cfg().linger - STEP);
    m.write(61, 2, 8, r(0, 10));
    m.batches.clear();
    m.step();
    let turn: Vec<&(NodeId, LockBatch)> = m.batches.iter().collect();
    assert_eq!(turn.len(), 2, "one batch per clerk");
    for (_, b) in turn {
        let kinds: Vec<bool> = b
            .ops
            .iter()
            .map(|o| matches!(o, LockOp::Unlock(_)))
            .collect();
        assert_eq!(kinds, vec![true, false], "unlock before lock: {:?}", b.ops);
    }
}

/// Thesis 8.3: a hot file keeps its clerk lock, so the next write lease needs
/// no round trip; an idle one is unlocked after the linger time.
#[test]
fn hot_locks_linger_and_skip_the_round_trip() {
    let mut m = Ministry::new(2);
    m.until_serving();
    m.write(60, 1, 7, r(0, 100));
    m.until_granted(1, 10 * STEP);
    let lease = m.lease(1);
    m.minister.release_write(m.now, 60, lease).expect("held");
    m.step();
    m.cut.extend([1, 2]);
    m.write(61, 2, 7, r(10, 20));
    m.step();
    assert!(
        m.grants.iter().any(|(q, _)| *q == 2),
        "granted without the clerks"
    );
    assert_eq!(m.minister.stats().locks_reused, 1);
    m.cut.clear();
    let lease = m.lease(2);
    m.minister.release_write(m.now, 61, lease).expect("held");
    m.run_until(m.now + cfg().linger + 2 * STEP);
    assert_eq!(m.minister.lock_count(), 0);
    assert!(m.clerks.values().all(|c| c.lock_count() == 0));
}

#[test]
fn conflicting_writes_queue_and_then_revoke() {
    let mut m = Ministry::new(2);
    m.until_serving();
    m.write(60, 1, 7, r(0, 100));
    m.until_granted(1, 10 * STEP);
    m.write(61, 2, 7, r(50, 150));
    m.write(60, 3, 7, r(0, 10));
    m.run_until(m.now + cfg().revoke_after / 2);
    assert!(!m.grants.iter().any(|(q, _)| *q == 2));
    m.run_until(m.now + cfg().revoke_after);
    assert_eq!(m.revokes, vec![m.lease(1)]);
    assert_eq!(
        m.minister.refresh_write(m.now, 60, m.lease(1), H),
        Err(LeaseError::Revoked(m.lease(1)))
    );
    let l = m.lease(1);
    m.minister.release_write(m.now, 60, l).expect("held");
    m.until_granted(2, 10 * STEP);
}

#[test]
fn bounded_queue_and_sessions() {
    let mut c = cfg();
    c.max_queued_writes = 2;
    c.max_leases_per_session = 1;
    let mut m = Minister::new(c, 100, 1, &[1], 0);
    m.tick(0, true);
    let req = |session, request| WriteRequest {
        session,
        request,
        file: Ino(1),
        region: Region::WHOLE,
        duration: H,
        index: 1,
    };
    m.request_write(0, req(1, 1)).expect("first");
    assert_eq!(
        m.request_write(0, req(1, 2)),
        Err(LeaseError::SessionFull {
            session: 1,
            limit: 1
        })
    );
    m.request_write(0, req(2, 1)).expect("second");
    assert_eq!(
        m.request_write(0, req(3, 1)),
        Err(LeaseError::QueueFull { limit: 2 })
    );
}

/// A new minister knows no earlier write leases: it replaces every clerk's
/// table in its first batch and grants nothing during its quiet period.
#[test]
fn a_new_term_replaces_tables_and_waits_out_old_write_leases() {
    let mut m = Ministry::new(2);
    m.until_serving();
    m.write(60, 1, 7, r(0, 100));
    m.until_granted(1, 10 * STEP);
    let appointed = m.now;
    m.minister = Minister::new(cfg(), 200, 2, &[1, 2], appointed);
    m.batches.clear();
    m.step();
    assert!(m
        .batches
        .iter()
        .all(|(_, b)| b.term == 2 && b.table.as_ref().is_some_and(|t| t.locks.is_empty())));
    assert!(m
        .clerks
        .values()
        .all(|c| c.term() == 2 && c.lock_count() == 0));
    m.write(61, 2, 7, r(0, 100));
    let granted = m.until_granted(2, 10 * H);
    let d = cfg().drift;
    assert!(granted >= appointed + d.granter_span(H) + d.granter_span(2 * H));
}

#[test]
fn a_deposed_minister_stops() {
    let mut m = Ministry::new(2);
    m.until_serving();
    m.clerks.get_mut(&1).expect("clerk 1").observe_term(5);
    m.run_until(m.now + cfg().heartbeat + 2 * STEP);
    assert!(m.minister.is_deposed());
    assert_eq!(
        m.minister.refresh_write(m.now, 1, LeaseId(1), H),
        Err(LeaseError::NotServing(NotServing::Deposed))
    );
}
