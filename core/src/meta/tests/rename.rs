use super::*;

fn rename(parent: Ino, name: &str, new_parent: Ino, new_name: &str) -> MetaOp {
    MetaOp::Rename {
        parent,
        name: n(name),
        new_parent,
        new_name: n(new_name),
        noreplace: false,
    }
}

#[test]
fn rename_moves_files_within_and_across_directories() {
    let mut fx = Fx::new();
    let d = fx.mkdir(ROOT, "d");
    let f = fx.create(ROOT, "f");
    fx.ok(rename(ROOT, "f", ROOT, "g"));
    assert_eq!(fx.lookup(ROOT, "g"), Ok(f));
    assert_eq!(fx.lookup(ROOT, "f"), Err(Errno::ENOENT));
    assert_eq!(fx.stat(f).ctime, fx.now);
    fx.ok(rename(ROOT, "g", d, "h"));
    assert_eq!(fx.names(d), vec!["h"]);
    assert_eq!(fx.names(ROOT), vec!["d"]);
    assert_eq!((fx.stat(ROOT).mtime, fx.stat(d).mtime), (fx.now, fx.now));
}

#[test]
fn rename_replaces_files_and_empty_directories() {
    let mut fx = Fx::new();
    let a = fx.create(ROOT, "a");
    let b = fx.create(ROOT, "b");
    fx.ok(MetaOp::Link {
        ino: b,
        new_parent: ROOT,
        new_name: n("b2"),
    });
    fx.ok(rename(ROOT, "a", ROOT, "b"));
    assert_eq!(fx.lookup(ROOT, "b"), Ok(a));
    assert_eq!(fx.stat(b).nlink, 1);
    fx.ok(rename(ROOT, "b", ROOT, "b2"));
    assert_eq!(fx.ns.stat(b), Err(Errno::ENOENT));
    let d = fx.mkdir(ROOT, "d");
    let e = fx.mkdir(ROOT, "e");
    fx.mkdir(d, "sub");
    assert_eq!(fx.stat(ROOT).nlink, 4);
    fx.ok(rename(ROOT, "d", ROOT, "e"));
    assert_eq!(fx.ns.stat(e), Err(Errno::ENOENT));
    assert_eq!(fx.lookup(ROOT, "e"), Ok(d));
    assert_eq!(fx.stat(ROOT).nlink, 3);
}

#[test]
fn rename_moves_directories_and_their_link_counts() {
    let mut fx = Fx::new();
    let a = fx.mkdir(ROOT, "a");
    let b = fx.mkdir(ROOT, "b");
    let c = fx.mkdir(a, "c");
    fx.ok(rename(a, "c", b, "c"));
    assert_eq!((fx.stat(a).nlink, fx.stat(b).nlink), (2, 3));
    assert_eq!(
        fx.ns.lookup(&root(), c, b".."),
        Ok(Found::Local(fx.stat(b)))
    );
}

#[test]
fn rename_never_makes_a_cycle() {
    let mut fx = Fx::new();
    let a = fx.mkdir(ROOT, "a");
    let b = fx.mkdir(a, "b");
    let c = fx.mkdir(b, "c");
    fx.fails(root(), rename(ROOT, "a", c, "a"), Errno::EINVAL);
    fx.fails(root(), rename(ROOT, "a", b, "x"), Errno::EINVAL);
    fx.fails(root(), rename(ROOT, "a", a, "x"), Errno::EINVAL);
    fx.fails(root(), rename(a, "b", c, "x"), Errno::EINVAL);
    // Renaming onto an ancestor: the ancestor is not empty.
    fx.fails(root(), rename(b, "c", ROOT, "a"), Errno::ENOTEMPTY);
    // Sideways is fine.
    fx.ok(rename(b, "c", a, "c"));
}

#[test]
fn rename_to_the_same_file_does_nothing() {
    let mut fx = Fx::new();
    let f = fx.create(ROOT, "f");
    fx.ok(MetaOp::Link {
        ino: f,
        new_parent: ROOT,
        new_name: n("g"),
    });
    for op in [rename(ROOT, "f", ROOT, "g"), rename(ROOT, "f", ROOT, "f")] {
        let before = fx.ns.snapshot();
        assert_eq!(fx.run(root(), op), Ok(MetaReply::Done));
        assert!(fx.ns.snapshot() == before);
    }
    assert_eq!(fx.names(ROOT), vec!["f", "g"]);
}

#[test]
fn rename_errors_change_nothing() {
    let mut fx = Fx::new();
    let d = fx.mkdir_as(alice(), ROOT, "d", 0o755);
    let full = fx.mkdir_as(alice(), ROOT, "full", 0o755);
    fx.create_as(alice(), full, "x", 0o644);
    let f = fx.create_as(alice(), ROOT, "f", 0o644);
    fx.fails(alice(), rename(ROOT, "nope", ROOT, "x"), Errno::ENOENT);
    fx.fails(alice(), rename(Ino(22_222), "f", ROOT, "x"), Errno::ENOENT);
    fx.fails(alice(), rename(ROOT, "f", Ino(22_222), "x"), Errno::ENOENT);
    fx.fails(alice(), rename(f, "x", ROOT, "x"), Errno::ENOTDIR);
    fx.fails(alice(), rename(ROOT, "f", f, "x"), Errno::ENOTDIR);
    fx.fails(alice(), rename(ROOT, "d", ROOT, "f"), Errno::ENOTDIR);
    fx.fails(alice(), rename(ROOT, "f", ROOT, "d"), Errno::EISDIR);
    fx.fails(alice(), rename(ROOT, "d", ROOT, "full"), Errno::ENOTEMPTY);
    let op = MetaOp::Rename {
        parent: ROOT,
        name: n("f"),
        new_parent: ROOT,
        new_name: n("d"),
        noreplace: true,
    };
    fx.fails(alice(), op, Errno::EEXIST);
    fx.fails(bob(), rename(d, "x", ROOT, "y"), Errno::ENOENT);
    fx.fails(bob(), rename(full, "x", ROOT, "y"), Errno::EACCES);
    // Moving a directory to another parent rewrites its "..": needs write
    // permission on it.
    fx.mkdir_as(alice(), ROOT, "theirs", 0o555);
    let public = fx.mkdir_as(root(), ROOT, "public", 0o777);
    fx.fails(bob(), rename(ROOT, "theirs", public, "t"), Errno::EACCES);
    // Within one directory ".." stays: no need.
    fx.ok_as(bob(), rename(ROOT, "theirs", ROOT, "t"));
    for (name, errno) in bad_old_names() {
        let op = MetaOp::Rename {
            parent: ROOT,
            name: name.clone(),
            new_parent: ROOT,
            new_name: n("y"),
            noreplace: false,
        };
        fx.fails(alice(), op, errno);
        let op = MetaOp::Rename {
            parent: ROOT,
            name: n("f"),
            new_parent: ROOT,
            new_name: name,
            noreplace: false,
        };
        fx.fails(alice(), op, errno);
    }
}
