use super::*;

fn unlink(parent: Ino, name: &str) -> MetaOp {
    MetaOp::Unlink {
        parent,
        name: n(name),
    }
}

fn rmdir(parent: Ino, name: &str) -> MetaOp {
    MetaOp::Rmdir {
        parent,
        name: n(name),
    }
}

#[test]
fn unlink_removes_a_name_and_the_last_one_frees_the_inode() {
    let mut fx = Fx::new();
    let f = fx.create_as(alice(), ROOT, "f", 0o644);
    fx.ok(MetaOp::Link {
        ino: f,
        new_parent: ROOT,
        new_name: n("g"),
    });
    fx.ok(MetaOp::SetXattr {
        ino: f,
        name: n("user.k"),
        value: n("v"),
        how: XattrHow::Set,
    });
    let used = fx.ns.statfs().inodes;
    fx.ok_as(alice(), unlink(ROOT, "f"));
    let a = fx.stat(f);
    assert_eq!((a.nlink, a.ctime), (1, fx.now));
    assert_eq!(fx.stat(ROOT).mtime, fx.now);
    fx.ok_as(alice(), unlink(ROOT, "g"));
    assert_eq!(fx.ns.stat(f), Err(Errno::ENOENT));
    assert_eq!(fx.ns.statfs().inodes, used - 1);
    assert!(fx.ns.xattrs.is_empty());
    // Symlinks unlink too.
    fx.ok(MetaOp::Symlink {
        parent: ROOT,
        name: n("s"),
        target: n("x"),
    });
    fx.ok(unlink(ROOT, "s"));
    assert!(fx.ns.symlinks.is_empty());
}

#[test]
fn unlink_errors_change_nothing() {
    let mut fx = Fx::new();
    let d = fx.mkdir_as(alice(), ROOT, "d", 0o755);
    let f = fx.create_as(alice(), d, "f", 0o644);
    fx.fails(alice(), unlink(d, "nope"), Errno::ENOENT);
    fx.fails(alice(), unlink(Ino(44_444), "f"), Errno::ENOENT);
    fx.fails(alice(), unlink(f, "x"), Errno::ENOTDIR);
    fx.fails(alice(), unlink(ROOT, "d"), Errno::EISDIR);
    fx.fails(bob(), unlink(d, "f"), Errno::EACCES);
    for (name, errno) in bad_old_names() {
        fx.fails(alice(), MetaOp::Unlink { parent: d, name }, errno);
    }
}

#[test]
fn sticky_directories_protect_other_users_files() {
    let mut fx = Fx::new();
    let tmp = fx.mkdir_as(root(), ROOT, "tmp", 0o1777);
    fx.create_as(alice(), tmp, "a", 0o666);
    fx.mkdir_as(alice(), tmp, "ad", 0o777);
    fx.fails(bob(), unlink(tmp, "a"), Errno::EPERM);
    fx.fails(bob(), rmdir(tmp, "ad"), Errno::EPERM);
    let op = MetaOp::Rename {
        parent: tmp,
        name: n("a"),
        new_parent: tmp,
        new_name: n("b"),
        noreplace: false,
    };
    fx.fails(bob(), op, Errno::EPERM);
    fx.ok_as(alice(), unlink(tmp, "a"));
    fx.ok(rmdir(tmp, "ad"));
}

#[test]
fn rmdir_removes_empty_directories() {
    let mut fx = Fx::new();
    let d = fx.mkdir_as(alice(), ROOT, "d", 0o755);
    let e = fx.mkdir_as(alice(), d, "e", 0o755);
    assert_eq!(fx.stat(ROOT).nlink, 3);
    fx.ok_as(alice(), rmdir(d, "e"));
    assert_eq!(fx.ns.stat(e), Err(Errno::ENOENT));
    assert_eq!(fx.stat(d).nlink, 2);
    fx.ok_as(alice(), rmdir(ROOT, "d"));
    assert_eq!(fx.stat(ROOT).nlink, 2);
    assert!(fx.names(ROOT).is_empty());
}

#[test]
fn rmdir_errors_change_nothing() {
    let mut fx = Fx::new();
    let d = fx.mkdir_as(alice(), ROOT, "d", 0o755);
    let f = fx.create_as(alice(), d, "f", 0o644);
    fx.mkdir_as(alice(), ROOT, "e", 0o755);
    fx.fails(alice(), rmdir(ROOT, "d"), Errno::ENOTEMPTY);
    fx.fails(alice(), rmdir(d, "f"), Errno::ENOTDIR);
    fx.fails(alice(), rmdir(ROOT, "nope"), Errno::ENOENT);
    fx.fails(alice(), rmdir(f, "x"), Errno::ENOTDIR);
    fx.fails(alice(), rmdir(Ino(33_333), "x"), Errno::ENOENT);
    let closed = fx.mkdir_as(alice(), ROOT, "closed", 0o755);
    fx.mkdir_as(alice(), closed, "x", 0o777);
    fx.fails(bob(), rmdir(closed, "x"), Errno::EACCES);
    for (name, errno) in bad_old_names() {
        fx.fails(alice(), MetaOp::Rmdir { parent: d, name }, errno);
    }
}
