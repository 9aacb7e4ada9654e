//! A core's logs on real files: what is synced comes back, and a shard
//! that joins or leaves a ministry gets a fresh log even across crashes.

use std::fs;

use govfs_core::node::{Disk, LogOp};
use govfs_core::raft::{Entry, HardState, Membership, Payload, Snapshot, SnapshotMeta};
use govfs_engine::log_store::LogOptions;
use govfs_engine::node::storage::CoreStorage;

const DISKS: [Disk; 2] = [Disk::President, Disk::Shard(0)];

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        payload: Payload::Command(vec![index as u8; 8]),
    }
}

#[test]
fn synced_ops_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut st, rec) = CoreStorage::open(dir.path(), &DISKS, LogOptions::default()).unwrap();
        assert!(rec.president.entries.is_empty() && rec.shards[&0].group.is_none());
        let hs = HardState {
            term: 3,
            vote: Some(2),
        };
        st.write(
            Disk::President,
            &[
                LogOp::HardState(hs),
                LogOp::Entries(vec![entry(1, 3), entry(2, 3)]),
            ],
        )
        .unwrap();
        // Overwrite from index 2 on, as a follower repairing its log does.
        st.write(
            Disk::President,
            &[LogOp::Entries(vec![entry(2, 4), entry(3, 4)])],
        )
        .unwrap();
        st.sync(Disk::President).unwrap();
    }
    let (_, rec) = CoreStorage::open(dir.path(), &DISKS, LogOptions::default()).unwrap();
    assert_eq!(
        rec.president.hs,
        HardState {
            term: 3,
            vote: Some(2)
        }
    );
    let got: Vec<(u64, u64)> = rec
        .president
        .entries
        .iter()
        .map(|e| (e.index, e.term))
        .collect();
    assert_eq!(got, vec![(1, 3), (2, 4), (3, 4)]);
}

#[test]
fn joining_and_leaving_replace_the_shard_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut st, _) = CoreStorage::open(dir.path(), &DISKS, LogOptions::default()).unwrap();
        let hs = HardState {
            term: 7,
            vote: None,
        };
        st.write(Disk::Shard(0), &[LogOp::Join { group: 4, hs }])
            .unwrap();
        st.write(
            Disk::Shard(0),
            &[LogOp::HardState(HardState {
                term: 8,
                vote: Some(1),
            })],
        )
        .unwrap();
        st.write(
            Disk::Shard(0),
            &[LogOp::Entries(vec![entry(1, 8), entry(2, 8)])],
        )
        .unwrap();
        st.sync(Disk::Shard(0)).unwrap();
    }
    {
        let (mut st, rec) = CoreStorage::open(dir.path(), &DISKS, LogOptions::default()).unwrap();
        assert_eq!(rec.shards[&0].group, Some(4));
        assert_eq!(rec.shards[&0].log.hs.term, 8);
        assert_eq!(rec.shards[&0].log.entries.len(), 2);
        st.write(
            Disk::Shard(0),
            &[LogOp::Leave {
                hs: HardState {
                    term: 9,
                    vote: None,
                },
            }],
        )
        .unwrap();
    }
    let (_, rec) = CoreStorage::open(dir.path(), &DISKS, LogOptions::default()).unwrap();
    assert_eq!(rec.shards[&0].group, None, "left the ministry");
    assert_eq!(rec.shards[&0].log.hs.term, 9, "the term survives leaving");
    assert!(
        rec.shards[&0].log.entries.is_empty(),
        "the old ministry's log is gone"
    );
}

#[test]
fn an_interrupted_swap_keeps_one_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut st, _) = CoreStorage::open(dir.path(), &DISKS, LogOptions::default()).unwrap();
        st.write(
            Disk::Shard(0),
            &[LogOp::Join {
                group: 2,
                hs: HardState {
                    term: 1,
                    vote: None,
                },
            }],
        )
        .unwrap();
    }
    // Crash while building the next directory: the old one stands.
    fs::create_dir_all(dir.path().join("shard-0.new")).unwrap();
    fs::write(dir.path().join("shard-0.new/group"), "5").unwrap();
    let (_, rec) = CoreStorage::open(dir.path(), &DISKS, LogOptions::default()).unwrap();
    assert_eq!(rec.shards[&0].group, Some(2));
    assert!(!dir.path().join("shard-0.new").exists());
    // Crash between the two renames: the complete new directory is taken.
    fs::rename(dir.path().join("shard-0"), dir.path().join("shard-0.new")).unwrap();
    let (_, rec) = CoreStorage::open(dir.path(), &DISKS, LogOptions::default()).unwrap();
    assert_eq!(rec.shards[&0].group, Some(2));
}

#[test]
fn snapshots_bound_the_log_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let snap = Snapshot {
        meta: SnapshotMeta {
            index: 2,
            term: 1,
            membership: Membership::new(vec![1, 2, 3], vec![]),
        },
        data: b"state at 2".to_vec(),
    };
    {
        let (mut st, _) = CoreStorage::open(dir.path(), &DISKS, LogOptions::default()).unwrap();
        let es = (1..=4).map(|i| entry(i, 1)).collect();
        st.write(Disk::President, &[LogOp::Entries(es)]).unwrap();
        st.write(Disk::President, &[LogOp::Compact(snap.clone())])
            .unwrap();
        st.sync(Disk::President).unwrap();
    }
    let (mut st, rec) = CoreStorage::open(dir.path(), &DISKS, LogOptions::default()).unwrap();
    assert_eq!(rec.president.snapshot.as_ref(), Some(&snap));
    let idx: Vec<u64> = rec.president.entries.iter().map(|e| e.index).collect();
    assert_eq!(idx, vec![3, 4], "entries after the snapshot remain");
    // A snapshot installed from a leader voids every entry.
    let newer = Snapshot {
        meta: SnapshotMeta {
            index: 6,
            ..snap.meta.clone()
        },
        data: b"6".to_vec(),
    };
    st.write(Disk::President, &[LogOp::Install(newer.clone())])
        .unwrap();
    st.sync(Disk::President).unwrap();
    drop(st);
    let (_, rec) = CoreStorage::open(dir.path(), &DISKS, LogOptions::default()).unwrap();
    assert_eq!(rec.president.snapshot, Some(newer));
    assert!(rec.president.entries.is_empty());
}
