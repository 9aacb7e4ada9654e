use super::*;

#[test]
fn mkdir_sets_attributes_and_counts_links() {
    let mut fx = Fx::new();
    let d = fx.mkdir_as(alice(), ROOT, "d", 0o750);
    let a = fx.stat(d);
    assert_eq!(
        (a.kind, a.mode, a.uid, a.gid, a.nlink, a.size),
        (FileType::Dir, 0o750, ALICE, ALICE, 2, 0)
    );
    assert_eq!((a.atime, a.mtime, a.ctime), (fx.now, fx.now, fx.now));
    assert_eq!((a.meta_seq, a.data_seq), (fx.index, fx.index));
    let r = fx.stat(ROOT);
    assert_eq!((r.nlink, r.mtime, r.data_seq), (3, fx.now, fx.index));
    fx.mkdir(d, "e");
    assert_eq!(fx.stat(d).nlink, 3);
    assert_eq!(fx.names(ROOT), vec!["d"]);
}

#[test]
fn mkdir_errors_change_nothing() {
    let mut fx = Fx::new();
    let f = fx.create(ROOT, "f");
    let d = fx.mkdir(ROOT, "d");
    let private = fx.mkdir_as(alice(), ROOT, "private", 0o700);
    let readonly = fx.mkdir_as(alice(), ROOT, "ro", 0o555);
    let mkdir = |parent, name: &str| MetaOp::Mkdir {
        parent,
        name: n(name),
        mode: 0o755,
    };
    for (name, errno) in bad_new_names() {
        let op = MetaOp::Mkdir {
            parent: d,
            name,
            mode: 0o755,
        };
        fx.fails(alice(), op, errno);
    }
    let op = MetaOp::Mkdir {
        parent: d,
        name: n("x"),
        mode: 0o40755,
    };
    fx.fails(alice(), op, Errno::EINVAL);
    fx.fails(alice(), mkdir(Ino(99_999), "x"), Errno::ENOENT);
    fx.fails(alice(), mkdir(f, "x"), Errno::ENOTDIR);
    fx.fails(alice(), mkdir(ROOT, "d"), Errno::EEXIST);
    fx.fails(alice(), mkdir(ROOT, "f"), Errno::EEXIST);
    fx.fails(bob(), mkdir(private, "x"), Errno::EACCES);
    fx.fails(bob(), mkdir(readonly, "x"), Errno::EACCES);
    fx.fails(alice(), mkdir(readonly, "x"), Errno::EACCES);
    // Root ignores modes.
    fx.mkdir_as(root(), readonly, "x", 0o755);
    // An existing name is EEXIST even where the caller may not write.
    fx.fails(bob(), mkdir(readonly, "x"), Errno::EEXIST);
}

#[test]
fn names_of_255_bytes_are_fine() {
    let mut fx = Fx::new();
    let long = "x".repeat(255);
    let d = fx.mkdir(ROOT, &long);
    assert_eq!(fx.lookup(ROOT, &long), Ok(d));
}

#[test]
fn setgid_directories_pass_on_their_group() {
    let mut fx = Fx::new();
    let shared = fx.mkdir_as(root(), ROOT, "shared", 0o777);
    fx.ok(MetaOp::Setattr {
        ino: shared,
        set: SetAttr {
            gid: Some(500),
            mode: Some(0o2777),
            ..SetAttr::default()
        },
    });
    let sub = fx.mkdir_as(alice(), shared, "sub", 0o755);
    let a = fx.stat(sub);
    assert_eq!((a.gid, a.mode), (500, 0o2755));
    // A file gets the group; alice is not in it, so she cannot set setgid.
    let f = fx.create_as(alice(), shared, "f", 0o2755);
    let a = fx.stat(f);
    assert_eq!((a.gid, a.mode), (500, 0o755));
}

#[test]
fn out_of_inode_numbers_is_enospc() {
    let mut fx = Fx {
        ns: Namespace::default(),
        index: 0,
        now: 0,
    };
    let create = |name: &str| MetaOp::Create {
        parent: ROOT,
        name: n(name),
        mode: 0o644,
        exclusive: true,
        layout: None,
    };
    fx.fails(root(), create("a"), Errno::ENOSPC);
    fx.ok(MetaOp::GrantInodes {
        start: 10,
        count: 1,
    });
    fx.ok(create("a"));
    fx.fails(root(), create("b"), Errno::ENOSPC);
    let mkdir = MetaOp::Mkdir {
        parent: ROOT,
        name: n("d"),
        mode: 0o755,
    };
    fx.fails(root(), mkdir, Errno::ENOSPC);
    let symlink = MetaOp::Symlink {
        parent: ROOT,
        name: n("s"),
        target: n("a"),
    };
    fx.fails(root(), symlink, Errno::ENOSPC);
    fx.ok(MetaOp::GrantInodes {
        start: 20,
        count: 2,
    });
    assert_eq!(fx.ns.statfs().free_inodes, 2);
    let b = fx.create(ROOT, "b");
    assert_eq!(b, Ino(20));
}

#[test]
fn create_exclusive_and_not() {
    let mut fx = Fx::new();
    let f = fx.create_as(alice(), ROOT, "f", 0o640);
    let a = fx.stat(f);
    assert_eq!(
        (a.kind, a.mode, a.uid, a.nlink, a.size),
        (FileType::File, 0o640, ALICE, 1, 0)
    );
    assert_eq!(a.layout, Layout::default());
    let create = |name: &str, exclusive| MetaOp::Create {
        parent: ROOT,
        name: n(name),
        mode: 0o644,
        exclusive,
        layout: None,
    };
    fx.fails(bob(), create("f", true), Errno::EEXIST);
    // O_CREAT without O_EXCL finds the file and changes nothing.
    let before = fx.ns.snapshot();
    match fx.run(bob(), create("f", false)) {
        Ok(MetaReply::Created {
            attr,
            created: false,
        }) => assert_eq!(attr.ino, f),
        other => panic!("{other:?}"),
    }
    assert!(fx.ns.snapshot() == before);
    fx.mkdir(ROOT, "d");
    fx.fails(alice(), create("d", false), Errno::EISDIR);
    fx.fails(alice(), create("d", true), Errno::EEXIST);
    fx.ok(MetaOp::Symlink {
        parent: ROOT,
        name: n("s"),
        target: n("f"),
    });
    fx.fails(alice(), create("s", false), Errno::EEXIST);
    for (name, errno) in bad_new_names() {
        let op = MetaOp::Create {
            parent: ROOT,
            name,
            mode: 0o644,
            exclusive: false,
            layout: None,
        };
        fx.fails(alice(), op, errno);
    }
    let op = MetaOp::Create {
        parent: ROOT,
        name: n("x"),
        mode: 0o100644,
        exclusive: true,
        layout: None,
    };
    fx.fails(alice(), op, Errno::EINVAL);
    let op = MetaOp::Create {
        parent: f,
        name: n("x"),
        mode: 0o644,
        exclusive: true,
        layout: None,
    };
    fx.fails(alice(), op, Errno::ENOTDIR);
    let op = MetaOp::Create {
        parent: Ino(77_777),
        name: n("x"),
        mode: 0o644,
        exclusive: true,
        layout: None,
    };
    fx.fails(alice(), op, Errno::ENOENT);
    let ro = fx.mkdir_as(alice(), ROOT, "ro", 0o555);
    let op = MetaOp::Create {
        parent: ro,
        name: n("x"),
        mode: 0o644,
        exclusive: true,
        layout: None,
    };
    fx.fails(alice(), op, Errno::EACCES);
}

#[test]
fn create_takes_a_layout_or_the_directory_s() {
    let mut fx = Fx::new();
    let custom = Layout {
        chunk_size: 1 << 16,
        stripe_count: 4,
        replicas: 2,
    };
    let op = MetaOp::Create {
        parent: ROOT,
        name: n("f"),
        mode: 0o644,
        exclusive: true,
        layout: Some(custom),
    };
    match fx.ok(op) {
        MetaReply::Created { attr, .. } => assert_eq!(attr.layout, custom),
        other => panic!("{other:?}"),
    }
    for bad in [
        Layout {
            chunk_size: 3000,
            ..custom
        },
        Layout {
            chunk_size: 1 << 31,
            ..custom
        },
        Layout {
            stripe_count: 0,
            ..custom
        },
        Layout {
            replicas: 0,
            ..custom
        },
    ] {
        let op = MetaOp::Create {
            parent: ROOT,
            name: n("g"),
            mode: 0o644,
            exclusive: true,
            layout: Some(bad),
        };
        fx.fails(root(), op, Errno::EINVAL);
    }
}

#[test]
fn symlink_and_readlink() {
    let mut fx = Fx::new();
    let target = n("../some/where");
    let op = MetaOp::Symlink {
        parent: ROOT,
        name: n("s"),
        target: target.clone(),
    };
    let s = match fx.ok_as(alice(), op) {
        MetaReply::Attr(a) => a,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (s.kind, s.mode, s.size, s.nlink, s.uid),
        (FileType::Symlink, 0o777, target.len() as u64, 1, ALICE)
    );
    assert_eq!(fx.ns.readlink(s.ino), Ok(target.clone()));
    assert_eq!(
        fx.ok(MetaOp::Readlink { ino: s.ino }),
        MetaReply::Target(target)
    );
    let f = fx.create(ROOT, "f");
    fx.fails(root(), MetaOp::Readlink { ino: f }, Errno::EINVAL);
    fx.fails(root(), MetaOp::Readlink { ino: Ino(55_555) }, Errno::ENOENT);
    for (target, errno) in [
        (n(""), Errno::ENOENT),
        (b"a\0".to_vec(), Errno::EINVAL),
        (vec![b'a'; 4096], Errno::ENAMETOOLONG),
    ] {
        fx.fails(
            alice(),
            MetaOp::Symlink {
                parent: ROOT,
                name: n("t"),
                target,
            },
            errno,
        );
    }
    fx.fails(
        alice(),
        MetaOp::Symlink {
            parent: ROOT,
            name: n("s"),
            target: n("x"),
        },
        Errno::EEXIST,
    );
    for (name, errno) in bad_new_names() {
        fx.fails(
            alice(),
            MetaOp::Symlink {
                parent: ROOT,
                name,
                target: n("x"),
            },
            errno,
        );
    }
    let op = MetaOp::Symlink {
        parent: f,
        name: n("t"),
        target: n("x"),
    };
    fx.fails(alice(), op, Errno::ENOTDIR);
}

#[test]
fn link_adds_names() {
    let mut fx = Fx::new();
    let d = fx.mkdir_as(alice(), ROOT, "d", 0o755);
    let f = fx.create_as(alice(), ROOT, "f", 0o644);
    let link = |ino, new_parent, name: &str| MetaOp::Link {
        ino,
        new_parent,
        new_name: n(name),
    };
    match fx.ok_as(alice(), link(f, d, "g")) {
        MetaReply::Attr(a) => assert_eq!((a.nlink, a.ctime), (2, fx.now)),
        other => panic!("{other:?}"),
    }
    fx.ok_as(alice(), link(f, d, "h"));
    assert_eq!(fx.stat(f).nlink, 3);
    assert_eq!(fx.lookup(d, "g"), Ok(f));
    assert_eq!(fx.names(d), vec!["g", "h"]);

    fx.fails(alice(), link(d, ROOT, "dd"), Errno::EPERM);
    fx.fails(alice(), link(Ino(66_666), ROOT, "x"), Errno::ENOENT);
    fx.fails(alice(), link(f, Ino(66_666), "x"), Errno::ENOENT);
    fx.fails(alice(), link(f, f, "x"), Errno::ENOTDIR);
    fx.fails(alice(), link(f, d, "g"), Errno::EEXIST);
    fx.fails(bob(), link(f, d, "x"), Errno::EACCES);
    for (name, errno) in bad_new_names() {
        fx.fails(
            alice(),
            MetaOp::Link {
                ino: f,
                new_parent: d,
                new_name: name,
            },
            errno,
        );
    }
}

#[test]
fn link_count_is_bounded() {
    let mut fx = Fx::new();
    let f = fx.create(ROOT, "f");
    let creds = root();
    for i in 1..LINK_MAX {
        let req = MetaRequest {
            op: MetaOp::Link {
                ino: f,
                new_parent: ROOT,
                new_name: format!("l{i}").into_bytes(),
            },
            creds: creds.clone(),
            now: 5,
        };
        fx.index += 1;
        fx.ns.execute(fx.index, &req).expect("link");
    }
    assert_eq!(fx.stat(f).nlink, LINK_MAX);
    fx.ns.check_invariants().expect("invariants");
    fx.fails(
        root(),
        MetaOp::Link {
            ino: f,
            new_parent: ROOT,
            new_name: n("one-more"),
        },
        Errno::EMLINK,
    );
}
