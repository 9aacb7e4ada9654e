//! Client sessions: the last request id applied per client and its answer,
//! so that a request resent after a failover is applied once. Part of the
//! replicated state (and of every snapshot).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::raft::Index;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sessions {
    /// client -> (last request id applied, index it took effect at, answer)
    last: BTreeMap<u64, (u64, Index, Vec<u8>)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Dedup<'a> {
    /// Not applied yet.
    New,
    /// Already applied at this index with this answer.
    Done(Index, &'a [u8]),
    /// Older than the client's latest applied request: nobody waits for it.
    Stale,
}

impl Sessions {
    pub fn check(&self, client: u64, seq: u64) -> Dedup<'_> {
        match self.last.get(&client) {
            Some((s, index, out)) if *s == seq => Dedup::Done(*index, out),
            Some((s, _, _)) if *s > seq => Dedup::Stale,
            _ => Dedup::New,
        }
    }

    pub fn record(&mut self, client: u64, seq: u64, index: Index, output: Vec<u8>) {
        debug_assert!(self.last.get(&client).is_none_or(|(s, _, _)| *s < seq));
        self.last.insert(client, (seq, index, output));
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}
