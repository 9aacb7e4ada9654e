//! The clients of the namespace workload and the end-of-run check.
//!
//! Clients of a ministry share what they learned: the inode numbers of
//! directories and of anything else answers named. Each operation picks a
//! directory (the root a third of the time), names from four letters (and
//! now and then ".", ".." or ""), a caller (root, or uid 1000 who meets
//! EACCES wherever root chmod-ed a directory shut), and one of mkdir,
//! exclusive or plain create, symlink, unlink, rmdir, rename (sometimes
//! RENAME_NOREPLACE), chmod, truncate, stat, lookup, readdir and readlink.
//! Numbers learned go stale when others remove them, so ENOENT shows up
//! for numbers as well as names.

use std::collections::BTreeMap;

use govfs_core::meta::{
    decode_reply, encode_request, Attr, Credentials, FileType, Found, Ino, MetaOp, MetaReply,
    MetaRequest, Namespace, SetAttr, ROOT,
};
use govfs_core::node::Proposal;
use govfs_core::president::TransferRequest;
use govfs_core::raft::{GroupId, Index, Micros};

use super::model::{FsModel, MetaAnswer};
use crate::checker::Violation;
use crate::rng::Rng;
use crate::workload::{Application, Command, MemberView, Workload};

/// Numbers a ministry's clients remember, newest last.
const KNOWN: usize = 12;
const NAMES: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];
const ODD_NAMES: [&[u8]; 3] = [b".", b"..", b""];
const USER: u32 = 1000;

#[derive(Default)]
struct Known {
    dirs: Vec<u64>,
    any: Vec<u64>,
}

fn remember(list: &mut Vec<u64>, ino: u64) {
    list.retain(|i| *i != ino);
    list.push(ino);
    if list.len() > KNOWN {
        list.remove(0);
    }
}

impl Known {
    fn learn(&mut self, ino: Ino, kind: FileType) {
        if kind == FileType::Dir {
            remember(&mut self.dirs, ino.0);
        }
        remember(&mut self.any, ino.0);
    }
}

/// An acknowledged creation: it must be in the final namespace once,
/// unless a committed operation removed it.
struct Created {
    ministry: GroupId,
    ino: u64,
    index: Index,
    what: String,
}

#[derive(Default)]
pub struct MetaWorkload {
    known: BTreeMap<GroupId, Known>,
    created: Vec<Created>,
    outcomes: BTreeMap<String, u64>,
}

fn op_name(op: &MetaOp) -> &'static str {
    match op {
        MetaOp::GrantInodes { .. } => "grant",
        MetaOp::Mkdir { .. } => "mkdir",
        MetaOp::Create {
            exclusive: true, ..
        } => "create-excl",
        MetaOp::Create { .. } => "create",
        MetaOp::Symlink { .. } => "symlink",
        MetaOp::Unlink { .. } => "unlink",
        MetaOp::Rmdir { .. } => "rmdir",
        MetaOp::Rename { .. } => "rename",
        MetaOp::Setattr { set, .. } if set.size.is_some() => "truncate",
        MetaOp::Setattr { .. } => "chmod",
        MetaOp::Stat { .. } => "stat",
        MetaOp::Lookup { .. } => "lookup",
        MetaOp::Readdir { .. } => "readdir",
        MetaOp::Readlink { .. } => "readlink",
        _ => "other",
    }
}

impl MetaWorkload {
    fn name(rng: &mut Rng) -> Vec<u8> {
        let list: &[&[u8]] = if rng.chance(0.04) { &ODD_NAMES } else { &NAMES };
        rng.pick(list).map_or(b"a".to_vec(), |n| n.to_vec())
    }

    fn dir(rng: &mut Rng, known: &Known) -> Ino {
        if rng.chance(0.33) {
            return ROOT;
        }
        Ino(rng.pick(&known.dirs).copied().unwrap_or(ROOT.0))
    }

    fn ino(rng: &mut Rng, known: &Known) -> Ino {
        if rng.chance(0.1) {
            return ROOT;
        }
        Ino(rng.pick(&known.any).copied().unwrap_or(ROOT.0))
    }
}

impl Workload for MetaWorkload {
    type App = Namespace;
    type Op = MetaRequest;
    type Answer = MetaAnswer;
    type Model = FsModel;

    const APPLICATION: Application = Application::Meta;

    fn new(_seed: u64) -> Self {
        MetaWorkload::default()
    }

    fn command(op: &MetaRequest) -> Vec<u8> {
        encode_request(op)
    }

    fn next_op(
        &mut self,
        rng: &mut Rng,
        _client: u64,
        _seq: u64,
        ministry: GroupId,
        now: Micros,
    ) -> MetaRequest {
        let known = self.known.entry(ministry).or_default();
        let creds = if rng.chance(0.6) {
            Credentials::root()
        } else {
            Credentials::user(USER, USER)
        };
        let mode = |rng: &mut Rng, modes: &[u32]| rng.pick(modes).copied().unwrap_or(0o755);
        let op = match rng.range(0, 100) {
            0..=13 => MetaOp::Mkdir {
                parent: Self::dir(rng, known),
                name: Self::name(rng),
                mode: mode(rng, &[0o755, 0o777, 0o700]),
            },
            14..=29 => MetaOp::Create {
                parent: Self::dir(rng, known),
                name: Self::name(rng),
                mode: mode(rng, &[0o644, 0o666, 0o600]),
                exclusive: rng.chance(0.8),
                layout: None,
            },
            30..=35 => MetaOp::Symlink {
                parent: Self::dir(rng, known),
                name: Self::name(rng),
                target: rng
                    .pick(&[&b"a"[..], b"../b", b"c/d"])
                    .map_or(b"a".to_vec(), |t| t.to_vec()),
            },
            36..=47 => MetaOp::Unlink {
                parent: Self::dir(rng, known),
                name: Self::name(rng),
            },
            48..=57 => MetaOp::Rmdir {
                parent: Self::dir(rng, known),
                name: Self::name(rng),
            },
            58..=69 => MetaOp::Rename {
                parent: Self::dir(rng, known),
                name: Self::name(rng),
                new_parent: Self::dir(rng, known),
                new_name: Self::name(rng),
                noreplace: rng.chance(0.2),
            },
            70..=79 => {
                let set = if rng.chance(0.5) {
                    SetAttr {
                        mode: Some(mode(rng, &[0o755, 0o777, 0o700, 0o644])),
                        ..SetAttr::default()
                    }
                } else {
                    SetAttr {
                        size: Some(rng.range(0, 4096)),
                        ..SetAttr::default()
                    }
                };
                MetaOp::Setattr {
                    ino: Self::ino(rng, known),
                    set,
                }
            }
            80..=85 => MetaOp::Stat {
                ino: Self::ino(rng, known),
            },
            86..=93 => MetaOp::Lookup {
                parent: Self::dir(rng, known),
                name: Self::name(rng),
            },
            94..=97 => MetaOp::Readdir {
                dir: Self::dir(rng, known),
                after: None,
                limit: 16,
            },
            _ => MetaOp::Readlink {
                ino: Self::ino(rng, known),
            },
        };
        MetaRequest {
            op,
            creds,
            // Nanoseconds, as a minister's clock would stamp them.
            now: (now as i64).saturating_mul(1000),
        }
    }

    fn decode_answer(_op: &MetaRequest, index: Index, output: &[u8]) -> Option<MetaAnswer> {
        let result = decode_reply(output).ok()?;
        Some(MetaAnswer { index, result })
    }

    fn decode_applied(_command: &[u8], index: Index, output: &[u8]) -> Option<MetaAnswer> {
        let result = decode_reply(output).ok()?;
        Some(MetaAnswer { index, result })
    }

    fn answer_index(answer: &MetaAnswer) -> Index {
        answer.index
    }

    fn apply(
        model: &mut FsModel,
        index: Index,
        proposal: &Proposal,
    ) -> Result<Option<MetaAnswer>, Violation> {
        model.apply(index, proposal)
    }

    fn acknowledge(&mut self, ministry: GroupId, cmd: &Command<MetaRequest>, answer: &MetaAnswer) {
        let op = &cmd.op.op;
        let outcome = match &answer.result {
            Ok(MetaReply::Created { created: false, .. }) => "existing".to_string(),
            Ok(_) => "ok".to_string(),
            Err(e) => format!("{e:?}"),
        };
        *self
            .outcomes
            .entry(format!("{} {outcome}", op_name(op)))
            .or_default() += 1;
        let known = self.known.entry(ministry).or_default();
        let made = |attr: &Attr| Created {
            ministry,
            ino: attr.ino.0,
            index: answer.index,
            what: format!("{op:?} by client {} seq {}", cmd.client, cmd.seq),
        };
        match (&answer.result, op) {
            (Ok(MetaReply::Attr(a)), MetaOp::Mkdir { .. } | MetaOp::Symlink { .. })
            | (
                Ok(MetaReply::Created {
                    attr: a,
                    created: true,
                }),
                _,
            ) => {
                self.created.push(made(a));
                known.learn(a.ino, a.kind);
            }
            (Ok(MetaReply::Attr(a) | MetaReply::Created { attr: a, .. }), _)
            | (Ok(MetaReply::Found(Found::Local(a))), _) => known.learn(a.ino, a.kind),
            (Ok(MetaReply::Dir(page)), _) => {
                for e in &page.entries {
                    known.learn(e.ino, e.kind);
                }
            }
            _ => {}
        }
    }

    /// Every acknowledged mkdir, create and symlink is in the model's final
    /// tree exactly once, unless a committed operation removed it after
    /// it was made; and every member that applied the whole committed log
    /// holds exactly the model's tree (names, numbers, attributes).
    fn check_end(
        &self,
        models: &BTreeMap<GroupId, &FsModel>,
        committed: &BTreeMap<GroupId, Index>,
        members: &[MemberView<'_, Namespace>],
    ) -> Result<(), Violation> {
        let trees: BTreeMap<GroupId, _> = models.iter().map(|(g, m)| (*g, m.entries())).collect();
        for c in &self.created {
            let model = models
                .get(&c.ministry)
                .ok_or_else(|| format!("ministry {} has no model", c.ministry))?;
            if let Some(at) = model.removed_at(c.ino) {
                if at <= c.index {
                    return Err(format!(
                        "inode {} removed at index {at}, before it was made at {} ({})",
                        c.ino, c.index, c.what
                    ));
                }
                continue;
            }
            let names = trees[&c.ministry]
                .values()
                .filter(|a| a.ino.0 == c.ino)
                .count();
            if names != 1 {
                return Err(format!(
                    "acknowledged {} made inode {} at index {}, which has {names} names in ministry {}'s final tree",
                    c.what, c.ino, c.index, c.ministry
                ));
            }
        }
        for (ministry, tree) in &trees {
            let last = committed.get(ministry).copied().unwrap_or(0);
            let caught_up: Vec<_> = members
                .iter()
                .filter(|m| m.ministry == *ministry && m.applied == last)
                .collect();
            if caught_up.is_empty() {
                return Err(format!(
                    "no live member of ministry {ministry} applied its committed log (to {last}) after the cluster healed"
                ));
            }
            for m in caught_up {
                let held = walk(m.app)?;
                if held != *tree {
                    let diff: Vec<String> = tree
                        .iter()
                        .filter(|(k, v)| held.get(*k) != Some(*v))
                        .map(|(k, v)| format!("model {k:?}: {v:?}, member {:?}", held.get(k)))
                        .chain(
                            held.keys()
                                .filter(|k| !tree.contains_key(*k))
                                .map(|k| format!("member has {k:?}, the model does not")),
                        )
                        .take(4)
                        .collect();
                    return Err(format!(
                        "member {} of ministry {ministry} (applied {last}) holds a namespace other than the model's: {diff:?}",
                        m.member
                    ));
                }
            }
        }
        Ok(())
    }

    /// The namespace workload moves nothing between ministries (yet).
    fn transfer(_split: bool) -> Option<(TransferRequest, u64)> {
        None
    }

    fn outcomes(&self) -> BTreeMap<String, u64> {
        self.outcomes.clone()
    }
}

/// A member's whole tree, read through the namespace's own queries as
/// root: (directory, name) -> attributes, and the root as (0, "/").
fn walk(ns: &Namespace) -> Result<BTreeMap<(u64, Vec<u8>), Attr>, Violation> {
    let root = Credentials::root();
    let mut out = BTreeMap::new();
    let stat = |ino: Ino| ns.stat(ino).map_err(|e| format!("stat {ino:?}: {e}"));
    out.insert((0, b"/".to_vec()), stat(ROOT)?);
    let mut dirs = vec![ROOT];
    while let Some(dir) = dirs.pop() {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = ns
                .readdir(&root, dir, after.as_deref(), 1024)
                .map_err(|e| format!("readdir {dir:?}: {e}"))?;
            for e in &page.entries {
                if e.kind == FileType::Dir {
                    dirs.push(e.ino);
                }
                out.insert((dir.0, e.name.clone()), stat(e.ino)?);
            }
            match (page.more, page.entries.last()) {
                (true, Some(last)) => after = Some(last.name.clone()),
                _ => break,
            }
        }
    }
    Ok(out)
}
