//! The change feed: every applied change, keyed by the log index that made
//! it, so archive and backup tools can ask "what changed under this directory
//! since N" without walking the namespace.
//!
//! Each change keeps the directories above it at change time (nearest
//! first), so a query filters by ancestor in O(depth) per change, and its
//! cost is the number of changes since N, not the size of the namespace.
//! Memory is bounded: the feed keeps the last `cap` changes and answers a
//! query from before that with [`ChangePage::Truncated`].

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::types::Ino;
use crate::raft::Index;

/// Changes the feed keeps by default.
pub const DEFAULT_FEED_CAP: usize = 100_000;
/// Changes one query looks at, matching or not, before it returns a page:
/// bounds the work of a query on a small directory in a busy namespace.
pub const SCAN_MAX: usize = 1 << 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    Create,
    Mkdir,
    Symlink,
    Link,
    Unlink,
    Rmdir,
    /// The entry (parent, name) of `ino` went away by a rename ...
    RenameFrom,
    /// ... and this one appeared, at the same index.
    RenameTo,
    /// A rename replaced this entry's inode (it lost a link).
    Replaced,
    /// Mode, owner or times.
    Setattr,
    /// Size (truncate).
    Truncate,
    Xattr,
    Mount,
    Unmount,
    /// The entry's subtree left for another ministry; a foreign root with
    /// the same number took its place.
    Detach,
    /// A subtree came from another ministry: under (parent, name), or as a
    /// top-level root (`parent == ino`, empty name).
    Attach,
    /// A detached subtree was put back in place of its foreign root.
    Reattach,
    /// An empty top-level root went away (`parent == ino`, empty name).
    DropRoot,
}

/// One change. `parent` and `name` name the entry it touched; for changes
/// made by inode (setattr, xattrs) `parent` is the directory of one of the
/// inode's names and `name` is empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub index: Index,
    pub ino: Ino,
    pub parent: Ino,
    pub name: Box<[u8]>,
    pub kind: ChangeKind,
}

/// The answer to a change-feed query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangePage {
    /// Changes in index order. Every change with an index up to `next` that
    /// matches has been returned: ask again with `since = next`. `more` says
    /// that the page stopped early (limit or scan bound), not that nothing
    /// more will ever come.
    Page {
        changes: Vec<Change>,
        next: Index,
        more: bool,
    },
    /// Changes after `since` are no longer all kept: walk the namespace
    /// (each inode's `meta_seq` says when it last changed), then follow the
    /// feed from any index at or above `resync_from`.
    Truncated { resync_from: Index },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Kept {
    change: Change,
    /// Directories above the change, nearest first, up to the root.
    ancestors: Box<[Ino]>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeFeed {
    kept: VecDeque<Kept>,
    cap: usize,
    /// Highest index some change of which was dropped: queries from below it
    /// are truncated.
    floor: Index,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed::new(DEFAULT_FEED_CAP)
    }
}

impl ChangeFeed {
    pub fn new(cap: usize) -> Self {
        assert!(cap > 0, "a change feed keeps at least one change");
        ChangeFeed {
            kept: VecDeque::new(),
            cap,
            floor: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Highest index of a dropped change (0 if none was dropped).
    pub fn floor(&self) -> Index {
        self.floor
    }

    /// Records a change; `ancestors` are the directories above it, nearest
    /// first. Indexes never go down (the log applies in order).
    pub(crate) fn record(&mut self, change: Change, ancestors: Vec<Ino>) {
        if let Some(last) = self.kept.back() {
            assert!(
                last.change.index <= change.index,
                "change feed out of order"
            );
        }
        assert!(change.index >= self.floor, "change below the feed's floor");
        self.kept.push_back(Kept {
            change,
            ancestors: ancestors.into_boxed_slice(),
        });
        while self.kept.len() > self.cap {
            if let Some(dropped) = self.kept.pop_front() {
                self.floor = self.floor.max(dropped.change.index);
            }
        }
    }

    /// Changes under `dir` with `since < index <= upto`. Pages end at an index
    /// boundary, so resuming from `next` never skips half of one operation.
    pub fn since(&self, dir: Ino, since: Index, upto: Index, limit: u32) -> ChangePage {
        if since < self.floor {
            return ChangePage::Truncated {
                resync_from: self.floor,
            };
        }
        let limit = limit.max(1) as usize;
        let start = self.kept.partition_point(|k| k.change.index <= since);
        let mut changes = Vec::new();
        // Every matching change up to `next` has been returned.
        let mut next = since;
        let mut more = false;
        for (scanned, kept) in self.kept.range(start..).enumerate() {
            let index = kept.change.index;
            if index > upto {
                break;
            }
            if index != next && (changes.len() >= limit || scanned >= SCAN_MAX) {
                more = true;
                break;
            }
            next = index;
            if kept.change.ino == dir || kept.ancestors.contains(&dir) {
                changes.push(kept.change.clone());
            }
        }
        if !more {
            next = next.max(upto);
        }
        ChangePage::Page {
            changes,
            next,
            more,
        }
    }

    /// Heap bytes held (for the memory estimate).
    pub fn heap_bytes(&self) -> usize {
        self.kept
            .iter()
            .map(|k| {
                std::mem::size_of::<Kept>()
                    + k.change.name.len()
                    + std::mem::size_of_val(&*k.ancestors)
            })
            .sum()
    }

    /// Checks what a decoded feed must hold: at most `cap` changes, in index
    /// order, none at or below a fully dropped index.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.cap == 0 || self.kept.len() > self.cap {
            return Err("change feed over its cap");
        }
        let mut last = self.floor.max(1);
        for k in &self.kept {
            if k.change.index < last {
                return Err("change feed out of order");
            }
            last = k.change.index;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(index: Index, ino: u64, parent: u64) -> Change {
        Change {
            index,
            ino: Ino(ino),
            parent: Ino(parent),
            name: Box::from(&b"x"[..]),
            kind: ChangeKind::Create,
        }
    }

    fn page(p: ChangePage) -> (Vec<Index>, Index, bool) {
        match p {
            ChangePage::Page {
                changes,
                next,
                more,
            } => (changes.iter().map(|c| c.index).collect(), next, more),
            ChangePage::Truncated { .. } => panic!("truncated"),
        }
    }

    #[test]
    fn filters_by_ancestor_and_caps_at_upto() {
        let mut feed = ChangeFeed::new(10);
        feed.record(change(1, 10, 1), vec![Ino(1)]);
        feed.record(change(2, 11, 10), vec![Ino(10), Ino(1)]);
        feed.record(change(3, 12, 1), vec![Ino(1)]);
        assert_eq!(
            page(feed.since(Ino(1), 0, 3, 100)),
            (vec![1, 2, 3], 3, false)
        );
        assert_eq!(page(feed.since(Ino(10), 0, 3, 100)), (vec![1, 2], 3, false));
        assert_eq!(page(feed.since(Ino(1), 0, 2, 100)), (vec![1, 2], 2, false));
        assert_eq!(page(feed.since(Ino(1), 2, 9, 100)), (vec![3], 9, false));
        assert_eq!(page(feed.since(Ino(1), 3, 9, 100)), (vec![], 9, false));
    }

    #[test]
    fn pages_end_at_index_boundaries() {
        let mut feed = ChangeFeed::new(10);
        feed.record(change(1, 10, 1), vec![Ino(1)]);
        feed.record(change(2, 11, 1), vec![Ino(1)]);
        feed.record(change(2, 11, 1), vec![Ino(1)]);
        feed.record(change(3, 12, 1), vec![Ino(1)]);
        assert_eq!(page(feed.since(Ino(1), 0, 3, 2)), (vec![1, 2, 2], 2, true));
        assert_eq!(page(feed.since(Ino(1), 2, 3, 2)), (vec![3], 3, false));
    }

    #[test]
    fn drops_the_oldest_and_reports_truncation() {
        let mut feed = ChangeFeed::new(2);
        for i in 1..=4 {
            feed.record(change(i, 10 + i, 1), vec![Ino(1)]);
        }
        assert_eq!(feed.len(), 2);
        assert_eq!(feed.floor(), 2);
        assert_eq!(
            feed.since(Ino(1), 1, 4, 10),
            ChangePage::Truncated { resync_from: 2 }
        );
        assert_eq!(page(feed.since(Ino(1), 2, 4, 10)), (vec![3, 4], 4, false));
        assert_eq!(feed.validate(), Ok(()));
    }
}
