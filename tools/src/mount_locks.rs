//! POSIX byte-range locks of one inode on a mount, as a plain table:
//! which owners hold which ranges, what conflicts, and what a `F_SETLK`
//! changes. The lease side (each held range backed by a region lease of
//! the mount) is in `mount_fs.rs`; this module only plans.
//!
//! Ranges are half-open `[start, end)`; `end == u64::MAX` is "to the end
//! of the file, whatever it becomes". An owner's ranges never overlap each
//! other: setting a range replaces what the owner held there, and
//! unlocking part of a range splits it (POSIX).

/// One held range of one lock owner, with what backs it (a lease).
#[derive(Debug)]
pub struct HeldLock<L> {
    pub owner: u64,
    pub pid: u32,
    pub start: u64,
    pub end: u64,
    pub write: bool,
    pub backing: Option<L>,
}

/// A range to add, with its owner's pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewRange {
    pub start: u64,
    pub end: u64,
    pub write: bool,
}

/// What one `F_SETLK` does to the owner's ranges: remove these (by index
/// into the table), add these. Empty when nothing changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub remove: Vec<usize>,
    pub add: Vec<NewRange>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }
}

fn overlaps(a_start: u64, a_end: u64, b_start: u64, b_end: u64) -> bool {
    a_start < b_end && b_start < a_end
}

/// The first range of another owner that keeps `owner` from locking
/// `[start, end)` (`write`: exclusively).
pub fn conflict<L>(
    locks: &[HeldLock<L>],
    owner: u64,
    start: u64,
    end: u64,
    write: bool,
) -> Option<&HeldLock<L>> {
    locks
        .iter()
        .find(|l| l.owner != owner && (write || l.write) && overlaps(l.start, l.end, start, end))
}

/// Plans setting `[start, end)` of `owner` to `kind` (`Some(true)` write,
/// `Some(false)` read, `None` unlock): the owner's overlapping ranges go,
/// their parts outside `[start, end)` come back as they were, and the new
/// range is added. A lock already held as asked plans nothing.
pub fn plan<L>(
    locks: &[HeldLock<L>],
    owner: u64,
    start: u64,
    end: u64,
    kind: Option<bool>,
) -> Plan {
    if let Some(write) = kind {
        let held = locks
            .iter()
            .any(|l| l.owner == owner && l.write == write && l.start <= start && end <= l.end);
        if held {
            return Plan::default();
        }
    }
    let mut out = Plan::default();
    for (i, l) in locks.iter().enumerate() {
        if l.owner != owner || !overlaps(l.start, l.end, start, end) {
            continue;
        }
        out.remove.push(i);
        if l.start < start {
            out.add.push(NewRange {
                start: l.start,
                end: start,
                write: l.write,
            });
        }
        if end < l.end {
            out.add.push(NewRange {
                start: end,
                end: l.end,
                write: l.write,
            });
        }
    }
    if let Some(write) = kind {
        out.add.push(NewRange { start, end, write });
    }
    out
}

/// The kernel's inclusive lock end (`OFFSET_MAX` for "to the end of the
/// file") as our exclusive one.
pub fn exclusive_end(end: u64) -> u64 {
    if end >= i64::MAX as u64 {
        u64::MAX
    } else {
        end + 1
    }
}

/// Our exclusive end as the kernel's inclusive one.
pub fn inclusive_end(end: u64) -> u64 {
    if end == u64::MAX {
        i64::MAX as u64
    } else {
        end.saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(owner: u64, start: u64, end: u64, write: bool) -> HeldLock<()> {
        HeldLock {
            owner,
            pid: 1,
            start,
            end,
            write,
            backing: None,
        }
    }

    fn range(start: u64, end: u64, write: bool) -> NewRange {
        NewRange { start, end, write }
    }

    #[test]
    fn readers_share_and_writers_exclude_other_owners_only() {
        let locks = vec![held(1, 0, 10, false), held(2, 20, 30, true)];
        assert!(conflict(&locks, 3, 5, 8, false).is_none());
        assert_eq!(conflict(&locks, 3, 5, 8, true).map(|l| l.owner), Some(1));
        assert_eq!(conflict(&locks, 3, 29, 40, false).map(|l| l.owner), Some(2));
        assert_eq!(conflict(&locks, 2, 0, 100, true).map(|l| l.owner), Some(1));
        assert!(conflict(&locks, 2, 0, 100, false).is_none());
        assert!(conflict(&locks, 1, 0, 10, true).is_none());
        assert!(conflict(&locks, 3, 10, 20, true).is_none());
    }

    #[test]
    fn unlocking_the_middle_splits_a_range() {
        let locks = vec![held(1, 0, 100, true), held(2, 200, 300, true)];
        let p = plan(&locks, 1, 40, 60, None);
        assert_eq!(p.remove, vec![0]);
        assert_eq!(p.add, vec![range(0, 40, true), range(60, 100, true)]);
        let p = plan(&locks, 1, 0, u64::MAX, None);
        assert_eq!(p.remove, vec![0]);
        assert!(p.add.is_empty());
        assert!(plan(&locks, 3, 0, u64::MAX, None).is_empty());
    }

    #[test]
    fn a_new_type_replaces_the_overlap_and_a_held_lock_is_kept() {
        let locks = vec![held(1, 0, 100, false)];
        assert!(plan(&locks, 1, 10, 20, Some(false)).is_empty());
        let p = plan(&locks, 1, 50, 150, Some(true));
        assert_eq!(p.remove, vec![0]);
        assert_eq!(p.add, vec![range(0, 50, false), range(50, 150, true)]);
    }

    #[test]
    fn kernel_ends_are_inclusive() {
        assert_eq!(exclusive_end(9), 10);
        assert_eq!(exclusive_end(i64::MAX as u64), u64::MAX);
        assert_eq!(inclusive_end(u64::MAX), i64::MAX as u64);
        assert_eq!(inclusive_end(10), 9);
    }
}
