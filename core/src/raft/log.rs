//! The in-memory view of a member's log: a snapshot boundary plus the entries after it.
//!
//! Durability is the engine's job; this module only keeps the entries in
//! order and answers "what term is at index i".

use std::collections::VecDeque;

use super::types::{Entry, Index, Payload, Term};

#[derive(Debug, Default)]
pub struct RaftLog {
    /// Last index covered by the snapshot (0 when none).
    snapshot_index: Index,
    snapshot_term: Term,
    /// Entries `snapshot_index + 1 ..= last_index()`.
    entries: VecDeque<Entry>,
}

impl RaftLog {
    pub fn new(snapshot_index: Index, snapshot_term: Term, entries: Vec<Entry>) -> Self {
        let log = RaftLog {
            snapshot_index,
            snapshot_term,
            entries: entries.into(),
        };
        log.check();
        log
    }

    fn check(&self) {
        for (i, e) in self.entries.iter().enumerate() {
            assert_eq!(
                e.index,
                self.snapshot_index + 1 + i as u64,
                "log entries must be consecutive"
            );
        }
        if let Some(first) = self.entries.front() {
            assert!(
                first.term >= self.snapshot_term,
                "terms never decrease along the log"
            );
        }
    }

    pub fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }
    pub fn snapshot_term(&self) -> Term {
        self.snapshot_term
    }
    pub fn first_index(&self) -> Index {
        self.snapshot_index + 1
    }
    pub fn last_index(&self) -> Index {
        self.snapshot_index + self.entries.len() as u64
    }
    pub fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snapshot_term, |e| e.term)
    }

    /// The term at `index`, or `None` when it is compacted away or not yet there.
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.get(index).map(|e| e.term)
    }

    pub fn get(&self, index: Index) -> Option<&Entry> {
        if index <= self.snapshot_index {
            return None;
        }
        self.entries.get((index - self.snapshot_index - 1) as usize)
    }

    /// Entries from `from` on, at most `max_bytes` (but always at least one if any exist).
    pub fn slice(&self, from: Index, max_bytes: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut i = from;
        while let Some(e) = self.get(i) {
            bytes += e.size_hint();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(e.clone());
            i += 1;
        }
        out
    }

    pub fn append(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index() + 1,
            "append must extend the log"
        );
        assert!(
            entry.term >= self.last_term(),
            "terms never decrease along the log"
        );
        self.entries.push_back(entry);
    }

    /// Drop entries `from..`. Returns whether anything was removed.
    pub fn truncate_from(&mut self, from: Index) -> bool {
        assert!(
            from > self.snapshot_index,
            "cannot truncate into the snapshot"
        );
        let keep = (from - self.snapshot_index - 1) as usize;
        let removed = self.entries.len() > keep;
        self.entries.truncate(keep);
        removed
    }

    /// Forget entries up to `index` (they are in a snapshot now).
    pub fn compact(&mut self, index: Index) {
        if index <= self.snapshot_index {
            return;
        }
        let term = self
            .term(index)
            .expect("compact only entries the log holds");
        let n = (index - self.snapshot_index) as usize;
        self.entries.drain(..n);
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    /// Replace everything with a snapshot boundary (snapshot install).
    pub fn reset(&mut self, snapshot_index: Index, snapshot_term: Term) {
        self.entries.clear();
        self.snapshot_index = snapshot_index;
        self.snapshot_term = snapshot_term;
    }

    /// Candidate's log is at least as up to date as ours (Raft §5.4.1).
    pub fn is_up_to_date(&self, last_term: Term, last_index: Index) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// First index of the run of entries that share `index`'s term; lets a
    /// follower skip a whole conflicting term in one reject.
    pub fn term_start(&self, index: Index) -> Index {
        let Some(t) = self.term(index) else {
            return index;
        };
        let mut i = index;
        while i > self.first_index() && self.term(i - 1) == Some(t) {
            i -= 1;
        }
        i
    }

    /// Index of the newest config entry at or below `upto`.
    pub fn last_config(&self, upto: Index) -> Option<&Entry> {
        self.entries
            .iter()
            .rev()
            .filter(|e| e.index <= upto)
            .find(|e| matches!(e.payload, Payload::Config(_)))
    }
}
