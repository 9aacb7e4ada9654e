//! Async write acknowledgements with Lamport times (seed 000, DESIGN.md §5).
//!
//! A storage node stamps every write it accepts with its Lamport time
//! ([`Pending::accept`]) and forgets it once durable ([`Pending::durable`]).
//! Every acknowledgement ([`Ack`]) carries the write's client id, its stamp,
//! and the node's *earliest uncommitted* time: the smallest stamp that may
//! still not be durable there. Every write that node stamped below it is
//! durable, so a client mapping stamps to its own progress (a Kafka
//! consumer's read offsets, in the seed) learns durability from any later
//! acknowledgement without asking.
//!
//! The client side ([`Watermark`]) tracks its own ids: ids increase in the
//! order the client issues writes, and the low watermark is the largest id up
//! to which every write is acknowledged by all its replicas.
//!
//! Requirements on the caller:
//! * the storage service acknowledges a write only once it is durable on that
//!   node (the chunk store's write returns durable), so one [`Ack`] per
//!   replica means the write is durable everywhere;
//! * a storage node's clock never goes back, across restarts too (persist a
//!   floor and start from [`LamportClock::starting_at`]), or its stamps and
//!   earliest-uncommitted times stop being comparable with earlier ones;
//! * nodes piggy-back their time on messages to each other and call
//!   [`LamportClock::observe`] on what they receive, so stamps of causally
//!   later writes are larger across nodes.

use std::collections::{BTreeMap, HashMap};

use crate::raft::NodeId;

/// A Lamport time on a storage node.
pub type Stamp = u64;
/// A client's id for an async write.
pub type WriteId = u64;

/// Largest time a clock accepts from elsewhere. A peer's time comes over the
/// network; this bound keeps a bad one from exhausting the clock (ticking
/// from here to `u64::MAX` takes 2^62 events).
pub const MAX_OBSERVED: Stamp = 1 << 62;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LamportError {
    #[error("Lamport time {0} is beyond the accepted maximum {MAX_OBSERVED}")]
    TooFarAhead(Stamp),
    #[error("no pending write has stamp {0}")]
    UnknownStamp(Stamp),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WatermarkError {
    #[error("write id {id} does not follow the last issued id {last}")]
    NotIncreasing { id: WriteId, last: WriteId },
    #[error("write {0} needs at least one replica")]
    NoReplicas(WriteId),
    #[error("write {0} was never issued")]
    Unknown(WriteId),
    #[error("write {0} is already durable on all its replicas")]
    AlreadyDurable(WriteId),
    #[error("node {node} already acknowledged write {id}")]
    Duplicate { id: WriteId, node: NodeId },
}

/// A node's Lamport clock: `tick` for each event of its own, `observe` for
/// each time received from a peer. Never goes back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LamportClock {
    now: Stamp,
}

impl LamportClock {
    pub fn new() -> LamportClock {
        LamportClock::default()
    }

    /// A clock that continues after `floor` (a persisted bound on every stamp
    /// given before a restart).
    pub fn starting_at(floor: Stamp) -> Result<LamportClock, LamportError> {
        let mut clock = LamportClock::new();
        clock.observe(floor)?;
        Ok(clock)
    }

    /// The last time given or observed.
    pub fn now(&self) -> Stamp {
        self.now
    }

    /// A new event: a time later than every time before.
    pub fn tick(&mut self) -> Stamp {
        // `now` is at most MAX_OBSERVED plus one per local event.
        assert!(self.now < u64::MAX, "Lamport clock exhausted");
        self.now += 1;
        self.now
    }

    /// A time received from a peer: later ticks come after it. Merging is
    /// not an event of its own, so the clock moves only to `remote`.
    pub fn observe(&mut self, remote: Stamp) -> Result<(), LamportError> {
        if remote > MAX_OBSERVED {
            return Err(LamportError::TooFarAhead(remote));
        }
        self.now = self.now.max(remote);
        Ok(())
    }
}

/// What a storage node answers for a durable async write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ack {
    /// The client's id of the write.
    pub write: WriteId,
    /// The node's Lamport time when it accepted the write.
    pub stamp: Stamp,
    /// Every write this node stamped below this is durable
    /// ([`Pending::earliest_uncommitted_or_next`]).
    pub earliest_uncommitted: Stamp,
}

/// A storage node's writes accepted but not yet durable, by stamp.
#[derive(Clone, Debug, Default)]
pub struct Pending {
    clock: LamportClock,
    writes: BTreeMap<Stamp, WriteId>,
}

impl Pending {
    pub fn new(clock: LamportClock) -> Pending {
        Pending {
            clock,
            writes: BTreeMap::new(),
        }
    }

    pub fn clock(&self) -> &LamportClock {
        &self.clock
    }

    /// A peer's time (see [`LamportClock::observe`]).
    pub fn observe(&mut self, remote: Stamp) -> Result<(), LamportError> {
        self.clock.observe(remote)
    }

    /// Accepts a write: its stamp, which [`Pending::durable`] takes later.
    pub fn accept(&mut self, write: WriteId) -> Stamp {
        let stamp = self.clock.tick();
        let fresh = self.writes.insert(stamp, write).is_none();
        assert!(fresh, "ticks are unique");
        stamp
    }

    /// The write stamped `stamp` is durable: its acknowledgement.
    pub fn durable(&mut self, stamp: Stamp) -> Result<Ack, LamportError> {
        let write = self
            .writes
            .remove(&stamp)
            .ok_or(LamportError::UnknownStamp(stamp))?;
        let ack = Ack {
            write,
            stamp,
            earliest_uncommitted: self.earliest_uncommitted_or_next(),
        };
        debug_assert!(ack.earliest_uncommitted != stamp);
        Ok(ack)
    }

    /// The write stamped `stamp` failed and will not become durable (the
    /// client is told with an error and resends): it stops holding back the
    /// earliest uncommitted time. Returns its client id.
    pub fn failed(&mut self, stamp: Stamp) -> Result<WriteId, LamportError> {
        self.writes
            .remove(&stamp)
            .ok_or(LamportError::UnknownStamp(stamp))
    }

    /// The smallest stamp still pending.
    pub fn earliest_uncommitted(&self) -> Option<Stamp> {
        let first = self.writes.keys().next().copied();
        debug_assert!(first.is_none_or(|s| s <= self.clock.now()));
        first
    }

    /// The smallest stamp still pending, or, with none pending, the next
    /// stamp the clock will give: every write stamped below it is durable.
    /// Never decreases.
    pub fn earliest_uncommitted_or_next(&self) -> Stamp {
        self.earliest_uncommitted()
            .unwrap_or_else(|| self.clock.now().saturating_add(1))
    }

    /// Writes accepted and not yet durable or failed.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// A write the client issued that is not yet below the low watermark.
#[derive(Clone, Debug)]
struct Issued {
    replicas: usize,
    /// Nodes that acknowledged it (at most `replicas`, distinct).
    acked: Vec<NodeId>,
}

impl Issued {
    fn is_durable(&self) -> bool {
        self.acked.len() == self.replicas
    }
}

/// The client's view of its async writes: which are durable on all replicas.
///
/// Write ids must strictly increase in issue order (a counter does); the
/// watermark is about that order. Every operation is O(log n) in the writes
/// above the watermark (amortized: each write leaves the map once).
#[derive(Clone, Debug, Default)]
pub struct Watermark {
    /// Issued writes above the watermark; the first is not durable.
    writes: BTreeMap<WriteId, Issued>,
    low: Option<WriteId>,
    last_issued: Option<WriteId>,
    not_durable: usize,
    /// Per node, the latest times it reported.
    nodes: HashMap<NodeId, NodeTimes>,
}

impl Watermark {
    pub fn new() -> Watermark {
        Watermark::default()
    }

    /// Records a write sent to `replicas` nodes. Ids must increase.
    pub fn issue(&mut self, id: WriteId, replicas: usize) -> Result<(), WatermarkError> {
        if let Some(last) = self.last_issued {
            if id <= last {
                return Err(WatermarkError::NotIncreasing { id, last });
            }
        }
        if replicas == 0 {
            return Err(WatermarkError::NoReplicas(id));
        }
        self.writes.insert(
            id,
            Issued {
                replicas,
                acked: Vec::with_capacity(replicas),
            },
        );
        self.last_issued = Some(id);
        self.not_durable += 1;
        Ok(())
    }

    /// An acknowledgement of write `id` from `node` (durable there). Returns
    /// whether the write just became durable on all its replicas. Errors
    /// leave the state unchanged; a duplicate is harmless to ignore.
    pub fn ack(
        &mut self,
        id: WriteId,
        node: NodeId,
        stamp: Stamp,
        earliest_uncommitted: Stamp,
    ) -> Result<bool, WatermarkError> {
        if self.low.is_some_and(|low| id <= low) {
            return Err(WatermarkError::AlreadyDurable(id));
        }
        let write = self
            .writes
            .get_mut(&id)
            .ok_or(WatermarkError::Unknown(id))?;
        if write.is_durable() {
            return Err(WatermarkError::AlreadyDurable(id));
        }
        if write.acked.contains(&node) {
            return Err(WatermarkError::Duplicate { id, node });
        }
        write.acked.push(node);
        let now_durable = write.is_durable();
        let times = self.nodes.entry(node).or_insert(NodeTimes {
            latest_stamp: stamp,
            earliest_uncommitted,
        });
        // Acks may arrive out of order: keep the largest of each.
        times.latest_stamp = times.latest_stamp.max(stamp);
        times.earliest_uncommitted = times.earliest_uncommitted.max(earliest_uncommitted);
        if now_durable {
            self.not_durable -= 1;
            self.advance();
        }
        Ok(now_durable)
    }

    /// Moves the watermark over the durable writes at the front.
    fn advance(&mut self) {
        while let Some(entry) = self.writes.first_entry() {
            if !entry.get().is_durable() {
                break;
            }
            let (id, _) = entry.remove_entry();
            debug_assert!(self.low.is_none_or(|low| low < id));
            self.low = Some(id);
        }
        debug_assert!(self.writes.values().next().is_none_or(|w| !w.is_durable()));
    }

    /// The largest issued id `W` such that every write with id `<= W` is
    /// acknowledged by all its replicas; `None` until the first is.
    pub fn low_watermark(&self) -> Option<WriteId> {
        self.low
    }

    /// Whether write `id` is acknowledged by all its replicas. Ids at or
    /// below the watermark are no longer kept, so any id there answers true
    /// (ask about ids you issued); above it, an id never issued is false.
    pub fn durable(&self, id: WriteId) -> bool {
        self.low.is_some_and(|low| id <= low)
            || self.writes.get(&id).is_some_and(Issued::is_durable)
    }

    /// Writes issued and not yet durable on all their replicas.
    pub fn lag(&self) -> usize {
        self.not_durable
    }

    /// The latest times `node` reported in its acknowledgements.
    pub fn node_times(&self, node: NodeId) -> Option<NodeTimes> {
        self.nodes.get(&node).copied()
    }
}

/// What a client last heard of a storage node's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeTimes {
    /// The largest stamp in its acknowledgements.
    pub latest_stamp: Stamp,
    /// The largest earliest-uncommitted time: every write the node stamped
    /// below it is durable there.
    pub earliest_uncommitted: Stamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_clock_only_moves_forward() {
        let mut c = LamportClock::new();
        assert_eq!((c.tick(), c.tick()), (1, 2));
        assert_eq!(c.observe(10), Ok(()));
        assert_eq!(c.tick(), 11);
        assert_eq!(c.observe(3), Ok(()));
        assert_eq!(c.now(), 11);
        assert_eq!(
            c.observe(MAX_OBSERVED + 1),
            Err(LamportError::TooFarAhead(MAX_OBSERVED + 1))
        );
        assert_eq!(c.now(), 11);
        assert_eq!(
            LamportClock::starting_at(100).map(|mut c| c.tick()),
            Ok(101)
        );
    }

    #[test]
    fn earliest_uncommitted_follows_the_oldest_pending_write() {
        let mut p = Pending::new(LamportClock::new());
        assert_eq!(
            (p.earliest_uncommitted(), p.earliest_uncommitted_or_next()),
            (None, 1)
        );
        let a = p.accept(100);
        let b = p.accept(101);
        let c = p.accept(102);
        assert_eq!(p.earliest_uncommitted(), Some(a));
        // b durable first: a still holds the earliest back.
        assert_eq!(
            p.durable(b),
            Ok(Ack {
                write: 101,
                stamp: b,
                earliest_uncommitted: a
            })
        );
        assert_eq!(
            p.durable(a),
            Ok(Ack {
                write: 100,
                stamp: a,
                earliest_uncommitted: c
            })
        );
        assert_eq!(p.durable(a), Err(LamportError::UnknownStamp(a)));
        assert_eq!(p.failed(c), Ok(102));
        assert_eq!(p.earliest_uncommitted_or_next(), 4);
        assert_eq!(p.observe(20), Ok(()));
        assert_eq!(p.earliest_uncommitted_or_next(), 21);
        assert!(p.is_empty());
    }

    #[test]
    fn the_watermark_waits_for_every_replica() {
        let mut w = Watermark::new();
        w.issue(10, 2).expect("first");
        w.issue(20, 1).expect("increasing");
        assert_eq!(
            w.issue(20, 1),
            Err(WatermarkError::NotIncreasing { id: 20, last: 20 })
        );
        assert_eq!(w.issue(30, 0), Err(WatermarkError::NoReplicas(30)));
        assert_eq!(w.ack(20, 1, 5, 3), Ok(true));
        assert_eq!(
            (w.low_watermark(), w.durable(20), w.durable(10), w.lag()),
            (None, true, false, 1)
        );
        assert_eq!(w.ack(10, 1, 4, 3), Ok(false));
        assert_eq!(
            w.ack(10, 1, 4, 3),
            Err(WatermarkError::Duplicate { id: 10, node: 1 })
        );
        assert_eq!(w.ack(10, 2, 9, 10), Ok(true));
        assert_eq!((w.low_watermark(), w.lag()), (Some(20), 0));
        assert_eq!(w.ack(10, 3, 9, 10), Err(WatermarkError::AlreadyDurable(10)));
        assert_eq!(w.ack(15, 3, 9, 10), Err(WatermarkError::AlreadyDurable(15)));
        assert_eq!(w.ack(25, 3, 9, 10), Err(WatermarkError::Unknown(25)));
        assert_eq!(
            w.node_times(1),
            Some(NodeTimes {
                latest_stamp: 5,
                earliest_uncommitted: 3
            })
        );
        assert_eq!(w.node_times(4), None);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Accept,
        Durable(prop::sample::Index),
        Fail(prop::sample::Index),
        Observe(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Accept),
            2 => any::<prop::sample::Index>().prop_map(Op::Durable),
            1 => any::<prop::sample::Index>().prop_map(Op::Fail),
            1 => (0u64..200).prop_map(Op::Observe),
        ]
    }

    /// Writes with their replica counts, and every (write, replica) ack in a
    /// random order.
    /// (id, replicas) per write, and (write index, node) per ack.
    type History = (Vec<(WriteId, usize)>, Vec<(usize, NodeId)>);

    fn history() -> impl Strategy<Value = History> {
        proptest::collection::vec((1u64..4, 1usize..4), 1..30).prop_flat_map(|gaps| {
            let mut id = 0;
            let writes: Vec<(WriteId, usize)> = gaps
                .into_iter()
                .map(|(gap, n)| {
                    id += gap;
                    (id, n)
                })
                .collect();
            let acks: Vec<(usize, NodeId)> = writes
                .iter()
                .enumerate()
                .flat_map(|(i, &(_, n))| (0..n as NodeId).map(move |node| (i, node)))
                .collect();
            (Just(writes), Just(acks).prop_shuffle())
        })
    }

    proptest! {
        #[test]
        fn pending_reports_only_durable_history(ops in proptest::collection::vec(op(), 0..60)) {
            let mut p = Pending::new(LamportClock::new());
            let mut last = p.earliest_uncommitted_or_next();
            let mut next_id = 0;
            for op in ops {
                match op {
                    Op::Accept => { p.accept(next_id); next_id += 1; }
                    Op::Durable(i) | Op::Fail(i) if !p.is_empty() => {
                        let stamp = *p.writes.keys().nth(i.index(p.len())).expect("in range");
                        if matches!(op, Op::Durable(_)) {
                            let ack = p.durable(stamp).expect("pending");
                            prop_assert_eq!(ack.stamp, stamp);
                            prop_assert_eq!(ack.earliest_uncommitted, p.earliest_uncommitted_or_next());
                        } else {
                            p.failed(stamp).expect("pending");
                        }
                    }
                    Op::Observe(t) => p.observe(t).expect("small"),
                    _ => {}
                }
                let e = p.earliest_uncommitted_or_next();
                prop_assert!(e >= last, "never decreases");
                prop_assert!(p.writes.keys().all(|&s| e <= s && s <= p.clock().now()));
                last = e;
            }
        }

        #[test]
        fn the_watermark_never_passes_an_unacknowledged_write((writes, acks) in history()) {
            let mut w = Watermark::new();
            let mut issued = 0;
            let mut got = vec![0usize; writes.len()];
            for (i, node) in acks {
                // Issue lazily, in id order, up to the write being acknowledged.
                while issued <= i {
                    w.issue(writes[issued].0, writes[issued].1).expect("increasing");
                    issued += 1;
                }
                got[i] += 1;
                prop_assert_eq!(w.ack(writes[i].0, node, 1, 1), Ok(got[i] == writes[i].1));
                // The model: the last write of the fully acknowledged prefix.
                let prefix = got[..issued].iter().zip(&writes).take_while(|(g, (_, n))| *g == n).count();
                let expect = prefix.checked_sub(1).map(|k| writes[k].0);
                prop_assert_eq!(w.low_watermark(), expect);
                let lag = got[..issued].iter().zip(&writes).filter(|(g, (_, n))| *g != n).count();
                prop_assert_eq!(w.lag(), lag);
                for (k, &(id, n)) in writes[..issued].iter().enumerate() {
                    prop_assert_eq!(w.durable(id), got[k] == n);
                }
            }
            prop_assert_eq!(w.low_watermark(), writes.last().map(|&(id, _)| id));
            prop_assert_eq!(w.lag(), 0);
        }
    }
}
