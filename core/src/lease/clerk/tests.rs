use super::*;
use crate::lease::messages::Echo;

const H: Micros = 100_000;

fn cfg() -> LeaseConfig {
    LeaseConfig::new(H)
}

fn r(s: u64, e: u64) -> Region {
    Region::new(s, e).expect("non-empty")
}

fn lock(id: u64, file: u64, region: Region, index: Index) -> Lock {
    Lock {
        id: LockId(id),
        file: Ino(file),
        region,
        index,
    }
}

fn batch(term: Term, now: Micros) -> LockBatch {
    LockBatch {
        term,
        minister: 100,
        sent_at: now,
        table: None,
        first_seq: 0,
        ops: Vec::new(),
        awaiting: Vec::new(),
        echo: None,
    }
}

fn table(next_seq: u64, locks: Vec<Lock>) -> Option<LockTableSnapshot> {
    Some(LockTableSnapshot { next_seq, locks })
}

fn last_reply(c: &mut Clerk) -> ClerkReply {
    c.take_actions()
        .into_iter()
        .filter_map(|a| match a {
            ClerkAction::Reply { reply, .. } => Some(reply),
            ClerkAction::Revoke { .. } => None,
        })
        .next_back()
        .expect("a reply")
}

/// A clerk of term 1 that has loaded `locks` and is serving at the returned time.
fn serving_clerk(locks: Vec<Lock>) -> (Clerk, Micros) {
    let mut c = Clerk::start(cfg(), 1, 1, 0);
    c.applied(0, 10);
    let t = cfg().drift.granter_deadline(0, H);
    c.tick(t, true);
    let mut b = batch(1, t);
    b.table = table(locks.len() as u64, locks);
    c.on_batch(t, b).expect("current term");
    let sent = last_reply(&mut c).sent_at;
    let mut b = batch(1, t);
    b.first_seq = c.next_seq;
    b.echo = Some(Echo {
        incarnation: 1,
        sent_at: sent,
    });
    c.on_batch(t, b).expect("current term");
    c.take_actions();
    assert_eq!(c.serving(t), Ok(()));
    (c, t)
}

#[test]
fn grants_reads_and_refuses_them_under_a_lock() {
    let (mut c, t) = serving_clerk(vec![lock(1, 7, r(0, 100), 1)]);
    let g = c
        .grant_read(t, 9, Ino(7), r(100, 200), 5 * H)
        .expect("disjoint");
    assert_eq!(g.duration, H, "capped at the longest read lease");
    c.grant_read(t, 9, Ino(8), r(0, 100), H)
        .expect("other file");
    assert_eq!(
        c.grant_read(t, 9, Ino(7), r(50, 60), H),
        Err(LeaseError::Conflict {
            file: Ino(7),
            region: r(0, 100),
            mode: Mode::Write
        })
    );
    assert_eq!(c.refresh_read(t + 10, 9, g.lease, H), Ok(H));
    assert_eq!(
        c.refresh_read(t + 10, 8, g.lease, H),
        Err(LeaseError::NotHolder(g.lease))
    );
    c.release_read(t + 10, 9, g.lease).expect("held");
    assert_eq!(
        c.release_read(t + 10, 9, g.lease),
        Err(LeaseError::UnknownLease(g.lease))
    );
}

#[test]
fn a_lock_revokes_overlapping_reads_and_is_clear_only_when_they_are_gone() {
    let (mut c, t) = serving_clerk(vec![]);
    let a = c.grant_read(t, 1, Ino(7), r(0, 10), H).expect("a");
    let b = c.grant_read(t, 2, Ino(7), r(5, 20), H).expect("b");
    c.grant_read(t, 3, Ino(7), r(20, 30), H)
        .expect("disjoint from the lock");
    let mut m = batch(1, t + 1);
    m.first_seq = 0;
    m.ops = vec![LockOp::Lock(lock(1, 7, r(0, 20), 1))];
    m.awaiting = vec![LockId(1)];
    c.on_batch(t + 1, m).expect("current");
    let actions = c.take_actions();
    let revoked: Vec<LeaseId> = actions
        .iter()
        .filter_map(|a| match a {
            ClerkAction::Revoke { lease, .. } => Some(*lease),
            ClerkAction::Reply { .. } => None,
        })
        .collect();
    assert_eq!(revoked, vec![a.lease, b.lease]);
    let reply = actions
        .iter()
        .find_map(|a| match a {
            ClerkAction::Reply { reply, .. } => Some(reply.clone()),
            ClerkAction::Revoke { .. } => None,
        })
        .expect("reply");
    assert!(reply.clear.is_empty(), "two reads still valid");
    assert_eq!(reply.next_seq, Some(1));
    assert_eq!(
        c.refresh_read(t + 2, 1, a.lease, H),
        Err(LeaseError::Revoked(a.lease))
    );
    c.release_read(t + 3, 1, a.lease).expect("a released");
    assert!(c.take_actions().is_empty(), "b is still valid");
    // b expires by the granter's rule, not the holder's.
    let b_end = cfg().drift.granter_deadline(t, H);
    c.tick(b_end - 1, true);
    assert!(c.take_actions().is_empty());
    c.tick(b_end, true);
    let reply = last_reply(&mut c);
    assert_eq!(reply.clear, vec![LockId(1)]);
}

/// Thesis problem 1: an old minister's batch (here: a table without the
/// lock) must not unlock anything.
#[test]
fn problem1_a_stale_term_cannot_unlock() {
    let (mut c, t) = serving_clerk(vec![lock(1, 7, r(0, 100), 1)]);
    c.observe_term(1);
    let mut newer = batch(2, t);
    newer.table = table(1, vec![lock(1, 7, r(0, 100), 1)]);
    c.on_batch(t, newer).expect("newer term");
    let mut stale = batch(1, t + 1);
    stale.minister = 99;
    stale.table = table(5, vec![]);
    assert_eq!(
        c.on_batch(t + 1, stale),
        Err(LeaseError::StaleTerm { got: 1, newest: 2 })
    );
    assert_eq!(c.lock_count(), 1, "the lock survives");
    let to_stale = c.take_actions().into_iter().find_map(|a| match a {
        ClerkAction::Reply { to: 99, reply } => Some(reply.term),
        _ => None,
    });
    assert_eq!(
        to_stale,
        Some(2),
        "the stale minister learns the newer term"
    );
}

/// Thesis problem 2: a new clerk grants nothing and reports no lock clear
/// before it has loaded its minister's table.
#[test]
fn problem2_nothing_before_the_lock_table() {
    let mut c = Clerk::start(cfg(), 1, 1, 0);
    c.applied(0, 10);
    let t = cfg().drift.granter_deadline(0, H);
    c.tick(t, true);
    let mut b = batch(1, t);
    b.first_seq = 0;
    b.ops = vec![LockOp::Lock(lock(1, 7, r(0, 10), 1))];
    b.awaiting = vec![LockId(1)];
    c.on_batch(t, b).expect("current");
    let reply = last_reply(&mut c);
    assert_eq!(reply.next_seq, None, "asks for the table");
    assert!(reply.clear.is_empty());
    assert_eq!(
        c.grant_read(t, 1, Ino(8), r(0, 10), H),
        Err(LeaseError::NotServing(NotServing::NoLockTable))
    );
    let mut b = batch(1, t + 1);
    b.table = table(1, vec![lock(1, 7, r(0, 10), 1)]);
    b.awaiting = vec![LockId(1)];
    c.on_batch(t + 1, b).expect("current");
    assert_eq!(last_reply(&mut c).clear, vec![LockId(1)]);
}

/// Thesis problem 2, the restart half: the lease table was lost, so a
/// restarted clerk waits out the longest read lease before it grants or
/// reports a lock clear.
#[test]
fn problem2_restart_waits_out_the_lost_leases() {
    let start = 5_000_000;
    let mut c = Clerk::start(cfg(), 1, 2, start);
    c.applied(start, 10);
    c.tick(start + 1, true);
    let mut b = batch(1, start + 1);
    b.table = table(1, vec![lock(1, 7, r(0, 10), 1)]);
    b.awaiting = vec![LockId(1)];
    c.on_batch(start + 1, b).expect("current");
    assert!(
        last_reply(&mut c).clear.is_empty(),
        "may have granted before the crash"
    );
    assert_eq!(
        c.grant_read(start + 1, 1, Ino(8), r(0, 10), H),
        Err(LeaseError::NotServing(NotServing::RestartWait))
    );
    let end = cfg().drift.granter_deadline(start, H);
    c.tick(end, true);
    assert_eq!(last_reply(&mut c).clear, vec![LockId(1)]);
}

/// Thesis problem 3: the clerk keeps hearing its minister (and the engine
/// says it is serving), but its replies are lost, so the minister will count
/// it fenced after 2H. It must stop granting within H of its last echoed reply.
#[test]
fn problem3_hearing_the_minister_one_way_does_not_keep_a_clerk_serving() {
    let (mut c, t) = serving_clerk(vec![]);
    let h = cfg().drift.holder_span(H);
    let mut now = t;
    while now < t + 3 * H {
        now += H / 10;
        c.tick(now, true);
        let mut b = batch(1, now);
        b.first_seq = 0;
        c.on_batch(now, b).expect("current");
        c.take_actions();
        let granted = c.grant_read(now, 1, Ino(7), r(0, 1), H);
        if now < t + h {
            assert!(granted.is_ok(), "fresh round trip at {now}");
        } else {
            assert_eq!(
                granted,
                Err(LeaseError::NotServing(NotServing::NoMinisterContact)),
                "at {now}"
            );
        }
    }
}

/// Thesis problem 4: a lock naming a log index the clerk has not applied is
/// held at once but reported clear only once the clerk reaches that index.
#[test]
fn problem4_lock_waits_for_the_log_index() {
    let (mut c, t) = serving_clerk(vec![]);
    let mut b = batch(1, t);
    b.first_seq = 0;
    b.ops = vec![LockOp::Lock(lock(1, 7, r(0, 10), 25))];
    b.awaiting = vec![LockId(1)];
    c.on_batch(t, b).expect("current");
    assert!(
        last_reply(&mut c).clear.is_empty(),
        "file not created here yet"
    );
    assert!(
        c.grant_read(t, 1, Ino(7), r(0, 10), H).is_err(),
        "but locked already"
    );
    c.applied(t + 1, 24);
    assert!(c.take_actions().is_empty());
    c.applied(t + 2, 25);
    assert_eq!(last_reply(&mut c).clear, vec![LockId(1)]);
}

#[test]
fn the_engine_can_fence_a_clerk() {
    let (mut c, t) = serving_clerk(vec![]);
    c.tick(t + 1, false);
    assert_eq!(
        c.grant_read(t + 1, 1, Ino(7), r(0, 1), H),
        Err(LeaseError::NotServing(NotServing::Fenced))
    );
}

#[test]
fn a_late_older_table_does_not_step_back() {
    let (mut c, t) = serving_clerk(vec![]);
    let mut b = batch(1, t);
    b.first_seq = 0;
    b.ops = vec![
        LockOp::Lock(lock(1, 7, r(0, 10), 1)),
        LockOp::Lock(lock(2, 7, r(10, 20), 1)),
    ];
    c.on_batch(t, b).expect("current");
    let mut old = batch(1, t - 5);
    old.table = table(1, vec![lock(1, 7, r(0, 10), 1)]);
    c.on_batch(t + 1, old).expect("current");
    assert_eq!(c.lock_count(), 2);
    let mut b = batch(1, t + 2);
    b.first_seq = 1;
    b.ops = vec![
        LockOp::Lock(lock(2, 7, r(10, 20), 1)),
        LockOp::Unlock(LockId(1)),
    ];
    c.on_batch(t + 2, b).expect("current");
    assert_eq!(
        c.lock_count(),
        1,
        "duplicate skipped, the new unlock applied"
    );
    assert_eq!(last_reply(&mut c).next_seq, Some(3));
}

#[test]
fn echoes_of_another_life_do_not_count() {
    let (mut c0, t) = serving_clerk(vec![]);
    drop(c0.take_actions());
    let mut c = Clerk::start(cfg(), 1, 2, t);
    c.applied(t, 10);
    let t2 = cfg().drift.granter_deadline(t, H);
    c.tick(t2, true);
    let mut b = batch(1, t2);
    b.table = table(0, vec![]);
    b.echo = Some(Echo {
        incarnation: 1,
        sent_at: t2,
    });
    c.on_batch(t2, b).expect("current");
    assert_eq!(c.serving(t2), Err(NotServing::NoMinisterContact));
}
