//! Client sessions: the last request id applied per client and its answer,
//! so that a request resent after a failover is applied once. Part of the
//! replicated state (and of every snapshot).
//!
//! A session starts with request id 1: a request with a higher id from a
//! client the table does not know belongs to a session that was evicted (or
//! never existed), and is refused rather than applied without its
//! exactly-once guarantee. The table holds at most [`MAX_SESSIONS`]; beyond
//! that the session applied longest ago is evicted, the same way on every
//! member (it is part of applying the log).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::raft::Index;

/// Sessions a ministry keeps. Bounded memory: a client idle while this many
/// others came and went must open a new session.
pub const MAX_SESSIONS: usize = 1 << 16;

/// Clients that number their requests their own way and are never evicted:
/// the minister's bootstrap (0) and the president's transfers (top bit).
fn internal(client: u64) -> bool {
    client == 0 || client >> 63 == 1
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sessions {
    /// client -> (last request id applied, index it took effect at, answer)
    last: BTreeMap<u64, (u64, Index, Vec<u8>)>,
    /// (index of the last request applied, client), oldest first, for eviction.
    by_age: BTreeSet<(Index, u64)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Dedup<'a> {
    /// Not applied yet.
    New,
    /// Already applied at this index with this answer.
    Done(Index, &'a [u8]),
    /// Older than the client's latest applied request: nobody waits for it.
    Stale,
    /// A session the table does not know (evicted, or never opened).
    Unknown,
}

impl Sessions {
    pub fn check(&self, client: u64, seq: u64) -> Dedup<'_> {
        match self.last.get(&client) {
            Some((s, index, out)) if *s == seq => Dedup::Done(*index, out),
            Some((s, _, _)) if *s > seq => Dedup::Stale,
            Some(_) => Dedup::New,
            None if seq > 1 && !internal(client) => Dedup::Unknown,
            None => Dedup::New,
        }
    }

    pub fn record(&mut self, client: u64, seq: u64, index: Index, output: Vec<u8>) {
        debug_assert!(self.last.get(&client).is_none_or(|(s, _, _)| *s < seq));
        if let Some((_, old, _)) = self.last.insert(client, (seq, index, output)) {
            self.by_age.remove(&(old, client));
        }
        if !internal(client) {
            self.by_age.insert((index, client));
        }
        while self.by_age.len() > MAX_SESSIONS {
            let (_, oldest) = self.by_age.pop_first().expect("over the bound");
            self.last.remove(&oldest);
        }
        debug_assert!(self.by_age.len() <= self.last.len());
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_at_one_and_unknown_ones_are_refused() {
        let mut s = Sessions::default();
        assert_eq!(s.check(7, 1), Dedup::New);
        assert_eq!(s.check(7, 2), Dedup::Unknown);
        s.record(7, 1, 10, b"a".to_vec());
        assert_eq!(s.check(7, 1), Dedup::Done(10, b"a"));
        assert_eq!(s.check(7, 2), Dedup::New);
        s.record(7, 2, 11, b"b".to_vec());
        assert_eq!(s.check(7, 1), Dedup::Stale);
        // Internal clients number their own way.
        assert_eq!(s.check(0, 5000), Dedup::New);
        assert_eq!(s.check(1 << 63 | 4, 2), Dedup::New);
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_oldest() {
        let mut s = Sessions::default();
        for c in 1..=(MAX_SESSIONS as u64 + 2) {
            s.record(c, 1, c, Vec::new());
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert_eq!(s.check(1, 2), Dedup::Unknown, "the oldest was evicted");
        assert_eq!(s.check(2, 2), Dedup::Unknown);
        assert_eq!(s.check(3, 2), Dedup::New);
        // Using a session makes it young again.
        s.record(3, 2, u64::MAX - 1, Vec::new());
        s.record(u64::MAX >> 2, 1, u64::MAX, Vec::new());
        assert_eq!(s.check(3, 3), Dedup::New);
        assert_eq!(s.check(4, 2), Dedup::Unknown);
    }
}
