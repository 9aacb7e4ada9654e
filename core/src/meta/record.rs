//! Recording applied changes in the change feed, with the directories above
//! each change at the time it was made.

use std::collections::BTreeSet;

use super::changes::{Change, ChangeKind};
use super::namespace::{Ctx, Namespace};
use super::types::{FileType, Ino};

impl Namespace {
    /// Records a change to the entry (parent, name).
    pub(crate) fn record(
        &mut self,
        ctx: &Ctx,
        ino: Ino,
        parent: Ino,
        name: &[u8],
        kind: ChangeKind,
    ) {
        let ancestors = self.ancestors(parent);
        self.feed.record(
            Change {
                index: ctx.index,
                ino,
                parent,
                name: Box::from(name),
                kind,
            },
            ancestors,
        );
    }

    /// Records a change made by inode number: under every directory the
    /// inode has a name in (a directory matches itself by `ino`).
    pub(crate) fn record_inode(&mut self, ctx: &Ctx, ino: Ino, kind: ChangeKind) {
        let inode = *self.inodes.get(ino).expect("changed inode exists");
        let parents = if inode.kind == FileType::Dir {
            vec![inode.parent]
        } else {
            self.parents(ino, &inode)
        };
        // A file may have up to LINK_MAX directories: dedup in a set.
        let mut seen = BTreeSet::new();
        let mut ancestors: Vec<Ino> = Vec::new();
        for p in &parents {
            for a in self.ancestors(*p) {
                if seen.insert(a) {
                    ancestors.push(a);
                }
            }
        }
        self.feed.record(
            Change {
                index: ctx.index,
                ino,
                parent: inode.parent,
                name: Box::default(),
                kind,
            },
            ancestors,
        );
    }
}
