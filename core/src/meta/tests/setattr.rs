use super::*;

fn set(ino: Ino, set: SetAttr) -> MetaOp {
    MetaOp::Setattr { ino, set }
}

fn attr(reply: MetaReply) -> Attr {
    match reply {
        MetaReply::Attr(a) => a,
        other => panic!("{other:?}"),
    }
}

#[test]
fn chmod_by_owner_or_root() {
    let mut fx = Fx::new();
    let f = fx.create_as(alice(), ROOT, "f", 0o644);
    let a = attr(fx.ok_as(
        alice(),
        set(
            f,
            SetAttr {
                mode: Some(0o600),
                ..SetAttr::default()
            },
        ),
    ));
    assert_eq!((a.mode, a.ctime, a.meta_seq), (0o600, fx.now, fx.index));
    assert_eq!(a.data_seq, fx.index - 1);
    fx.fails(
        bob(),
        set(
            f,
            SetAttr {
                mode: Some(0o777),
                ..SetAttr::default()
            },
        ),
        Errno::EPERM,
    );
    fx.fails(
        alice(),
        set(
            f,
            SetAttr {
                mode: Some(0o10644),
                ..SetAttr::default()
            },
        ),
        Errno::EINVAL,
    );
    fx.ok(set(
        f,
        SetAttr {
            mode: Some(0o4755),
            ..SetAttr::default()
        },
    ));
    assert_eq!(fx.stat(f).mode, 0o4755);
    // Alice is not in group 7: chmod drops set-group-ID.
    fx.ok(set(
        f,
        SetAttr {
            gid: Some(7),
            ..SetAttr::default()
        },
    ));
    let a = attr(fx.ok_as(
        alice(),
        set(
            f,
            SetAttr {
                mode: Some(0o2755),
                ..SetAttr::default()
            },
        ),
    ));
    assert_eq!(a.mode, 0o755);
}

#[test]
fn chown_rules() {
    let mut fx = Fx::new();
    let f = fx.create_as(alice(), ROOT, "f", 0o4755);
    let in_7 = Credentials {
        uid: ALICE,
        gid: ALICE,
        groups: vec![7],
    };
    fx.fails(
        alice(),
        set(
            f,
            SetAttr {
                uid: Some(BOB),
                ..SetAttr::default()
            },
        ),
        Errno::EPERM,
    );
    fx.fails(
        bob(),
        set(
            f,
            SetAttr {
                uid: Some(ALICE),
                ..SetAttr::default()
            },
        ),
        Errno::EPERM,
    );
    fx.fails(
        alice(),
        set(
            f,
            SetAttr {
                gid: Some(8),
                ..SetAttr::default()
            },
        ),
        Errno::EPERM,
    );
    fx.fails(
        bob(),
        set(
            f,
            SetAttr {
                gid: Some(BOB),
                ..SetAttr::default()
            },
        ),
        Errno::EPERM,
    );
    let a = attr(fx.ok_as(
        in_7,
        set(
            f,
            SetAttr {
                gid: Some(7),
                ..SetAttr::default()
            },
        ),
    ));
    // chown clears set-user-ID on files.
    assert_eq!((a.gid, a.mode), (7, 0o755));
    let a = attr(fx.ok(set(
        f,
        SetAttr {
            uid: Some(BOB),
            ..SetAttr::default()
        },
    )));
    assert_eq!(a.uid, BOB);
}

#[test]
fn truncate() {
    let mut fx = Fx::new();
    let f = fx.create_as(alice(), ROOT, "f", 0o644);
    let a = attr(fx.ok_as(
        alice(),
        set(
            f,
            SetAttr {
                size: Some(12345),
                ..SetAttr::default()
            },
        ),
    ));
    assert_eq!(
        (a.size, a.mtime, a.ctime, a.data_seq, a.meta_seq),
        (12345, fx.now, fx.now, fx.index, fx.index)
    );
    assert_eq!(fx.ns.statfs().bytes, 12345);
    fx.ok_as(
        alice(),
        set(
            f,
            SetAttr {
                size: Some(10),
                ..SetAttr::default()
            },
        ),
    );
    assert_eq!(fx.ns.statfs().bytes, 10);
    let big = SetAttr {
        size: Some(MAX_FILE_SIZE + 1),
        ..SetAttr::default()
    };
    fx.fails(alice(), set(f, big), Errno::EFBIG);
    fx.fails(
        bob(),
        set(
            f,
            SetAttr {
                size: Some(0),
                ..SetAttr::default()
            },
        ),
        Errno::EACCES,
    );
    let d = fx.mkdir(ROOT, "d");
    fx.fails(
        root(),
        set(
            d,
            SetAttr {
                size: Some(0),
                ..SetAttr::default()
            },
        ),
        Errno::EISDIR,
    );
    let s = match fx.ok(MetaOp::Symlink {
        parent: ROOT,
        name: n("s"),
        target: n("f"),
    }) {
        MetaReply::Attr(a) => a.ino,
        other => panic!("{other:?}"),
    };
    fx.fails(
        root(),
        set(
            s,
            SetAttr {
                size: Some(0),
                ..SetAttr::default()
            },
        ),
        Errno::EINVAL,
    );
    fx.fails(
        root(),
        set(
            Ino(11_111),
            SetAttr {
                size: Some(0),
                ..SetAttr::default()
            },
        ),
        Errno::ENOENT,
    );
}

#[test]
fn utimens() {
    let mut fx = Fx::new();
    let f = fx.create_as(alice(), ROOT, "f", 0o666);
    let a = attr(fx.ok_as(
        alice(),
        set(
            f,
            SetAttr {
                atime: Some(TimeSet::At(7)),
                mtime: Some(TimeSet::At(-8)),
                ..SetAttr::default()
            },
        ),
    ));
    assert_eq!((a.atime, a.mtime, a.ctime), (7, -8, fx.now));
    // "Now" needs write permission (0o666 gives bob that); explicit times need ownership.
    let a = attr(fx.ok_as(
        bob(),
        set(
            f,
            SetAttr {
                mtime: Some(TimeSet::Now),
                ..SetAttr::default()
            },
        ),
    ));
    assert_eq!(a.mtime, fx.now);
    fx.fails(
        bob(),
        set(
            f,
            SetAttr {
                atime: Some(TimeSet::At(1)),
                ..SetAttr::default()
            },
        ),
        Errno::EPERM,
    );
    fx.ok_as(
        alice(),
        set(
            f,
            SetAttr {
                mode: Some(0o644),
                ..SetAttr::default()
            },
        ),
    );
    fx.fails(
        bob(),
        set(
            f,
            SetAttr {
                atime: Some(TimeSet::Now),
                ..SetAttr::default()
            },
        ),
        Errno::EACCES,
    );
    // Truncate and an explicit mtime together: the explicit one wins.
    let a = attr(fx.ok(set(
        f,
        SetAttr {
            size: Some(1),
            mtime: Some(TimeSet::At(3)),
            ..SetAttr::default()
        },
    )));
    assert_eq!((a.size, a.mtime), (1, 3));
}

#[test]
fn empty_setattr_changes_nothing() {
    let mut fx = Fx::new();
    let f = fx.create(ROOT, "f");
    let before = fx.ns.snapshot();
    let a = attr(fx.ok_as(bob(), set(f, SetAttr::default())));
    assert_eq!(a, fx.stat(f));
    assert!(fx.ns.snapshot() == before);
}
