//! What a leader knows about one follower: how far it matches, what to send
//! next, and the window of appends in flight (pipelining).

use std::collections::VecDeque;

use super::types::{Index, Micros};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Not sure where the follower's log matches ours: one append at a time.
    Probe,
    /// Logs match up to `matched`: stream appends, up to the window.
    Replicate,
    /// A snapshot up to this index is on its way.
    Snapshot(Index),
}

#[derive(Clone, Debug)]
pub struct Progress {
    /// Highest index known durable on the follower and equal to ours.
    pub matched: Index,
    /// Next index to send.
    pub next: Index,
    pub state: ProgressState,
    /// In Probe: an append is out and we wait for its answer (or a heartbeat).
    pub paused: bool,
    /// Last index of every append in flight, oldest first.
    pub inflight: Inflights,
    /// When the follower last answered (any response).
    pub last_heard: Option<Micros>,
    /// When a snapshot was last sent (to resend after loss).
    pub snapshot_sent_at: Micros,
}

impl Progress {
    pub fn new(next: Index, window: usize) -> Self {
        Progress {
            matched: 0,
            next,
            state: ProgressState::Probe,
            paused: false,
            inflight: Inflights::new(window),
            last_heard: None,
            snapshot_sent_at: 0,
        }
    }

    /// The follower holds our log up to `index`. Returns whether `matched` moved.
    pub fn on_match(&mut self, index: Index) -> bool {
        self.paused = false;
        let moved = index > self.matched;
        if moved {
            self.matched = index;
        }
        self.next = self.next.max(self.matched + 1);
        self.inflight.free_upto(index);
        if self.state == ProgressState::Probe {
            self.state = ProgressState::Replicate;
        }
        moved
    }

    pub fn become_probe(&mut self, next: Index) {
        self.state = ProgressState::Probe;
        self.next = next.max(self.matched + 1);
        self.paused = false;
        self.inflight.clear();
    }

    pub fn become_snapshot(&mut self, index: Index, now: Micros) {
        self.state = ProgressState::Snapshot(index);
        self.snapshot_sent_at = now;
        self.inflight.clear();
    }
}

/// A bounded ring of the last indexes of appends not yet acknowledged.
#[derive(Clone, Debug)]
pub struct Inflights {
    cap: usize,
    queue: VecDeque<Index>,
}

impl Inflights {
    pub fn new(cap: usize) -> Self {
        assert!(cap > 0, "the append window must hold at least one message");
        Inflights {
            cap,
            queue: VecDeque::with_capacity(cap),
        }
    }
    pub fn full(&self) -> bool {
        self.queue.len() >= self.cap
    }
    pub fn add(&mut self, last: Index) {
        assert!(!self.full(), "append window overflow");
        debug_assert!(self.queue.back().is_none_or(|b| *b <= last));
        self.queue.push_back(last);
    }
    pub fn free_upto(&mut self, index: Index) {
        while self.queue.front().is_some_and(|f| *f <= index) {
            self.queue.pop_front();
        }
    }
    pub fn clear(&mut self) {
        self.queue.clear();
    }
    pub fn len(&self) -> usize {
        self.queue.len()
    }
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}
