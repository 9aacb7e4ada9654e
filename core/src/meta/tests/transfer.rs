//! Moving subtrees between ministries: two namespaces (a source and a
//! target), each driven through `App::apply` with the invariants checked
//! after every operation (`Fx::run`).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// The target ministry's id and first inode number.
const TARGET: MinistryId = 2;
const TARGET_START: u64 = 1 << 40;
/// A third ministry, mounted inside the moved subtree.
const ELSEWHERE: ForeignRoot = ForeignRoot {
    ino: Ino(1 << 50),
    ministry: 9,
};

/// A ministry whose inode numbers start at `start`.
fn ministry(start: u64) -> Fx {
    let mut fx = Fx {
        ns: Namespace::default(),
        index: 0,
        now: 1_000,
    };
    fx.ok(MetaOp::GrantInodes {
        start,
        count: 10_000,
    });
    fx
}

fn detach_op(transfer: u64, parent: Ino, name: &str) -> MetaOp {
    MetaOp::Detach {
        transfer,
        parent,
        name: n(name),
        to: TARGET,
    }
}

fn attach_op(transfer: u64, at: Option<(Ino, &str)>, image: &SubtreeImage) -> MetaOp {
    MetaOp::Attach {
        transfer,
        parent: at.map(|(p, name)| (p, n(name))),
        image: image.clone(),
    }
}

fn detach(fx: &mut Fx, transfer: u64, parent: Ino, name: &str) -> SubtreeImage {
    match fx.ok(detach_op(transfer, parent, name)) {
        MetaReply::Detached(image) => image,
        other => panic!("detach answered {other:?}"),
    }
}

/// What a path leads to, with what travels with an inode.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Local {
        attr: Attr,
        target: Option<Vec<u8>>,
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    Foreign(ForeignRoot),
}

fn seen(ns: &Namespace, ino: Ino) -> Seen {
    match ns.stat(ino) {
        Ok(attr) => Seen::Local {
            attr,
            target: ns.readlink(ino).ok(),
            xattrs: ns
                .listxattr(&root(), ino)
                .expect("listxattr")
                .into_iter()
                .map(|name| {
                    let value = ns.getxattr(&root(), ino, &name).expect("getxattr");
                    (name, value)
                })
                .collect(),
        },
        Err(e) => {
            assert_eq!(e, Errno::EREMOTE);
            Seen::Foreign(ForeignRoot {
                ino,
                ministry: ns.foreign[&ino].ministry,
            })
        }
    }
}

/// Every path below `start` ("" is `start` itself), by readdir, not
/// following symlinks or foreign roots.
fn walk(ns: &Namespace, start: Ino) -> BTreeMap<Vec<u8>, Seen> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![(Vec::new(), start)];
    out.insert(Vec::new(), seen(ns, start));
    while let Some((path, dir)) = dirs.pop() {
        let page = ns.readdir(&root(), dir, None, 1024).expect("readdir");
        assert!(!page.more);
        for e in page.entries {
            let mut p = path.clone();
            p.push(b'/');
            p.extend_from_slice(&e.name);
            if e.kind == FileType::Dir && e.foreign.is_none() {
                dirs.push((p.clone(), e.ino));
            }
            out.insert(p, seen(ns, e.ino));
        }
    }
    out
}

/// Resolves an absolute path through `source` and, past a foreign root
/// naming the target, through `target`: at most one redirect.
fn resolve(source: &Namespace, target: &Namespace, path: &[u8]) -> MetaResult<Seen> {
    let p = if path.is_empty() { b"/" as &[u8] } else { path };
    match source.lookup_path(&root(), p, false)? {
        Found::Local(a) => Ok(seen(source, a.ino)),
        Found::Foreign { root: r, rest } if r.ministry == TARGET => {
            let rest = if rest.is_empty() { n("/") } else { rest };
            match target.lookup_path_at(&root(), r.ino, &rest, false)? {
                Found::Local(a) => Ok(seen(target, a.ino)),
                Found::Foreign { root, .. } => Ok(Seen::Foreign(root)),
            }
        }
        Found::Foreign { root, .. } => Ok(Seen::Foreign(root)),
    }
}

/// /a/b with files, a hard link inside, a symlink, xattrs, a subdirectory
/// and another ministry's subtree; /a/keep stays behind.
fn populated() -> (Fx, Ino, Ino) {
    let mut fx = ministry(100);
    let a = fx.mkdir(ROOT, "a");
    fx.mkdir(a, "keep");
    let b = fx.mkdir(a, "b");
    let f = fx.create(b, "f");
    fx.ok(MetaOp::Setattr {
        ino: f,
        set: SetAttr {
            size: Some(77),
            mode: Some(0o640),
            uid: Some(ALICE),
            ..SetAttr::default()
        },
    });
    fx.ok(MetaOp::SetXattr {
        ino: f,
        name: n("user.k"),
        value: n("v"),
        how: XattrHow::Set,
    });
    let c = fx.mkdir(b, "c");
    fx.ok(MetaOp::SetXattr {
        ino: c,
        name: n("trusted.t"),
        value: n("w"),
        how: XattrHow::Set,
    });
    let g = fx.create(c, "g");
    fx.ok(MetaOp::Link {
        ino: g,
        new_parent: b,
        new_name: n("g2"),
    });
    fx.ok(MetaOp::Symlink {
        parent: b,
        name: n("s"),
        target: n("c/g"),
    });
    fx.ok(MetaOp::Mount {
        parent: c,
        name: n("m"),
        root: ELSEWHERE,
    });
    (fx, a, b)
}

#[test]
fn split_moves_a_populated_subtree_to_a_new_root() {
    let (mut src, a, b) = populated();
    let mut dst = ministry(TARGET_START);
    let before = walk(&src.ns, ROOT);
    let moved = walk(&src.ns, b);
    let inodes = src.ns.statfs().inodes;

    let image = detach(&mut src, 1, a, "b");
    assert_eq!((image.root(), image.kind()), (b, FileType::Dir));
    assert_eq!(image.inode_count(), 5);
    assert_eq!(src.ns.statfs().inodes, inodes - 5);
    dst.ok(attach_op(1, None, &image));
    src.ok(MetaOp::ForgetExport { transfer: 1 });
    assert!(src.ns.exports.is_empty());

    // The source redirects, once, and keeps the entry's number.
    let redirect = ForeignRoot {
        ino: b,
        ministry: TARGET,
    };
    assert_eq!(
        src.ns.lookup_path(&root(), b"/a/b/c/g", false),
        Ok(Found::Foreign {
            root: redirect,
            rest: n("/c/g")
        })
    );
    let page = src.ns.readdir(&root(), a, None, 10).expect("readdir");
    let entry = page.entries.iter().find(|e| e.name == b"b").expect("b");
    assert_eq!((entry.kind, entry.foreign), (FileType::Dir, Some(TARGET)));
    // The target holds the subtree as it was: numbers, attributes, links,
    // targets, xattrs and the third ministry's root.
    assert_eq!(walk(&dst.ns, b), moved);
    for (path, was) in &before {
        if path.as_slice() != b"/a" {
            assert_eq!(
                resolve(&src.ns, &dst.ns, path).as_ref(),
                Ok(was),
                "{path:?}"
            );
        }
    }
    assert_eq!(
        dst.ns.lookup_path_at(&root(), b, b"/c/m/x", false),
        Ok(Found::Foreign {
            root: ELSEWHERE,
            rest: n("/x")
        })
    );
    let op = MetaOp::LookupPathAt {
        start: b,
        path: n("/s"),
        follow: true,
    };
    let g = dst.ns.lookup_path_at(&root(), b, b"/c/g", false);
    assert_eq!(dst.ok(op), MetaReply::Found(g.expect("g")));
    // ".." stops at the attached root.
    assert_eq!(
        dst.ns.lookup_path_at(&root(), b, b"/../..", false),
        Ok(Found::Local(dst.stat(b)))
    );
    // The target works in it with its own numbers; the moved ones stay.
    let h = dst.create(b, "h");
    assert!(h.0 >= TARGET_START);
    dst.ok(MetaOp::Unlink {
        parent: b,
        name: n("g2"),
    });
    // Both change feeds show the move.
    let kinds = |fx: &Fx, dir| match fx.ns.changes(&root(), dir, 0, fx.index, 100) {
        Ok(ChangePage::Page { changes, .. }) => changes.iter().map(|c| c.kind).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert!(kinds(&src, a).contains(&ChangeKind::Detach));
    assert_eq!(kinds(&dst, b)[0], ChangeKind::Attach);
    // Snapshots carry the attached root.
    let back = Namespace::restore(&dst.ns.snapshot()).expect("restores");
    assert_eq!(walk(&back, b), walk(&dst.ns, b));
}

#[test]
fn every_step_twice_is_once() {
    let (mut src, a, _) = populated();
    let mut dst = ministry(TARGET_START);
    let image = detach(&mut src, 1, a, "b");
    let after = src.ns.snapshot();
    assert_eq!(detach(&mut src, 1, a, "b"), image);
    assert!(src.ns.snapshot() == after);
    // The same id with other arguments is a caller's bug.
    src.fails(root(), detach_op(1, a, "keep"), Errno::EINVAL);

    dst.ok(attach_op(1, None, &image));
    let after = dst.ns.snapshot();
    assert_eq!(dst.ok(attach_op(1, None, &image)), MetaReply::Done);
    assert!(dst.ns.snapshot() == after);

    for op in [
        MetaOp::UnmountExport { transfer: 1 },
        MetaOp::ForgetExport { transfer: 1 },
    ] {
        src.ok(op.clone());
        let after = src.ns.snapshot();
        assert_eq!(src.ok(op), MetaReply::Done);
        assert!(src.ns.snapshot() == after);
    }
    // Past the forget, the detach cannot be replayed or undone.
    src.fails(root(), detach_op(1, a, "b"), Errno::EINVAL);
    src.fails(root(), MetaOp::Reattach { transfer: 1 }, Errno::EINVAL);
}

/// One step of a transfer program: which side runs it.
#[derive(Clone)]
enum Step {
    Source(MetaOp),
    Target(MetaOp),
}

/// Runs `steps` (the attach's image filled in from the detach's answer)
/// straight, and again with both ministries restored from snapshots and
/// the last step resent at every point: the same final states.
fn crash_anywhere(src: Fx, dst: Fx, steps: &[Step]) {
    let run = |src: &mut Fx, dst: &mut Fx, image: &mut Option<SubtreeImage>, step: &Step| {
        let step = fill(step, image.as_ref());
        let reply = match &step {
            Step::Source(op) => src.ok(op.clone()),
            Step::Target(op) => dst.ok(op.clone()),
        };
        if let MetaReply::Detached(i) = reply {
            *image = Some(i);
        }
    };
    let (mut s, mut d, mut image) = (clone(&src), clone(&dst), None);
    for step in steps {
        run(&mut s, &mut d, &mut image, step);
    }
    let want = (s.ns.snapshot(), d.ns.snapshot());
    for cut in 1..=steps.len() {
        let (mut s, mut d, mut image) = (clone(&src), clone(&dst), None);
        for step in &steps[..cut] {
            run(&mut s, &mut d, &mut image, step);
        }
        // Crash: both restart from their snapshots; the last step is
        // resent (at a later index) and must change nothing, so the run
        // goes on at the indexes it would have had.
        let (mut s, mut d) = (clone(&s), clone(&d));
        let clocks = (s.index, s.now, d.index, d.now);
        let before = (s.ns.snapshot(), d.ns.snapshot());
        run(&mut s, &mut d, &mut image, &steps[cut - 1]);
        assert!((s.ns.snapshot(), d.ns.snapshot()) == before, "step {cut}");
        (s.index, s.now, d.index, d.now) = clocks;
        for step in &steps[cut..] {
            run(&mut s, &mut d, &mut image, step);
        }
        assert!((s.ns.snapshot(), d.ns.snapshot()) == want, "cut at {cut}");
    }
}

/// A namespace through its snapshot, at the same index and time.
fn clone(fx: &Fx) -> Fx {
    Fx {
        ns: Namespace::restore(&fx.ns.snapshot()).expect("restores"),
        index: fx.index,
        now: fx.now,
    }
}

fn fill(step: &Step, image: Option<&SubtreeImage>) -> Step {
    match step {
        Step::Target(MetaOp::Attach {
            transfer, parent, ..
        }) => Step::Target(MetaOp::Attach {
            transfer: *transfer,
            parent: parent.clone(),
            image: image.expect("detached first").clone(),
        }),
        other => other.clone(),
    }
}

/// An attach whose image `crash_anywhere` fills in.
fn attach_later(transfer: u64, at: Option<(Ino, &str)>) -> MetaOp {
    let placeholder = SubtreeImage {
        root: Ino(0),
        inodes: Vec::new(),
        entries: Vec::new(),
        extra_links: Vec::new(),
        symlinks: Vec::new(),
        xattrs: Vec::new(),
        chunks: Vec::new(),
        foreign: Vec::new(),
    };
    attach_op(transfer, at, &placeholder)
}

#[test]
fn crash_between_any_two_steps_of_a_split_or_rename() {
    let (src, a, _) = populated();
    let dst = ministry(TARGET_START);
    let split = [
        Step::Source(detach_op(1, a, "b")),
        Step::Target(attach_later(1, None)),
        Step::Source(MetaOp::ForgetExport { transfer: 1 }),
    ];
    crash_anywhere(clone(&src), clone(&dst), &split);
    let rename = [
        Step::Source(detach_op(2, a, "b")),
        Step::Target(attach_later(2, Some((ROOT, "b2")))),
        Step::Source(MetaOp::UnmountExport { transfer: 2 }),
        Step::Source(MetaOp::ForgetExport { transfer: 2 }),
    ];
    crash_anywhere(clone(&src), clone(&dst), &rename);
    let undo = [
        Step::Source(detach_op(3, a, "b")),
        Step::Source(MetaOp::Reattach { transfer: 3 }),
        Step::Source(MetaOp::ForgetExport { transfer: 3 }),
    ];
    crash_anywhere(src, dst, &undo);
}

#[test]
fn rename_across_ministries_moves_a_file_and_a_directory() {
    let (mut src, _, b) = populated();
    let mut dst = ministry(TARGET_START);
    let x = dst.mkdir(ROOT, "x");
    let f = src.lookup(b, "f").expect("f");
    let f_was = seen(&src.ns, f);
    let c = src.lookup(b, "c").expect("c");
    // g's second name would reach out of c (EXDEV).
    src.ok(MetaOp::Unlink {
        parent: b,
        name: n("g2"),
    });
    let c_tree = walk(&src.ns, c);

    // A file: the foreign root left behind is a file too.
    let image = detach(&mut src, 1, b, "f");
    assert_eq!((image.root(), image.kind()), (f, FileType::File));
    let page = src.ns.readdir(&root(), b, None, 10).expect("readdir");
    let entry = page.entries.iter().find(|e| e.name == b"f").expect("f");
    assert_eq!((entry.kind, entry.foreign), (FileType::File, Some(TARGET)));
    dst.ok(attach_op(1, Some((x, "renamed")), &image));
    src.ok(MetaOp::UnmountExport { transfer: 1 });
    src.ok(MetaOp::ForgetExport { transfer: 1 });
    assert_eq!(src.lookup(b, "f"), Err(Errno::ENOENT));
    assert_eq!(dst.lookup(x, "renamed"), Ok(f));
    assert_eq!(seen(&dst.ns, f), f_was);
    assert_eq!(dst.stat(x).nlink, 2);

    // A directory, its foreign root removed by a plain unmount.
    let b_links = src.stat(b).nlink;
    let image = detach(&mut src, 2, b, "c");
    assert_eq!(src.stat(b).nlink, b_links);
    dst.ok(attach_op(2, Some((x, "c2")), &image));
    src.ok(MetaOp::Unmount {
        parent: b,
        name: n("c"),
    });
    assert!(!src.ns.exports[&2].mounted);
    src.ok(MetaOp::UnmountExport { transfer: 2 });
    src.ok(MetaOp::ForgetExport { transfer: 2 });
    assert_eq!(src.stat(b).nlink, b_links - 1);
    assert_eq!(dst.stat(x).nlink, 3);
    assert_eq!(walk(&dst.ns, c), c_tree);
    assert_eq!(
        dst.ns.lookup_path(&root(), b"/x/c2/g", false),
        Ok(Found::Local(dst.stat(dst.lookup(c, "g").expect("g"))))
    );
}

#[test]
fn hard_links_out_of_the_subtree_are_exdev_and_change_nothing() {
    let (mut src, a, b) = populated();
    let f = src.lookup(b, "f").expect("f");
    src.ok(MetaOp::Link {
        ino: f,
        new_parent: a,
        new_name: n("f-out"),
    });
    src.fails(root(), detach_op(1, a, "b"), Errno::EXDEV);
    src.fails(root(), detach_op(1, b, "f"), Errno::EXDEV);
    // Inside the subtree a hard link is fine: c/g and g2.
    src.ok(MetaOp::Unlink {
        parent: a,
        name: n("f-out"),
    });
    detach(&mut src, 1, a, "b");
}

#[test]
fn detach_errors() {
    let (mut src, a, b) = populated();
    src.fails(alice(), detach_op(1, a, "b"), Errno::EPERM);
    src.fails(root(), detach_op(1, a, "nope"), Errno::ENOENT);
    src.fails(root(), detach_op(1, a, ".."), Errno::EINVAL);
    let f = src.lookup(b, "f").expect("f");
    src.fails(root(), detach_op(1, f, "x"), Errno::ENOTDIR);
    let c = src.lookup(b, "c").expect("c");
    // Another ministry's root is moved by its own ministry.
    src.fails(root(), detach_op(1, c, "m"), Errno::EBUSY);
    // A kept image's foreign root must stay where a reattach expects it.
    let image = detach(&mut src, 1, b, "s");
    assert_eq!(image.kind(), FileType::Symlink);
    src.fails(root(), detach_op(2, a, "b"), Errno::EBUSY);
    src.fails(root(), detach_op(2, b, "s"), Errno::EBUSY);
    src.ok(MetaOp::ForgetExport { transfer: 1 });
    detach(&mut src, 2, a, "b");
}

#[test]
fn attach_errors_change_nothing() {
    let (mut src, a, _) = populated();
    let mut dst = ministry(TARGET_START);
    let x = dst.mkdir(ROOT, "x");
    let file = dst.create(ROOT, "file");
    let image = detach(&mut src, 1, a, "b");
    dst.fails(alice(), attach_op(1, None, &image), Errno::EPERM);
    dst.fails(
        root(),
        attach_op(1, Some((ROOT, "x")), &image),
        Errno::EEXIST,
    );
    dst.fails(
        root(),
        attach_op(1, Some((file, "y")), &image),
        Errno::ENOTDIR,
    );
    dst.fails(
        root(),
        attach_op(1, Some((Ino(77), "y")), &image),
        Errno::ENOENT,
    );
    dst.fails(
        root(),
        attach_op(1, Some((x, "a/b")), &image),
        Errno::EINVAL,
    );
    // A top-level root must be a directory.
    let f = src.ns.exports[&1].image.inodes[1].0;
    let mut file_only = image.clone();
    file_only.root = f;
    file_only.inodes.retain(|&(ino, _)| ino == f);
    file_only.inodes[0].1.parent = f;
    file_only.inodes[0].1.nlink = 1;
    file_only.entries.clear();
    file_only.extra_links.clear();
    file_only.symlinks.clear();
    file_only.xattrs.retain(|&(ino, _)| ino == f);
    file_only.foreign.clear();
    assert_eq!(file_only.check(), Ok(()));
    dst.fails(root(), attach_op(3, None, &file_only), Errno::ENOTDIR);
    // Malformed images are refused.
    let mut broken = image.clone();
    broken.inodes.pop();
    dst.fails(root(), attach_op(1, None, &broken), Errno::EINVAL);
    let mut broken = image.clone();
    broken.entries.reverse();
    dst.fails(root(), attach_op(1, None, &broken), Errno::EINVAL);
    let mut broken = image.clone();
    broken.inodes[0].1.nlink += 1;
    dst.fails(root(), attach_op(1, None, &broken), Errno::EINVAL);
    // Numbers of ours, used or free, are never taken over.
    let mut ours = image.clone();
    let last = ours.inodes.len() - 1;
    let (ino, _) = ours.inodes[last];
    let fresh = Ino(TARGET_START + 5_000);
    ours.inodes[last].0 = fresh;
    for (_, child) in ours.entries.iter_mut().filter(|(_, c)| *c == ino) {
        *child = fresh;
    }
    ours.inodes.sort_by_key(|&(i, _)| i);
    ours.symlinks.iter_mut().for_each(|(i, _)| {
        if *i == ino {
            *i = fresh
        }
    });
    ours.xattrs.iter_mut().for_each(|(i, _)| {
        if *i == ino {
            *i = fresh
        }
    });
    ours.extra_links = ours
        .extra_links
        .iter()
        .map(|&((i, d), c)| (((if i == ino { fresh } else { i }), d), c))
        .collect();
    ours.extra_links.sort();
    assert_eq!(ours.check(), Ok(()), "{ours:?}");
    dst.fails(root(), attach_op(1, None, &ours), Errno::EINVAL);
    // Attached once, the same numbers cannot come again under another id.
    dst.ok(attach_op(1, None, &image));
    dst.fails(
        root(),
        attach_op(4, Some((x, "again")), &image),
        Errno::EINVAL,
    );
    // Transfer ids the source used are not attach ids.
    src.fails(root(), attach_op(1, None, &image), Errno::EINVAL);
}

#[test]
fn reattach_undoes_a_detach() {
    let (mut src, a, b) = populated();
    let before = walk(&src.ns, b);
    let a_links = src.stat(a).nlink;
    src.fails(root(), MetaOp::Reattach { transfer: 1 }, Errno::EINVAL);
    detach(&mut src, 1, a, "b");
    src.fails(alice(), MetaOp::Reattach { transfer: 1 }, Errno::EPERM);
    src.ok(MetaOp::Reattach { transfer: 1 });
    assert_eq!(walk(&src.ns, b), before);
    assert_eq!(src.stat(a).nlink, a_links);
    let after = src.ns.snapshot();
    src.ok(MetaOp::Reattach { transfer: 1 });
    src.ok(MetaOp::ForgetExport { transfer: 1 });
    assert!(src.ns.snapshot() == after);
    // The subtree is local again and may leave under a new id.
    detach(&mut src, 2, a, "b");
    // Nothing to undo once the foreign root is gone, or the image.
    src.ok(MetaOp::UnmountExport { transfer: 2 });
    src.fails(root(), MetaOp::Reattach { transfer: 2 }, Errno::EINVAL);
    src.ok(MetaOp::ForgetExport { transfer: 2 });
    src.fails(root(), MetaOp::Reattach { transfer: 2 }, Errno::EINVAL);
    for op in [
        MetaOp::UnmountExport { transfer: 9 },
        MetaOp::ForgetExport { transfer: 9 },
    ] {
        src.fails(alice(), op.clone(), Errno::EPERM);
        src.fails(root(), op, Errno::EINVAL);
    }
}

#[test]
fn drop_root_removes_an_empty_attached_root() {
    let (mut src, a, b) = populated();
    let mut dst = ministry(TARGET_START);
    let image = detach(&mut src, 1, a, "b");
    dst.ok(attach_op(1, None, &image));
    let keep = dst.mkdir(ROOT, "keep");
    dst.fails(alice(), MetaOp::DropRoot { ino: b }, Errno::EPERM);
    dst.fails(root(), MetaOp::DropRoot { ino: b }, Errno::ENOTEMPTY);
    dst.fails(root(), MetaOp::DropRoot { ino: ROOT }, Errno::EINVAL);
    dst.fails(root(), MetaOp::DropRoot { ino: keep }, Errno::EINVAL);
    // Empty it (rmdir of a tree spanning ministries, bottom up).
    let c = dst.lookup(b, "c").expect("c");
    dst.ok(MetaOp::Unmount {
        parent: c,
        name: n("m"),
    });
    for (dir, name) in [(c, "g"), (b, "g2"), (b, "f"), (b, "s")] {
        dst.ok(MetaOp::Unlink {
            parent: dir,
            name: n(name),
        });
    }
    dst.ok(MetaOp::Rmdir {
        parent: b,
        name: n("c"),
    });
    dst.ok(MetaOp::DropRoot { ino: b });
    assert_eq!(dst.ns.stat(b), Err(Errno::ENOENT));
    let after = dst.ns.snapshot();
    dst.ok(MetaOp::DropRoot { ino: b });
    assert!(dst.ns.snapshot() == after);
    // Then the source drops its entry.
    src.ok(MetaOp::ForgetExport { transfer: 1 });
    src.ok(MetaOp::Unmount {
        parent: a,
        name: n("b"),
    });
    assert_eq!(src.names(a), vec!["keep"]);
}

/// A random namespace, by operations on indexes into what exists.
#[derive(Clone, Debug)]
enum Op {
    Mkdir(usize, u8),
    Create(usize, u8),
    Symlink(usize, u8),
    Link(usize, usize, u8),
    Rename(usize, u8, usize, u8),
    Xattr(usize),
    Unlink(usize, u8),
    Mount(usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0..64usize;
    let name = 0..4u8;
    prop_oneof![
        5 => (i.clone(), name.clone()).prop_map(|(p, x)| Op::Mkdir(p, x)),
        3 => (i.clone(), name.clone()).prop_map(|(p, x)| Op::Create(p, x)),
        1 => (i.clone(), name.clone()).prop_map(|(p, x)| Op::Symlink(p, x)),
        1 => (i.clone(), i.clone(), name.clone()).prop_map(|(f, p, x)| Op::Link(f, p, x)),
        1 => (i.clone(), name.clone(), i.clone(), name.clone())
            .prop_map(|(p, x, q, y)| Op::Rename(p, x, q, y)),
        1 => i.clone().prop_map(Op::Xattr),
        1 => (i.clone(), name.clone()).prop_map(|(p, x)| Op::Unlink(p, x)),
        1 => (i, name).prop_map(|(p, x)| Op::Mount(p, x)),
    ]
}

fn build(ops: &[Op]) -> Fx {
    let mut fx = ministry(100);
    let mut mounts = 0;
    for op in ops {
        let tree = walk(&fx.ns, ROOT);
        let dirs: Vec<Ino> = tree
            .values()
            .filter_map(|s| match s {
                Seen::Local { attr, .. } if attr.kind == FileType::Dir => Some(attr.ino),
                _ => None,
            })
            .collect();
        let files: Vec<Ino> = tree
            .values()
            .filter_map(|s| match s {
                Seen::Local { attr, .. } if attr.kind != FileType::Dir => Some(attr.ino),
                _ => None,
            })
            .collect();
        let dir = |i: usize| dirs[i % dirs.len()];
        let name = |x: u8| vec![b'a' + x];
        let op = match *op {
            Op::Mkdir(p, x) => MetaOp::Mkdir {
                parent: dir(p),
                name: name(x),
                mode: 0o755,
            },
            Op::Create(p, x) => MetaOp::Create {
                parent: dir(p),
                name: name(x),
                mode: 0o644,
                exclusive: true,
                layout: None,
            },
            Op::Symlink(p, x) => MetaOp::Symlink {
                parent: dir(p),
                name: name(x),
                target: n("t"),
            },
            Op::Link(_, _, _) if files.is_empty() => continue,
            Op::Link(f, p, x) => MetaOp::Link {
                ino: files[f % files.len()],
                new_parent: dir(p),
                new_name: name(x),
            },
            Op::Rename(p, x, q, y) => MetaOp::Rename {
                parent: dir(p),
                name: name(x),
                new_parent: dir(q),
                new_name: name(y),
                noreplace: false,
            },
            Op::Xattr(i) => MetaOp::SetXattr {
                ino: dir(i),
                name: n("user.x"),
                value: vec![i as u8],
                how: XattrHow::Set,
            },
            Op::Unlink(p, x) => MetaOp::Unlink {
                parent: dir(p),
                name: name(x),
            },
            Op::Mount(p, x) => {
                mounts += 1;
                MetaOp::Mount {
                    parent: dir(p),
                    name: name(x),
                    root: ForeignRoot {
                        ino: Ino((1 << 50) + mounts),
                        ministry: 9,
                    },
                }
            }
        };
        let _ = fx.run(root(), op);
    }
    fx
}

/// The parent path of a path ("/a/b" -> "/a", "/a" -> "").
fn parent_of(path: &[u8]) -> &[u8] {
    &path[..path.iter().rposition(|&b| b == b'/').unwrap_or(0)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Detach a random directory and attach it as a root (a split) or
    /// under a name (a rename): every path of the original resolves to
    /// the same thing through the two namespaces, nothing else does, and
    /// a refused detach (a hard link out) changes nothing.
    #[test]
    fn moved_subtrees_keep_every_path(
        ops in prop::collection::vec(op(), 1..80),
        pick in 0..64usize,
        split in any::<bool>(),
    ) {
        let mut src = build(&ops);
        let original = walk(&src.ns, ROOT);
        let dirs: Vec<&Vec<u8>> = original
            .iter()
            .filter(|(p, s)| {
                !p.is_empty()
                    && matches!(s, Seen::Local { attr, .. } if attr.kind == FileType::Dir)
            })
            .map(|(p, _)| p)
            .collect();
        prop_assume!(!dirs.is_empty());
        let path = dirs[pick % dirs.len()].clone();
        let cut = path.iter().rposition(|&b| b == b'/').expect("absolute");
        let parent_path = &path[..cut];
        let parent = match src.ns.lookup_path(&root(), if cut == 0 { b"/" } else { parent_path }, false) {
            Ok(Found::Local(a)) => a.ino,
            other => panic!("{other:?}"),
        };
        let name = String::from_utf8(path[cut + 1..].to_vec()).expect("ascii");
        let before = src.ns.snapshot();
        let image = match src.run(root(), detach_op(1, parent, &name)) {
            Ok(MetaReply::Detached(image)) => image,
            Err(Errno::EXDEV) => {
                prop_assert!(src.ns.snapshot() == before);
                return Ok(());
            }
            other => panic!("detach answered {other:?}"),
        };
        let mut dst = ministry(TARGET_START);
        let moved_root = image.root();
        let (prefix_in_target, start) = if split {
            dst.ok(attach_op(1, None, &image));
            (Vec::new(), moved_root)
        } else {
            dst.ok(attach_op(1, Some((ROOT, "moved")), &image));
            src.ok(MetaOp::UnmountExport { transfer: 1 });
            (n("/moved"), ROOT)
        };
        src.ok(MetaOp::ForgetExport { transfer: 1 });

        // The union of both namespaces' paths is the original's.
        let mut union = BTreeMap::new();
        for (p, s) in walk(&src.ns, ROOT) {
            if !(p == path && s == Seen::Foreign(ForeignRoot { ino: moved_root, ministry: TARGET })) {
                union.insert(p, s);
            }
        }
        for (p, s) in walk(&dst.ns, start) {
            if let Some(rest) = p.strip_prefix(prefix_in_target.as_slice()) {
                let mut q = path.clone();
                q.extend_from_slice(rest);
                prop_assert!(union.insert(q, s).is_none());
            }
        }
        let parent_path = parent_of(&path).to_vec();
        let same = |a: &BTreeMap<Vec<u8>, Seen>, b: &BTreeMap<Vec<u8>, Seen>| {
            a.len() == b.len()
                && a.iter().zip(b).all(|((p, s), (q, t))| {
                    // The detach touched its parent's times.
                    p == q && (s == t || *p == parent_path)
                })
        };
        prop_assert!(same(&union, &original), "{union:#?}\n{original:#?}");
        // Every original path resolves the same way, with one redirect.
        if split {
            for (p, s) in &original {
                if *p != parent_path {
                    let got = resolve(&src.ns, &dst.ns, p);
                    prop_assert_eq!(got.as_ref(), Ok(s));
                }
            }
        }
        src.ns.check_invariants().expect("source holds");
        dst.ns.check_invariants().expect("target holds");
    }
}
