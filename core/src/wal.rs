//! Write-ahead log record format, sans-IO: framing, scanning and replay as
//! pure functions over byte slices. The engine owns files; this owns meaning.
//!
//! A log is a sequence of frames, each
//!
//! ```text
//! [len: u32 LE][crc32c(body): u32 LE][body: len bytes = postcard(Record)]
//! ```
//!
//! A body is never empty (the enum tag takes a byte), so a zero `len` marks
//! the end of data when everything after it is zero too (a preallocated file).
//! A crash can tear the last frame; [`scan`] stops at the first bad frame and
//! reports how many bytes are trustworthy, and the caller cuts the file there.

use crate::codec::{decode_exact, encode_into, DecodeError};
use crate::raft::{Entry, HardState, Index, SnapshotMeta, Term};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Bytes of `len` and `crc` before each body.
pub const HEADER_LEN: usize = 8;
/// Largest body accepted. Bounds memory per record and catches a corrupt
/// `len` before it is believed.
pub const MAX_RECORD_LEN: u32 = 64 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// An entry at `entry.index`; replaces any entries at or after that index.
    Entry(Entry),
    HardState(HardState),
    /// A snapshot file covers the log up to `meta.index`: earlier entries are obsolete.
    Snapshot(SnapshotMeta),
    /// Entries at or after `from` are void.
    Truncate {
        from: Index,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("record body of {len} bytes exceeds the limit of {MAX_RECORD_LEN}")]
pub struct RecordTooLarge {
    pub len: usize,
}

/// Appends one framed record to `out`. On error `out` is left as it was.
pub fn encode_record(rec: &Record, out: &mut Vec<u8>) -> Result<(), RecordTooLarge> {
    encode_frame(rec, out)
}

/// Appends `value` framed as a record is. Other files (snapshots) reuse the
/// framing; their bodies must never be empty, as a record's never is.
pub fn encode_frame<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), RecordTooLarge> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    encode_into(value, out);
    let len = out.len() - start - HEADER_LEN;
    if len > MAX_RECORD_LEN as usize {
        out.truncate(start);
        return Err(RecordTooLarge { len });
    }
    let crc = crc32c::crc32c(&out[start + HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The outcome of [`scan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Every record before the first bad frame, in order.
    pub records: Vec<Record>,
    /// Start offset of each record in `records`.
    pub offsets: Vec<usize>,
    /// Bytes holding those records; everything after is to be cut.
    pub valid_len: usize,
    pub tail: Tail,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Every byte after `valid_len` (if any) is zero: a clean end of data.
    Clean,
    /// The frame at `offset` (== `valid_len`) is bad.
    Torn { offset: usize, reason: TornReason },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TornReason {
    #[error("header cut short: {have} of {HEADER_LEN} bytes")]
    ShortHeader { have: usize },
    #[error("zero length but non-zero bytes follow")]
    ZeroLength,
    #[error("length {len} exceeds the limit of {MAX_RECORD_LEN}")]
    TooLong { len: u32 },
    #[error("body cut short: {have} of {len} bytes")]
    ShortBody { len: u32, have: usize },
    #[error("crc mismatch: header says {stored:#010x}, body has {actual:#010x}")]
    CrcMismatch { stored: u32, actual: u32 },
    #[error("body does not decode: {0}")]
    Undecodable(DecodeError),
}

/// Reads frames from the start of `bytes` until the end or the first bad one.
/// Never guesses past a bad frame: what follows it cannot be trusted to be
/// framed where it appears to be.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut out = Scan {
        records: Vec::new(),
        offsets: Vec::new(),
        valid_len: 0,
        tail: Tail::Clean,
    };
    let mut offset = 0;
    while offset < bytes.len() {
        match decode_frame(&bytes[offset..]) {
            Ok(Some((rec, used))) => {
                out.records.push(rec);
                out.offsets.push(offset);
                offset += used;
            }
            Ok(None) => break,
            Err(reason) => {
                out.tail = Tail::Torn { offset, reason };
                break;
            }
        }
    }
    out.valid_len = offset;
    out
}

/// Total size (header and body) of the frame starting with `header`, for
/// callers that read a frame piecewise from a file.
pub fn frame_len(header: &[u8; HEADER_LEN]) -> Result<usize, TornReason> {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    if len == 0 {
        Err(TornReason::ZeroLength)
    } else if len > MAX_RECORD_LEN {
        Err(TornReason::TooLong { len })
    } else {
        Ok(HEADER_LEN + len as usize)
    }
}

/// Decodes the frame at the start of `rest` and returns it with its size, or
/// `None` if `rest` is all zeros (the clean end of a preallocated file).
pub fn decode_frame<T: DeserializeOwned>(rest: &[u8]) -> Result<Option<(T, usize)>, TornReason> {
    let all_zero = || rest.iter().all(|b| *b == 0);
    let Some((header, body)) = rest.split_first_chunk::<HEADER_LEN>() else {
        return if all_zero() {
            Ok(None)
        } else {
            Err(TornReason::ShortHeader { have: rest.len() })
        };
    };
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]);
    let stored = u32::from_le_bytes([c0, c1, c2, c3]);
    if len == 0 {
        return if all_zero() {
            Ok(None)
        } else {
            Err(TornReason::ZeroLength)
        };
    }
    if len > MAX_RECORD_LEN {
        return Err(TornReason::TooLong { len });
    }
    let Some(body) = body.get(..len as usize) else {
        return Err(TornReason::ShortBody {
            len,
            have: body.len(),
        });
    };
    let actual = crc32c::crc32c(body);
    if actual != stored {
        return Err(TornReason::CrcMismatch { stored, actual });
    }
    let value = decode_exact::<T>(body).map_err(TornReason::Undecodable)?;
    Ok(Some((value, HEADER_LEN + len as usize)))
}

/// State recovered by folding records in log order.
///
/// Compaction deletes the oldest segments, so a replay may begin mid-log:
/// while no entry is held, the next may start anywhere above the snapshot.
/// Only [`Replay::finish`] demands that the entries meet the snapshot, by
/// then the marker written at compaction has been applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// The last hard state written (default if none).
    pub hard_state: HardState,
    /// The latest snapshot marker, if any.
    pub snapshot: Option<SnapshotMeta>,
    /// Consecutive entries after the snapshot (or from index 1).
    pub entries: Vec<Entry>,
}

/// A record sequence no correct writer produces: the log is corrupt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("entry {found} leaves a gap after index {last}")]
    Gap { last: Index, found: Index },
    #[error("entry {index} has term {term}, below the preceding term {prev}")]
    TermDecreases {
        index: Index,
        term: Term,
        prev: Term,
    },
    #[error("record rewrites index {index}, covered by the snapshot at {snapshot}")]
    BelowSnapshot { index: Index, snapshot: Index },
    #[error("snapshot at {index} is older than the one at {current}")]
    SnapshotRegressed { index: Index, current: Index },
    #[error("hard state term {term} is below the earlier {current}")]
    TermRegressed { term: Term, current: Term },
}

impl Replay {
    /// Folds `records` into a fresh state and checks it with [`Replay::finish`].
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = &'a Record>,
    ) -> Result<Self, ReplayError> {
        let mut replay = Replay::default();
        for rec in records {
            replay.apply(rec)?;
        }
        replay.finish()?;
        Ok(replay)
    }

    /// Checks, after the last record, that the entries follow the snapshot
    /// (or index 0) without a gap: a log whose start is lost is corrupt.
    pub fn finish(&self) -> Result<(), ReplayError> {
        let base = self.snapshot_index();
        match self.entries.first() {
            Some(first) if first.index != base + 1 => Err(ReplayError::Gap {
                last: base,
                found: first.index,
            }),
            _ => Ok(()),
        }
    }

    /// Index of the last entry covered by the snapshot (0 if none).
    pub fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.index)
    }

    fn snapshot_term(&self) -> Term {
        self.snapshot.as_ref().map_or(0, |s| s.term)
    }

    /// Index of the last entry, in the log or the snapshot.
    pub fn last_index(&self) -> Index {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |e| e.index)
    }

    /// Term of the last entry, in the log or the snapshot.
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_term(), |e| e.term)
    }

    /// Applies one record. On error `self` is unchanged.
    pub fn apply(&mut self, rec: &Record) -> Result<(), ReplayError> {
        match rec {
            Record::HardState(hs) => {
                let current = self.hard_state.term;
                if hs.term < current {
                    return Err(ReplayError::TermRegressed {
                        term: hs.term,
                        current,
                    });
                }
                self.hard_state = *hs;
            }
            Record::Entry(e) => self.apply_entry(e)?,
            Record::Truncate { from } => {
                let snapshot = self.snapshot_index();
                if *from <= snapshot {
                    return Err(ReplayError::BelowSnapshot {
                        index: *from,
                        snapshot,
                    });
                }
                self.entries.truncate(self.position(*from));
            }
            Record::Snapshot(meta) => self.apply_snapshot(meta)?,
        }
        Ok(())
    }

    /// Position in `entries` of index `i`, or where it would go; 0 below the first.
    fn position(&self, i: Index) -> usize {
        let first = self.entries.first().map_or(i, |e| e.index);
        usize::try_from(i.saturating_sub(first))
            .map_or(self.entries.len(), |p| p.min(self.entries.len()))
    }

    /// Term of the entry at `index`, if the log or the snapshot knows it.
    fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index() {
            return Some(self.snapshot_term());
        }
        self.entries
            .get(self.position(index))
            .filter(|e| e.index == index)
            .map(|e| e.term)
    }

    /// An entry at `i` replaces every entry at or after `i`.
    fn apply_entry(&mut self, e: &Entry) -> Result<(), ReplayError> {
        let snapshot = self.snapshot_index();
        if e.index <= snapshot {
            return Err(ReplayError::BelowSnapshot {
                index: e.index,
                snapshot,
            });
        }
        if let Some(last) = self.entries.last() {
            if e.index > last.index.saturating_add(1) {
                return Err(ReplayError::Gap {
                    last: last.index,
                    found: e.index,
                });
            }
        }
        let keep = self.position(e.index);
        // Without a predecessor (a log starting mid-way) the snapshot's term still bounds it.
        let prev = keep
            .checked_sub(1)
            .map_or(self.snapshot_term(), |p| self.entries[p].term);
        if e.term < prev {
            return Err(ReplayError::TermDecreases {
                index: e.index,
                term: e.term,
                prev,
            });
        }
        self.entries.truncate(keep);
        self.entries.push(e.clone());
        Ok(())
    }

    /// As in Raft: keep entries after the snapshot only if the log agrees with
    /// it at its index; otherwise the whole log is superseded. If the entry
    /// there was compacted away (the log starts after it), the log is kept
    /// unless its terms contradict the snapshot's, and [`Replay::finish`]
    /// judges whether it meets the last snapshot.
    fn apply_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), ReplayError> {
        let current = self.snapshot_index();
        if meta.index < current {
            return Err(ReplayError::SnapshotRegressed {
                index: meta.index,
                current,
            });
        }
        let agrees = match self.term_at(meta.index) {
            Some(term) => term == meta.term,
            None => self
                .entries
                .first()
                .is_some_and(|first| meta.index < first.index && first.term >= meta.term),
        };
        if agrees {
            let drop = self.entries.partition_point(|e| e.index <= meta.index);
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
        }
        self.snapshot = Some(meta.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::strategies;
    use crate::raft::{Membership, Payload};
    use proptest::prelude::*;

    fn entry(term: Term, index: Index) -> Entry {
        Entry {
            term,
            index,
            payload: Payload::Command(vec![index as u8; 5]),
        }
    }

    fn meta(index: Index, term: Term) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term,
            membership: Membership::new(vec![1, 2, 3], vec![]),
        }
    }

    fn encode_all(records: &[Record]) -> (Vec<u8>, Vec<usize>) {
        let (mut buf, mut ends) = (Vec::new(), Vec::new());
        for r in records {
            encode_record(r, &mut buf).expect("small record");
            ends.push(buf.len());
        }
        (buf, ends)
    }

    fn replay(records: &[Record]) -> Result<Replay, ReplayError> {
        Replay::from_records(records)
    }

    /// Records over the whole value range: for framing tests.
    fn record() -> impl Strategy<Value = Record> {
        prop_oneof![
            (1u64..1000, 0u64..10, strategies::payload()).prop_map(|(index, term, payload)| {
                Record::Entry(Entry {
                    term,
                    index,
                    payload,
                })
            }),
            strategies::hard_state().prop_map(Record::HardState),
            strategies::snapshot_meta().prop_map(Record::Snapshot),
            any::<u64>().prop_map(|from| Record::Truncate { from }),
        ]
    }

    /// Records over a few indices and terms, so that replays often succeed
    /// and overwrites, truncations and snapshots interact.
    fn plausible_record() -> impl Strategy<Value = Record> {
        prop_oneof![
            4 => (1u64..12, 0u64..4).prop_map(|(index, term)| Record::Entry(entry(term, index))),
            1 => (0u64..4).prop_map(|term| Record::HardState(HardState { term, vote: None })),
            1 => (0u64..12, 0u64..4).prop_map(|(index, term)| Record::Snapshot(meta(index, term))),
            1 => (1u64..14).prop_map(|from| Record::Truncate { from }),
        ]
    }

    #[test]
    fn empty_and_zeroed_input_is_clean() {
        for bytes in [vec![], vec![0; 3], vec![0; 4096]] {
            let s = scan(&bytes);
            assert_eq!((s.records.len(), s.valid_len, s.tail), (0, 0, Tail::Clean));
        }
    }

    #[test]
    fn zero_padding_after_records_is_clean() {
        let (mut buf, _) = encode_all(&[Record::Entry(entry(1, 1))]);
        let len = buf.len();
        buf.resize(len + 100, 0);
        let s = scan(&buf);
        assert_eq!(
            (s.records.len(), s.valid_len, s.tail),
            (1, len, Tail::Clean)
        );
    }

    #[test]
    fn zero_length_before_garbage_is_torn() {
        let mut buf = vec![0; 16];
        buf[12] = 1;
        assert_eq!(
            scan(&buf).tail,
            Tail::Torn {
                offset: 0,
                reason: TornReason::ZeroLength
            }
        );
    }

    #[test]
    fn oversized_length_is_torn() {
        let mut buf = (MAX_RECORD_LEN + 1).to_le_bytes().to_vec();
        buf.extend_from_slice(&[0; 4]);
        assert_eq!(
            scan(&buf).tail,
            Tail::Torn {
                offset: 0,
                reason: TornReason::TooLong {
                    len: MAX_RECORD_LEN + 1
                }
            }
        );
    }

    #[test]
    fn valid_crc_over_garbage_is_torn() {
        let body = [0xFF, 0xFF, 0xFF];
        let mut buf = (body.len() as u32).to_le_bytes().to_vec();
        buf.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        buf.extend_from_slice(&body);
        assert!(matches!(
            scan(&buf).tail,
            Tail::Torn {
                offset: 0,
                reason: TornReason::Undecodable(_)
            }
        ));
    }

    #[test]
    fn oversized_record_is_refused_and_buffer_kept() {
        let big = Entry {
            term: 1,
            index: 1,
            payload: Payload::Command(vec![0; MAX_RECORD_LEN as usize]),
        };
        let mut buf = vec![7];
        assert!(encode_record(&Record::Entry(big), &mut buf).is_err());
        assert_eq!(buf, vec![7]);
    }

    #[test]
    fn replay_overwrites_suffix() {
        let r = replay(&[
            Record::Entry(entry(1, 1)),
            Record::Entry(entry(1, 2)),
            Record::Entry(entry(1, 3)),
            Record::Entry(entry(2, 2)),
        ])
        .unwrap();
        assert_eq!(r.entries, vec![entry(1, 1), entry(2, 2)]);
    }

    #[test]
    fn replay_truncate_and_hard_state() {
        let hs = HardState {
            term: 3,
            vote: Some(1),
        };
        let r = replay(&[
            Record::Entry(entry(1, 1)),
            Record::Entry(entry(1, 2)),
            Record::HardState(hs),
            Record::Truncate { from: 2 },
            Record::Truncate { from: 10 },
        ])
        .unwrap();
        assert_eq!((r.entries, r.hard_state), (vec![entry(1, 1)], hs));
    }

    #[test]
    fn replay_snapshot_keeps_agreeing_suffix() {
        let log: Vec<_> = (1..=5).map(|i| Record::Entry(entry(1, i))).collect();
        let mut recs = log.clone();
        recs.push(Record::Snapshot(meta(3, 1)));
        let r = replay(&recs).unwrap();
        assert_eq!(
            (r.last_index(), r.entries),
            (5, vec![entry(1, 4), entry(1, 5)])
        );
        // The same snapshot again (written at each segment roll) changes nothing.
        recs.push(Record::Snapshot(meta(3, 1)));
        recs.push(Record::Entry(entry(2, 4)));
        assert_eq!(replay(&recs).unwrap().entries, vec![entry(2, 4)]);
    }

    #[test]
    fn replay_snapshot_discards_disagreeing_log() {
        let mut recs: Vec<_> = (1..=5).map(|i| Record::Entry(entry(1, i))).collect();
        recs.push(Record::Snapshot(meta(3, 2)));
        let r = replay(&recs).unwrap();
        assert_eq!((r.entries.len(), r.last_index(), r.last_term()), (0, 3, 2));
        recs.push(Record::Snapshot(meta(9, 2)));
        recs.push(Record::Entry(entry(2, 10)));
        assert_eq!(replay(&recs).unwrap().entries, vec![entry(2, 10)]);
    }

    #[test]
    fn replay_may_start_mid_log_when_a_snapshot_covers_the_start() {
        let e = |t, i| Record::Entry(entry(t, i));
        // The oldest segments were compacted away; the marker comes later.
        let r = replay(&[
            e(1, 58),
            e(1, 59),
            e(1, 60),
            e(1, 61),
            Record::Snapshot(meta(60, 1)),
        ])
        .unwrap();
        assert_eq!(r.entries, vec![entry(1, 61)]);
        // A head written before the compaction names an older snapshot: the log is kept.
        let r = replay(&[
            Record::Snapshot(meta(40, 1)),
            e(1, 58),
            e(1, 59),
            Record::Snapshot(meta(58, 1)),
        ])
        .unwrap();
        assert_eq!(r.entries, vec![entry(1, 59)]);
        // A new leader rewrites below where the replay started.
        let r = replay(&[
            e(1, 58),
            e(1, 59),
            e(2, 55),
            e(2, 56),
            Record::Snapshot(meta(54, 1)),
        ])
        .unwrap();
        assert_eq!(r.entries, vec![entry(2, 55), entry(2, 56)]);
        // Without a snapshot that reaches it, a lost start is a gap.
        assert_eq!(
            replay(&[e(1, 58), Record::Snapshot(meta(50, 1))]),
            Err(ReplayError::Gap {
                last: 50,
                found: 58
            })
        );
    }

    #[test]
    fn replay_rejects_corrupt_sequences() {
        let e = |t, i| Record::Entry(entry(t, i));
        assert_eq!(
            replay(&[e(1, 2)]),
            Err(ReplayError::Gap { last: 0, found: 2 })
        );
        assert_eq!(
            replay(&[e(1, 1), e(1, 3)]),
            Err(ReplayError::Gap { last: 1, found: 3 })
        );
        assert_eq!(
            replay(&[e(2, 1), e(1, 2)]),
            Err(ReplayError::TermDecreases {
                index: 2,
                term: 1,
                prev: 2
            })
        );
        let snap = Record::Snapshot(meta(5, 3));
        assert_eq!(
            replay(&[snap.clone(), e(3, 5)]),
            Err(ReplayError::BelowSnapshot {
                index: 5,
                snapshot: 5
            })
        );
        assert_eq!(
            replay(&[snap.clone(), e(2, 6)]),
            Err(ReplayError::TermDecreases {
                index: 6,
                term: 2,
                prev: 3
            })
        );
        assert!(matches!(
            replay(&[snap.clone(), Record::Truncate { from: 5 }]),
            Err(ReplayError::BelowSnapshot { .. })
        ));
        assert!(matches!(
            replay(&[snap, Record::Snapshot(meta(4, 3))]),
            Err(ReplayError::SnapshotRegressed { .. })
        ));
        let hs = |term| Record::HardState(HardState { term, vote: None });
        assert_eq!(
            replay(&[hs(3), hs(2)]),
            Err(ReplayError::TermRegressed {
                term: 2,
                current: 3
            })
        );
    }

    proptest! {
        #[test]
        fn records_round_trip(records in proptest::collection::vec(record(), 0..20)) {
            let (buf, ends) = encode_all(&records);
            let s = scan(&buf);
            prop_assert_eq!(s.tail, Tail::Clean);
            prop_assert_eq!(s.valid_len, buf.len());
            prop_assert_eq!(&s.records, &records);
            let starts: Vec<usize> = std::iter::once(0).chain(ends.iter().copied()).take(records.len()).collect();
            prop_assert_eq!(s.offsets, starts);
        }

        #[test]
        fn any_cut_yields_a_prefix(records in proptest::collection::vec(record(), 1..8), cut in any::<prop::sample::Index>()) {
            let (buf, ends) = encode_all(&records);
            let cut = cut.index(buf.len() + 1);
            let s = scan(&buf[..cut]);
            let whole = ends.iter().take_while(|e| **e <= cut).count();
            prop_assert_eq!(&s.records[..], &records[..whole]);
            prop_assert_eq!(s.valid_len, if whole == 0 { 0 } else { ends[whole - 1] });
            // A cut that leaves only zero bytes of a header reads as padding: also clean.
            let rest_zero = buf[s.valid_len..cut].iter().all(|b| *b == 0);
            match s.tail {
                Tail::Clean => prop_assert!(rest_zero),
                Tail::Torn { offset, .. } => prop_assert!(offset == s.valid_len && !rest_zero),
            }
        }

        #[test]
        fn any_flipped_byte_yields_a_prefix(
            records in proptest::collection::vec(record(), 1..8),
            pos in any::<prop::sample::Index>(),
            mask in 1u8..,
        ) {
            let (mut buf, ends) = encode_all(&records);
            let pos = pos.index(buf.len());
            buf[pos] ^= mask;
            let s = scan(&buf);
            let hit = ends.iter().take_while(|e| **e <= pos).count();
            prop_assert_eq!(&s.records[..], &records[..hit]);
            let torn_at_valid_len = matches!(s.tail, Tail::Torn { offset, .. } if offset == s.valid_len);
            prop_assert!(torn_at_valid_len);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let s = scan(&bytes);
            prop_assert!(s.valid_len <= bytes.len());
            let _ = Replay::from_records(&s.records);
        }

        #[test]
        fn replay_keeps_log_invariants(records in proptest::collection::vec(plausible_record(), 0..40)) {
            // Apply one by one, skipping rejected records: a rejection must leave
            // the state untouched, and the entries must always be consecutive,
            // above the snapshot, with non-decreasing terms.
            let mut r = Replay::default();
            for rec in &records {
                let before = r.clone();
                if r.apply(rec).is_err() {
                    prop_assert_eq!(&r, &before);
                }
                let first = r.entries.first().map_or(0, |e| e.index);
                prop_assert!(r.entries.is_empty() || first > r.snapshot_index());
                let mut term = r.snapshot.as_ref().map_or(0, |s| s.term);
                for (i, e) in r.entries.iter().enumerate() {
                    prop_assert_eq!(e.index, first + i as u64);
                    prop_assert!(e.term >= term);
                    term = e.term;
                }
            }
            if r.finish().is_ok() {
                prop_assert!(r.entries.first().is_none_or(|e| e.index == r.snapshot_index() + 1));
            }
        }
    }
}
