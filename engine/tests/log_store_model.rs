//! The segmented log against a model: random appends, overwrites,
//! truncations, snapshots, compactions and reopenings must recover exactly
//! what replaying the synced records recovers.

#[macro_use]
mod common;

use common::*;
use govfs_core::raft::{Entry, HardState, Payload, Snapshot};
use govfs_core::wal::{Record, Replay};
use govfs_engine::log_store::{LogOptions, LogStore};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Entries from `back` before the next index (an overwrite if > 0).
    Append {
        back: u64,
        count: u64,
        new_term: bool,
    },
    Truncate {
        back: u64,
    },
    Vote,
    Sync,
    /// A snapshot at `back` before the last index, or beyond the log if `ahead`.
    Snapshot {
        back: u64,
        ahead: bool,
    },
    Compact {
        upto: u64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..6, 1u64..6, any::<bool>()).prop_map(|(back, count, new_term)| Op::Append { back, count, new_term }),
        1 => (0u64..6).prop_map(|back| Op::Truncate { back }),
        1 => Just(Op::Vote),
        4 => Just(Op::Sync),
        1 => (0u64..8, prop::bool::weighted(0.2)).prop_map(|(back, ahead)| Op::Snapshot { back, ahead }),
        1 => (0u64..80).prop_map(|upto| Op::Compact { upto }),
        1 => Just(Op::Reopen),
    ]
}

struct Model {
    /// What the synced records replay to.
    durable: Replay,
    /// The same with the appended records too.
    now: Replay,
    pending: Vec<Record>,
    /// The newest saved snapshot file: durable at once.
    saved: Option<Snapshot>,
    term: u64,
}

impl Model {
    fn apply(&mut self, records: Vec<Record>) {
        for rec in &records {
            self.now.apply(rec).expect("model generates valid records");
        }
        self.pending.extend(records);
    }

    fn synced(&mut self) {
        for rec in self.pending.drain(..) {
            self.durable.apply(&rec).expect("valid");
        }
    }

    /// After a crash: the synced log, then the snapshot file if the log lacks its marker.
    fn reopened(&mut self) -> &Replay {
        self.pending.clear();
        if let Some(snap) = &self.saved {
            if snap.meta.index > self.durable.snapshot_index() {
                self.durable
                    .apply(&Record::Snapshot(snap.meta.clone()))
                    .expect("valid");
            }
        }
        self.now = self.durable.clone();
        &self.durable
    }

    fn term_at(&self, index: u64) -> u64 {
        let r = &self.now;
        match r.entries.iter().find(|e| e.index == index) {
            Some(e) => e.term,
            None if index == r.snapshot_index() => r.snapshot.as_ref().map_or(0, |s| s.term),
            None => self.term,
        }
    }
}

/// Tiny segments: many rolls, and compaction boundaries close to snapshots.
fn tiny() -> LogOptions {
    LogOptions { segment_bytes: 200 }
}

fn run(disk: Disk, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, replay) = try_open_with(disk, dir.path(), tiny()).unwrap();
    let mut model = Model {
        durable: replay.clone(),
        now: replay,
        pending: Vec::new(),
        saved: None,
        term: 1,
    };
    for op in ops {
        let (first, next) = (model.now.snapshot_index() + 1, model.now.last_index() + 1);
        match op {
            Op::Append {
                back,
                count,
                new_term,
            } => {
                model.term += u64::from(new_term);
                let start = next.saturating_sub(back).max(first);
                let records: Vec<Record> = (start..start + count)
                    .map(|index| {
                        Record::Entry(Entry {
                            term: model.term,
                            index,
                            payload: Payload::Noop,
                        })
                    })
                    .chain([Record::HardState(HardState {
                        term: model.term,
                        vote: None,
                    })])
                    .collect();
                log.append(&records).unwrap();
                model.apply(records);
            }
            Op::Truncate { back } => {
                let records = vec![Record::Truncate {
                    from: next.saturating_sub(back).max(first),
                }];
                log.append(&records).unwrap();
                model.apply(records);
            }
            Op::Vote => {
                let records = vec![Record::HardState(HardState {
                    term: model.term,
                    vote: Some(model.term),
                })];
                log.append(&records).unwrap();
                model.apply(records);
            }
            Op::Sync => {
                log.sync().unwrap();
                model.synced();
            }
            Op::Snapshot { back, ahead } => {
                let index = if ahead {
                    next + back
                } else {
                    next.saturating_sub(1 + back).max(first - 1)
                };
                let snap = Snapshot {
                    meta: meta(index, model.term_at(index)),
                    data: vec![index as u8; 40],
                };
                log.save_snapshot(&snap).unwrap();
                model.apply(vec![Record::Snapshot(snap.meta.clone())]);
                model.saved = Some(snap);
            }
            Op::Compact { upto } => {
                log.compact(upto).unwrap();
                model.synced();
            }
            Op::Reopen => {
                drop(log);
                let replay;
                (log, replay) = try_open_with(disk, dir.path(), tiny()).unwrap();
                prop_assert_eq!(&replay, model.reopened());
                prop_assert_eq!(log.load_snapshot().unwrap(), model.saved.clone());
            }
        }
    }
    drop(log);
    let (_, replay) = try_open_with(disk, dir.path(), tiny()).unwrap();
    prop_assert_eq!(&replay, model.reopened());
    Ok(())
}

fn log_matches_model(disk: Disk) {
    let config = ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let ops = proptest::collection::vec(op(), 1..60);
    proptest::test_runner::TestRunner::new(config)
        .run(&ops, |ops| run(disk, ops))
        .unwrap();
}

on_every_disk!(log_matches_model);
