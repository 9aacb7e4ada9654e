use super::*;

const FOREIGN: Ino = Ino(1 << 40);

fn mount(fx: &mut Fx, parent: Ino, name: &str) {
    fx.ok(MetaOp::Mount {
        parent,
        name: n(name),
        root: ForeignRoot {
            ino: FOREIGN,
            ministry: 7,
        },
    });
}

#[test]
fn grants_must_increase_and_come_from_root() {
    let mut fx = Fx::new();
    let grant = |start, count| MetaOp::GrantInodes { start, count };
    fx.fails(alice(), grant(20_000, 10), Errno::EPERM);
    fx.fails(root(), grant(20_000, 0), Errno::EINVAL);
    fx.fails(root(), grant(5_000, 10), Errno::EINVAL);
    fx.fails(root(), grant(u64::MAX, 10), Errno::EINVAL);
    fx.ok(grant(20_000, 10));
    fx.fails(root(), grant(20_005, 10), Errno::EINVAL);
    assert_eq!(fx.ns.statfs().free_inodes, 10_010);
}

#[test]
fn grants_never_cover_a_used_number() {
    let mut ns = Namespace::new(Ino(500), ChangeFeed::default());
    let req = |op| MetaRequest {
        op,
        creds: root(),
        now: 0,
    };
    assert_eq!(
        ns.execute(
            1,
            &req(MetaOp::GrantInodes {
                start: 400,
                count: 200
            })
        ),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ns.execute(
            2,
            &req(MetaOp::GrantInodes {
                start: 501,
                count: 200
            })
        ),
        Ok(MetaReply::Done)
    );
}

#[test]
fn foreign_subtrees_redirect_and_cannot_be_crossed() {
    let mut fx = Fx::new();
    let d = fx.mkdir(ROOT, "d");
    let f = fx.create(ROOT, "f");
    mount(&mut fx, d, "m");
    assert_eq!(fx.stat(d).nlink, 3);
    let root_ref = ForeignRoot {
        ino: FOREIGN,
        ministry: 7,
    };
    assert_eq!(
        fx.ns.lookup(&root(), d, b"m"),
        Ok(Found::Foreign {
            root: root_ref,
            rest: Vec::new()
        })
    );
    assert_eq!(
        fx.ns.lookup_path(&root(), b"/d/m/x/y", true),
        Ok(Found::Foreign {
            root: root_ref,
            rest: n("/x/y")
        })
    );
    assert_eq!(
        fx.ns.resolve_parent(&root(), b"/d/m/x"),
        Err(Errno::EREMOTE)
    );
    let page = fx.ns.readdir(&root(), d, None, 10).expect("readdir");
    assert_eq!(
        (page.entries[0].kind, page.entries[0].foreign),
        (FileType::Dir, Some(7))
    );

    // Addressed to the foreign root: ask its ministry.
    fx.fails(root(), MetaOp::Stat { ino: FOREIGN }, Errno::EREMOTE);
    fx.fails(
        root(),
        MetaOp::Mkdir {
            parent: FOREIGN,
            name: n("x"),
            mode: 0o755,
        },
        Errno::EREMOTE,
    );
    let rename = |parent, name: &str, new_parent, new_name: &str| MetaOp::Rename {
        parent,
        name: n(name),
        new_parent,
        new_name: n(new_name),
        noreplace: false,
    };
    // Crossing between ministries: EXDEV, as across file systems.
    fx.fails(root(), rename(ROOT, "f", FOREIGN, "f"), Errno::EXDEV);
    fx.fails(root(), rename(FOREIGN, "x", ROOT, "x"), Errno::EXDEV);
    fx.fails(root(), rename(FOREIGN, "x", FOREIGN, "y"), Errno::EREMOTE);
    fx.fails(
        root(),
        MetaOp::Link {
            ino: f,
            new_parent: FOREIGN,
            new_name: n("f"),
        },
        Errno::EXDEV,
    );
    fx.fails(
        root(),
        MetaOp::Link {
            ino: FOREIGN,
            new_parent: ROOT,
            new_name: n("m2"),
        },
        Errno::EXDEV,
    );
    // The mount point itself: EBUSY.
    fx.fails(root(), rename(d, "m", ROOT, "m"), Errno::EBUSY);
    fx.fails(root(), rename(ROOT, "f", d, "m"), Errno::EBUSY);
    fx.fails(
        root(),
        MetaOp::Rmdir {
            parent: d,
            name: n("m"),
        },
        Errno::EBUSY,
    );
    fx.fails(
        root(),
        MetaOp::Unlink {
            parent: d,
            name: n("m"),
        },
        Errno::EBUSY,
    );
    fx.fails(
        root(),
        MetaOp::Rmdir {
            parent: ROOT,
            name: n("d"),
        },
        Errno::ENOTEMPTY,
    );
    let create = MetaOp::Create {
        parent: d,
        name: n("m"),
        mode: 0o644,
        exclusive: false,
        layout: None,
    };
    fx.fails(root(), create, Errno::EISDIR);
    // Moving the directory that holds it is fine: the subtree moves along.
    fx.ok(rename(ROOT, "d", ROOT, "e"));
    assert_eq!(
        fx.ns.lookup_path(&root(), b"/e/m", true),
        Ok(Found::Foreign {
            root: root_ref,
            rest: Vec::new()
        })
    );
}

#[test]
fn mount_and_unmount_errors() {
    let mut fx = Fx::new();
    let d = fx.mkdir(ROOT, "d");
    let f = fx.create(ROOT, "f");
    let op = |parent, name: &str, ino| MetaOp::Mount {
        parent,
        name: n(name),
        root: ForeignRoot { ino, ministry: 3 },
    };
    fx.fails(alice(), op(d, "m", FOREIGN), Errno::EPERM);
    fx.fails(root(), op(d, "m", f), Errno::EINVAL);
    fx.fails(root(), op(d, "m", Ino(0)), Errno::EINVAL);
    fx.fails(root(), op(ROOT, "f", FOREIGN), Errno::EEXIST);
    fx.fails(root(), op(f, "m", FOREIGN), Errno::ENOTDIR);
    fx.fails(root(), op(d, "..", FOREIGN), Errno::EEXIST);
    mount(&mut fx, d, "m");
    fx.fails(root(), op(ROOT, "m2", FOREIGN), Errno::EINVAL);
    let unmount = |parent, name: &str| MetaOp::Unmount {
        parent,
        name: n(name),
    };
    fx.fails(alice(), unmount(d, "m"), Errno::EPERM);
    fx.fails(root(), unmount(ROOT, "f"), Errno::EINVAL);
    fx.fails(root(), unmount(d, "x"), Errno::ENOENT);
    fx.ok(unmount(d, "m"));
    assert_eq!(fx.stat(d).nlink, 2);
    assert!(fx.names(d).is_empty());
}

#[test]
fn foreign_numbers_and_ours_never_meet() {
    let mut fx = Fx::new();
    let d = fx.mkdir(ROOT, "d");
    // 150 lies in our granted range: it will be ours one day.
    let op = MetaOp::Mount {
        parent: d,
        name: n("m"),
        root: ForeignRoot {
            ino: Ino(150),
            ministry: 3,
        },
    };
    fx.fails(root(), op, Errno::EINVAL);
    mount(&mut fx, d, "m");
    let grant = MetaOp::GrantInodes {
        start: FOREIGN.0 - 5,
        count: 10,
    };
    fx.fails(root(), grant, Errno::EINVAL);
}

#[test]
fn commands_that_do_not_decode_are_einval() {
    let mut ns = Namespace::default();
    let before = ns.snapshot();
    let out = ns.apply(1, &[0xff, 0xff, 0xff]);
    assert_eq!(decode_reply(&out), Ok(Err(Errno::EINVAL)));
    assert!(ns.snapshot() == before);
}

#[test]
fn errno_values_are_linux() {
    let pairs = [
        (Errno::EPERM, 1),
        (Errno::ENOENT, 2),
        (Errno::EACCES, 13),
        (Errno::EEXIST, 17),
        (Errno::EXDEV, 18),
        (Errno::ENOTDIR, 20),
        (Errno::EISDIR, 21),
        (Errno::EINVAL, 22),
        (Errno::ENOSPC, 28),
        (Errno::ENAMETOOLONG, 36),
        (Errno::ENOTEMPTY, 39),
        (Errno::ENODATA, 61),
    ];
    for (e, v) in pairs {
        assert_eq!(e.errno(), v, "{e}");
    }
    assert_eq!(
        Errno::ENOTEMPTY.to_string(),
        "directory not empty (ENOTEMPTY)"
    );
}
