//! Edge cases of the Raft core's API that the scenario language does not
//! reach: restoring from odd disk images, and the Ready numbering contract.

use govfs_core::raft::{
    Config, Entry, HardState, Membership, Message, MessageBody, Mode, Payload, Raft, Role,
    Snapshot, SnapshotMeta, PRESIDENT_GROUP,
};

fn cfg(id: u64) -> Config {
    Config::new(id, PRESIDENT_GROUP, Mode::Elected)
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        payload: Payload::Command(vec![index as u8]),
    }
}

fn three() -> Membership {
    Membership::new(vec![1, 2, 3], vec![])
}

#[test]
fn restore_never_goes_below_the_terms_in_its_log() {
    // The hard state record was lost, entries of term 3 survived.
    let hs = HardState {
        term: 1,
        vote: Some(2),
    };
    let r = Raft::restore(cfg(1), hs, None, vec![entry(1, 1), entry(2, 3)], three(), 0);
    assert_eq!(r.term(), 3);
    assert_eq!(r.hard_state().vote, None, "no vote is known for term 3");
    assert_eq!(r.commit_index(), 0);
    assert_eq!(r.role(), Role::Follower);
    // A hard state ahead of the log is kept as is.
    let hs = HardState {
        term: 7,
        vote: Some(2),
    };
    let r = Raft::restore(cfg(1), hs, None, vec![entry(1, 1)], three(), 0);
    assert_eq!(r.hard_state(), hs);
}

#[test]
fn restore_ignores_entries_the_snapshot_covers() {
    let snap = Snapshot {
        meta: SnapshotMeta {
            index: 2,
            term: 1,
            membership: three(),
        },
        data: vec![],
    };
    let entries = vec![entry(1, 1), entry(2, 1), entry(3, 2)];
    let r = Raft::restore(
        cfg(1),
        HardState {
            term: 2,
            vote: None,
        },
        Some(snap),
        entries,
        Membership::default(),
        0,
    );
    assert_eq!(r.log().snapshot_index(), 2);
    assert_eq!(r.log().first_index(), 3);
    assert_eq!(r.log().last_index(), 3);
    assert_eq!(
        r.commit_index(),
        2,
        "the snapshot is committed by definition"
    );
    assert_eq!(r.status().applied, 2);
    assert_eq!(r.membership(), &three(), "the snapshot names the members");
}

#[test]
fn restore_takes_the_newest_config_in_the_log() {
    let four = Membership::new(vec![1, 2, 3, 4], vec![]);
    let entries = vec![
        entry(1, 1),
        Entry {
            term: 1,
            index: 2,
            payload: Payload::Config(four.clone()),
        },
        entry(3, 1),
    ];
    let r = Raft::restore(
        cfg(1),
        HardState {
            term: 1,
            vote: None,
        },
        None,
        entries,
        three(),
        0,
    );
    assert_eq!(r.membership(), &four);
    let r = Raft::restore(
        cfg(1),
        HardState {
            term: 1,
            vote: None,
        },
        None,
        vec![entry(1, 1)],
        three(),
        0,
    );
    assert_eq!(
        r.membership(),
        &three(),
        "the given membership when the log names none"
    );
}

#[test]
fn ready_numbers_grow_and_persisted_covers_everything_before() {
    // A lone voter: its commit depends only on its own syncs.
    let mut r = Raft::new(
        cfg(1),
        HardState::default(),
        Membership::new(vec![1], vec![]),
        0,
    );
    assert!(!r.has_ready());
    r.tick(2_000_000);
    assert!(r.is_leader());
    let a = r.ready();
    assert!(a.needs_sync());
    assert_eq!(a.entries.len(), 1);
    r.propose(b"x".to_vec()).expect("leader");
    let b = r.ready();
    assert!(b.number > a.number);
    assert!(b.needs_sync());
    assert_eq!(r.commit_index(), 0, "nothing is durable yet");
    // Reporting only the later Ready makes both durable.
    r.persisted(b.number);
    assert_eq!(r.commit_index(), 2);
    let c = r.ready();
    assert_eq!(
        c.committed.iter().map(|e| e.index).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(!c.needs_sync());
    assert!(!r.has_ready());
    assert_eq!(r.status().durable, 2);
}

#[test]
fn messages_for_other_groups_or_members_are_ignored() {
    let mut r = Raft::new(cfg(1), HardState::default(), three(), 0);
    let vote = |group, to, from| Message {
        group,
        from,
        to,
        term: 5,
        body: MessageBody::Vote {
            last_term: 0,
            last_index: 0,
        },
    };
    r.step(10, vote(PRESIDENT_GROUP + 1, 1, 2));
    r.step(10, vote(PRESIDENT_GROUP, 2, 3));
    r.step(10, vote(PRESIDENT_GROUP, 1, 1));
    assert_eq!(r.term(), 0);
    assert!(!r.has_ready());
    r.step(10, vote(PRESIDENT_GROUP, 1, 2));
    assert_eq!(r.term(), 5, "the same message, properly addressed, counts");
}
