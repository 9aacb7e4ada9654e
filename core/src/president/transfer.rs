//! Moving part of the namespace between ministries through the president's
//! log: splitting a subtree off to a new ministry, renaming across
//! ministries, and removing a subtree root another ministry holds.
//!
//! A transfer is a short program of steps, each one command a ministry
//! applies through its own log: detach the entry from the source (which
//! keeps an image of it), attach the image in the target, drop the source's
//! foreign entry or image. The map records which step a transfer is at; the
//! president's driver sends the step's command to the ministry's minister and
//! records the next step once the ministry answers. Every step is idempotent
//! (the ministry's session table answers a resent step with its first
//! answer, and the namespace keys its images by transfer id), so a crash or a
//! new president at any point simply sends the current step again: no
//! half-done state survives. A failed attach undoes the detach.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::raft::GroupId;

/// What a transfer does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferKind {
    /// Give the subtree at `path` to a new ministry; the source keeps a
    /// foreign root in its place, so the path still resolves.
    Split,
    /// Move the entry to `new_name` under `new_parent` of ministry `to`.
    Rename {
        to: GroupId,
        new_parent: u64,
        new_name: Vec<u8>,
    },
    /// Remove the empty subtree root that ministry `to` holds for the
    /// source's foreign entry, then the entry itself (`rmdir` of a
    /// directory whose tree spans ministries, once its contents are gone).
    RemoveRoot { to: GroupId },
}

/// What a client asks the president to move.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRequest {
    pub kind: TransferKind,
    /// The ministry the entry is in now.
    pub from: GroupId,
    /// The entry: `name` in directory `parent` of `from`, inode `ino`.
    pub parent: u64,
    pub name: Vec<u8>,
    pub ino: u64,
    /// Its absolute path, for the subtree map and for people.
    pub path: Vec<u8>,
    /// The requester's clock (ns since the epoch), stamped into the changes
    /// the steps make, as a client's own changes carry its clock.
    pub now: i64,
}

/// One step of a transfer: a command for one ministry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Step {
    /// Form the target ministry (a split's new ministry): president only.
    Form,
    /// Source: take the entry out, keep its image, leave a foreign root.
    Detach,
    /// Target: add the image (a new root, or under a new name).
    Attach,
    /// Source: remove the foreign entry left by the detach (renames).
    Unmount,
    /// Source: drop the kept image.
    Forget,
    /// Source: put the image back where it was (the attach failed).
    Undo,
    /// Target: remove the empty subtree root.
    Drop,
}

impl Step {
    /// Whether the source ministry (else the target) runs the step.
    pub fn at_source(self) -> bool {
        matches!(
            self,
            Step::Detach | Step::Unmount | Step::Forget | Step::Undo
        )
    }

    /// The request id of the step in the ministry's session table, under
    /// the transfer's own client id: increasing along every program.
    pub fn seq(self) -> u64 {
        match self {
            Step::Form => 0,
            Step::Detach | Step::Drop => 1,
            Step::Attach => 2,
            Step::Unmount | Step::Undo => 3,
            Step::Forget => 4,
        }
    }
}

/// The session-table client id of transfer `id`'s steps: the top bit marks
/// the president, so no client session can collide with it.
pub fn transfer_client(id: u64) -> u64 {
    (1 << 63) | id
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub id: u64,
    pub request: TransferRequest,
    /// The target ministry, once known (a split forms one).
    pub to: Option<GroupId>,
    pub step: Step,
    /// Why it failed, once a step failed (it then finishes after undoing).
    pub failure: Option<String>,
}

impl Transfer {
    /// The ministry that runs the current step.
    pub fn ministry(&self) -> Option<GroupId> {
        if self.step.at_source() {
            Some(self.request.from)
        } else {
            self.to
        }
    }

    /// The step after `done` succeeded; `None` when the transfer is complete.
    pub fn next_after(&self, done: Step) -> Option<Step> {
        match (&self.request.kind, done) {
            (TransferKind::Split, Step::Form) => Some(Step::Detach),
            (_, Step::Detach) => Some(Step::Attach),
            (TransferKind::Split, Step::Attach) => Some(Step::Forget),
            (TransferKind::Rename { .. }, Step::Attach) => Some(Step::Unmount),
            (TransferKind::Rename { .. }, Step::Unmount) => Some(Step::Forget),
            (TransferKind::RemoveRoot { .. }, Step::Drop) => Some(Step::Unmount),
            (TransferKind::RemoveRoot { .. }, Step::Unmount) => None,
            (_, Step::Forget) | (_, Step::Undo) => None,
            (kind, step) => {
                debug_assert!(false, "{step:?} is not a step of {kind:?}");
                None
            }
        }
    }

    /// The step after `failed` failed; `None` when nothing needs undoing.
    pub fn undo_after(&self, failed: Step) -> Option<Step> {
        match failed {
            Step::Attach => Some(Step::Undo),
            _ => None,
        }
    }
}

/// The first step of a new transfer.
pub fn first_step(kind: &TransferKind) -> Step {
    match kind {
        TransferKind::Split => Step::Form,
        TransferKind::Rename { .. } => Step::Detach,
        TransferKind::RemoveRoot { .. } => Step::Drop,
    }
}

/// A subtree a split gave to another ministry: clients route paths under
/// `path` straight to `ministry`, starting at inode `root`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subtree {
    pub ministry: GroupId,
    pub root: u64,
}

/// How a finished transfer ended, kept for clients that wait on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub request: TransferRequest,
    pub to: Option<GroupId>,
    pub failure: Option<String>,
}

/// Finished transfers the map remembers (the oldest are forgotten).
pub const FINISHED_KEPT: usize = 256;

/// The transfers part of the cluster map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfers {
    pub next_id: u64,
    pub active: BTreeMap<u64, Transfer>,
    pub finished: BTreeMap<u64, Finished>,
    /// Split subtrees by path.
    pub subtrees: BTreeMap<Vec<u8>, Subtree>,
}

impl Transfers {
    /// The subtree that holds `path` (longest prefix at a component boundary).
    pub fn subtree_of(&self, path: &[u8]) -> Option<(&[u8], &Subtree)> {
        self.subtrees
            .iter()
            .filter(|(p, _)| {
                path.starts_with(p) && (path.len() == p.len() || path.get(p.len()) == Some(&b'/'))
            })
            .max_by_key(|(p, _)| p.len())
            .map(|(p, s)| (p.as_slice(), s))
    }

    pub(crate) fn begin(&mut self, request: TransferRequest) -> Result<u64, &'static str> {
        if request.name.is_empty() || request.path.is_empty() {
            return Err("a transfer names an entry");
        }
        let busy = self.active.values().any(|t| {
            let r = &t.request;
            (r.from, r.parent, &r.name) == (request.from, request.parent, &request.name)
                || r.ino == request.ino
        });
        if busy {
            return Err("that entry is already being moved");
        }
        if matches!(request.kind, TransferKind::Split) && self.subtrees.contains_key(&request.path)
        {
            return Err("that path is already a subtree of its own");
        }
        let id = self.next_id;
        self.next_id += 1;
        let to = match &request.kind {
            TransferKind::Split => None,
            TransferKind::Rename { to, .. } | TransferKind::RemoveRoot { to } => Some(*to),
        };
        let step = first_step(&request.kind);
        self.active.insert(
            id,
            Transfer {
                id,
                request,
                to,
                step,
                failure: None,
            },
        );
        Ok(id)
    }

    /// Record that `done` finished (`failure`: it failed) and move on.
    pub(crate) fn advance(
        &mut self,
        id: u64,
        done: Step,
        failure: Option<String>,
    ) -> Result<Option<Step>, &'static str> {
        let Some(t) = self.active.get_mut(&id) else {
            return Err("no such transfer");
        };
        if t.step != done {
            return Err("stale transfer step");
        }
        let next = match &failure {
            None => t.next_after(done),
            Some(_) => t.undo_after(done),
        };
        if failure.is_some() {
            t.failure = failure;
        }
        if done == Step::Attach && t.failure.is_none() {
            if let (TransferKind::Split, Some(to)) = (&t.request.kind, t.to) {
                let sub = Subtree {
                    ministry: to,
                    root: t.request.ino,
                };
                self.subtrees.insert(t.request.path.clone(), sub);
            }
        }
        if done == Step::Unmount && t.failure.is_none() {
            // The entry left its source: a subtree recorded at that path is gone.
            if !matches!(t.request.kind, TransferKind::Split) {
                self.subtrees.remove(&t.request.path);
            }
        }
        match next {
            Some(step) => t.step = step,
            None => {
                let t = self.active.remove(&id).expect("found above");
                self.finished.insert(
                    id,
                    Finished {
                        request: t.request,
                        to: t.to,
                        failure: t.failure,
                    },
                );
                while self.finished.len() > FINISHED_KEPT {
                    self.finished.pop_first();
                }
            }
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: TransferKind) -> TransferRequest {
        TransferRequest {
            kind,
            from: 1,
            parent: 1,
            name: b"a".to_vec(),
            ino: 7,
            path: b"/a".to_vec(),
            now: 0,
        }
    }

    #[test]
    fn a_split_runs_its_program_and_records_the_subtree() {
        let mut t = Transfers::default();
        let id = t.begin(request(TransferKind::Split)).unwrap();
        assert_eq!(t.active[&id].step, Step::Form);
        // A second transfer of the same entry is refused while this one runs.
        assert!(t.begin(request(TransferKind::Split)).is_err());
        t.active.get_mut(&id).unwrap().to = Some(5);
        assert_eq!(t.advance(id, Step::Form, None), Ok(Some(Step::Detach)));
        // A stale report of an earlier step changes nothing.
        assert!(t.advance(id, Step::Form, None).is_err());
        assert_eq!(t.advance(id, Step::Detach, None), Ok(Some(Step::Attach)));
        assert_eq!(t.advance(id, Step::Attach, None), Ok(Some(Step::Forget)));
        assert_eq!(
            t.subtree_of(b"/a/b/c")
                .map(|(p, s)| (p.to_vec(), s.ministry)),
            Some((b"/a".to_vec(), 5))
        );
        assert!(t.subtree_of(b"/ab").is_none());
        assert_eq!(t.advance(id, Step::Forget, None), Ok(None));
        assert!(t.active.is_empty());
        assert_eq!(t.finished[&id].failure, None);
        assert!(
            t.begin(request(TransferKind::Split)).is_err(),
            "already split"
        );
    }

    #[test]
    fn a_failed_attach_is_undone_and_remembered() {
        let mut t = Transfers::default();
        let kind = TransferKind::Rename {
            to: 2,
            new_parent: 9,
            new_name: b"b".to_vec(),
        };
        let id = t.begin(request(kind)).unwrap();
        assert_eq!(t.active[&id].step, Step::Detach);
        assert_eq!(t.active[&id].ministry(), Some(1));
        assert_eq!(t.advance(id, Step::Detach, None), Ok(Some(Step::Attach)));
        assert_eq!(t.active[&id].ministry(), Some(2));
        let failed = Some("EEXIST".to_string());
        assert_eq!(
            t.advance(id, Step::Attach, failed.clone()),
            Ok(Some(Step::Undo))
        );
        assert_eq!(t.advance(id, Step::Undo, None), Ok(None));
        assert_eq!(t.finished[&id].failure, failed);
        assert!(t.subtrees.is_empty());
    }

    #[test]
    fn removing_a_root_drops_then_unmounts() {
        let mut t = Transfers::default();
        let id = t
            .begin(request(TransferKind::RemoveRoot { to: 3 }))
            .unwrap();
        assert_eq!(t.active[&id].step, Step::Drop);
        assert_eq!(t.active[&id].ministry(), Some(3));
        assert_eq!(t.advance(id, Step::Drop, None), Ok(Some(Step::Unmount)));
        assert_eq!(t.advance(id, Step::Unmount, None), Ok(None));
        // A failed drop (not empty) finishes with nothing to undo.
        let id = t
            .begin(request(TransferKind::RemoveRoot { to: 3 }))
            .unwrap();
        assert_eq!(
            t.advance(id, Step::Drop, Some("ENOTEMPTY".into())),
            Ok(None)
        );
        assert_eq!(t.finished[&id].failure.as_deref(), Some("ENOTEMPTY"));
    }

    #[test]
    fn step_ids_grow_along_every_program() {
        for kind in [
            TransferKind::Split,
            TransferKind::Rename {
                to: 2,
                new_parent: 1,
                new_name: b"x".to_vec(),
            },
            TransferKind::RemoveRoot { to: 2 },
        ] {
            let mut t = Transfer {
                id: 0,
                request: request(kind),
                to: Some(2),
                step: Step::Form,
                failure: None,
            };
            t.step = first_step(&t.request.kind);
            let mut last = 0;
            let mut at = Some(t.step);
            while let Some(step) = at {
                // Per ministry, each later step has a higher id than the earlier.
                if step != Step::Form {
                    assert!(step.seq() > last || !step.at_source(), "{step:?}");
                    if step.at_source() {
                        last = step.seq();
                    }
                }
                at = t.next_after(step);
            }
        }
    }
}
