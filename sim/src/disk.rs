//! A simulated disk for one Raft log: what is durable, and what was written
//! but not yet synced (and may be partly lost in a crash).

use std::collections::VecDeque;

use govfs_core::raft::{Entry, GroupId, HardState, Index, Snapshot};

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

#[derive(Clone, Debug)]
pub enum Op {
    HardState(HardState),
    /// A snapshot received from a leader: voids the whole log.
    Install(Snapshot),
    /// Our own snapshot: drops entries it covers.
    Compact(Snapshot),
    /// Overwrite from the first entry's index on.
    Entries(Vec<Entry>),
    /// Start afresh in another ministry, keeping the term.
    Join {
        group: GroupId,
        hs: HardState,
    },
    Leave,
}

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
            Op::Leave => {
                let hs = self.hs;
                *self = Image {
                    hs,
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
    /// Ops staged by the engine (compaction, joins) for the next sync.
    staged: Vec<Op>,
}

impl SimDisk {
    pub fn stage(&mut self, op: Op) {
        self.staged.push(op);
    }

    /// Apply `op` durably at once, dropping unsynced writes (joining or
    /// leaving a ministry replaces the log wholesale).
    pub fn reset_now(&mut self, op: Op) {
        self.pending.clear();
        self.staged.clear();
        self.durable.apply(&op);
    }

    pub fn has_staged(&self) -> bool {
        !self.staged.is_empty()
    }

    /// Queue `ops` (after anything staged) to become durable with sync `number` (increasing).
    pub fn write(&mut self, number: u64, ops: Vec<Op>) {
        for op in self.staged.drain(..).chain(ops) {
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
        self.staged.clear();
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

    pub fn last_index(&self) -> Index {
        self.durable.entries.last().map_or(0, |e| e.index)
    }
}
