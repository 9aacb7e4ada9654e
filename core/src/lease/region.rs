//! What a lease covers: a byte region of one file, read or write, held by a
//! session. The conflict rule lives here and nowhere else.

use serde::{Deserialize, Serialize};

use super::SessionId;
use crate::meta::types::Ino;

/// Bytes `[start, end)` of a file. Never empty; the whole file is
/// [`Region::WHOLE`] (`0..u64::MAX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Region {
    start: u64,
    end: u64,
}

impl Region {
    pub const WHOLE: Region = Region {
        start: 0,
        end: u64::MAX,
    };

    /// `None` for an empty region (`start >= end`).
    pub fn new(start: u64, end: u64) -> Option<Region> {
        (start < end).then_some(Region { start, end })
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    /// False only for a region built by a decoder from a bad frame.
    pub fn is_valid(&self) -> bool {
        self.start < self.end
    }

    /// Some byte is in both.
    pub fn overlaps(&self, other: &Region) -> bool {
        debug_assert!(self.is_valid() && other.is_valid());
        self.start < other.end && other.start < self.end
    }

    /// Every byte of `other` is in `self`.
    pub fn contains(&self, other: &Region) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Region::WHOLE {
            write!(f, "whole file")
        } else {
            write!(f, "{}..{}", self.start, self.end)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    Read,
    Write,
}

/// One lease's claim on a file, as far as conflicts are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    pub file: Ino,
    pub region: Region,
    pub mode: Mode,
    pub holder: SessionId,
}

impl Claim {
    /// The conflict rule: same file, overlapping regions, different holders,
    /// and at least one of the two writes.
    pub fn conflicts(&self, other: &Claim) -> bool {
        self.file == other.file
            && self.region.overlaps(&other.region)
            && self.holder != other.holder
            && (self.mode == Mode::Write || other.mode == Mode::Write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: u64, e: u64) -> Region {
        Region::new(s, e).expect("non-empty")
    }

    fn claim(file: u64, region: Region, mode: Mode, holder: SessionId) -> Claim {
        Claim {
            file: Ino(file),
            region,
            mode,
            holder,
        }
    }

    #[test]
    fn empty_regions_do_not_exist() {
        assert!(Region::new(5, 5).is_none());
        assert!(Region::new(6, 5).is_none());
        assert!(r(0, 1).is_valid());
    }

    #[test]
    fn overlap_is_half_open() {
        assert!(r(0, 10).overlaps(&r(9, 20)));
        assert!(!r(0, 10).overlaps(&r(10, 20)));
        assert!(Region::WHOLE.overlaps(&r(u64::MAX - 1, u64::MAX)));
        assert!(Region::WHOLE.contains(&r(3, 4)));
        assert!(!r(3, 4).contains(&r(3, 5)));
    }

    #[test]
    fn conflict_needs_all_four_conditions() {
        let w = claim(1, r(0, 100), Mode::Write, 1);
        assert!(w.conflicts(&claim(1, r(50, 60), Mode::Read, 2)));
        assert!(w.conflicts(&claim(1, r(50, 60), Mode::Write, 2)));
        assert!(
            !w.conflicts(&claim(2, r(50, 60), Mode::Read, 2)),
            "other file"
        );
        assert!(
            !w.conflicts(&claim(1, r(100, 160), Mode::Read, 2)),
            "disjoint"
        );
        assert!(
            !w.conflicts(&claim(1, r(50, 60), Mode::Write, 1)),
            "same holder"
        );
        let rd = claim(1, r(0, 100), Mode::Read, 1);
        assert!(
            !rd.conflicts(&claim(1, r(0, 100), Mode::Read, 2)),
            "two reads"
        );
    }
}
