//! A simulated disk for one Raft log: what is durable, and what was written
//! but not yet synced (and may be partly lost in a crash).

use std::collections::VecDeque;

use govfs_core::raft::{Entry, GroupId, HardState, Snapshot};

use crate::rng::Rng;

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub struct Image {
    /// The ministry this log belongs to (shards only).
    pub group: Option<GroupId>,
    pub hs: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

pub use govfs_core::node::LogOp as Op;

impl Image {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::HardState(hs) => self.hs = *hs,
            Op::Install(s) => {
                self.entries.clear();
                self.snapshot = Some(s.clone());
            }
            Op::Compact(s) => {
                if self
                    .snapshot
                    .as_ref()
                    .is_none_or(|old| old.meta.index < s.meta.index)
                {
                    self.entries.retain(|e| e.index > s.meta.index);
                    self.snapshot = Some(s.clone());
                }
            }
            Op::Entries(es) => {
                let Some(first) = es.first() else { return };
                self.entries.retain(|e| e.index < first.index);
                self.entries.extend(es.iter().cloned());
            }
            Op::Join { group, hs } => {
                *self = Image {
                    group: Some(*group),
                    hs: *hs,
                    ..Default::default()
                };
            }
            Op::Leave { hs } => {
                *self = Image {
                    hs: *hs,
                    ..Default::default()
                };
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct SimDisk {
    pub durable: Image,
    /// Writes not yet synced, tagged with the sync sequence number that covers them.
    pending: VecDeque<(u64, Op)>,
    /// Highest sequence number written so far.
    pub written: u64,
}

impl SimDisk {
    /// Queue `ops` (after anything staged) to become durable with sync `number` (increasing).
    pub fn write(&mut self, number: u64, ops: Vec<Op>) {
        assert!(number > self.written, "sync numbers only grow");
        self.written = number;
        for op in ops {
            self.pending.push_back((number, op));
        }
    }

    /// Sync `number` completed: everything queued up to it is durable.
    pub fn synced(&mut self, number: u64) {
        while self.pending.front().is_some_and(|(n, _)| *n <= number) {
            let (_, op) = self.pending.pop_front().expect("checked");
            self.durable.apply(&op);
        }
    }

    /// Power loss: an unsynced prefix of the queued writes may have reached
    /// the platter (the log's crc and torn-tail truncation keep it a prefix).
    pub fn crash(&mut self, rng: &mut Rng) -> Image {
        // The restarted node numbers its syncs afresh.
        self.written = 0;
        let keep = rng.range(0, self.pending.len() as u64 + 1) as usize;
        let mut image = self.durable.clone();
        for (i, (_, op)) in self.pending.drain(..).enumerate() {
            if i >= keep {
                break;
            }
            match op {
                Op::Entries(es) if i + 1 == keep && es.len() > 1 => {
                    let n = rng.range(1, es.len() as u64 + 1) as usize;
                    image.apply(&Op::Entries(es[..n].to_vec()));
                }
                op => image.apply(&op),
            }
        }
        self.durable = image.clone();
        image
    }
}
