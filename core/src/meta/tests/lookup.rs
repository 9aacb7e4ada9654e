use super::*;

#[test]
fn lookup_dot_dotdot_and_errors() {
    let mut fx = Fx::new();
    let d = fx.mkdir(ROOT, "d");
    let f = fx.create(d, "f");
    assert_eq!(fx.lookup(d, "f"), Ok(f));
    assert_eq!(fx.lookup(d, "."), Ok(d));
    assert_eq!(fx.lookup(d, ".."), Ok(ROOT));
    assert_eq!(fx.lookup(ROOT, ".."), Ok(ROOT));
    assert_eq!(fx.lookup(d, "g"), Err(Errno::ENOENT));
    assert_eq!(fx.lookup(f, "g"), Err(Errno::ENOTDIR));
    assert_eq!(fx.lookup(Ino(9_999_999), "g"), Err(Errno::ENOENT));
    assert_eq!(fx.ns.lookup(&root(), d, b""), Err(Errno::EINVAL));
    assert_eq!(fx.ns.lookup(&root(), d, b"a/b"), Err(Errno::EINVAL));
    assert_eq!(
        fx.ns.lookup(&root(), d, &[b'a'; 256]),
        Err(Errno::ENAMETOOLONG)
    );
    let closed = fx.mkdir_as(alice(), ROOT, "closed", 0o700);
    assert_eq!(fx.ns.lookup(&bob(), closed, b"x"), Err(Errno::EACCES));
    // Through the log too.
    fx.fails(
        bob(),
        MetaOp::Lookup {
            parent: closed,
            name: n("x"),
        },
        Errno::EACCES,
    );
    assert_eq!(
        fx.ok(MetaOp::Lookup {
            parent: d,
            name: n("f")
        }),
        MetaReply::Found(Found::Local(fx.stat(f)))
    );
    assert_eq!(fx.ok(MetaOp::Stat { ino: f }), MetaReply::Attr(fx.stat(f)));
    fx.fails(root(), MetaOp::Stat { ino: Ino(4_242) }, Errno::ENOENT);
}

#[test]
fn readdir_pages_direct_children_in_name_order() {
    let mut fx = Fx::new();
    let d = fx.mkdir(ROOT, "d");
    for name in ["c", "a", "e", "b", "d"] {
        fx.create(d, name);
    }
    let sub = fx.mkdir(d, "sub");
    fx.create(sub, "deep");
    let creds = root();
    let page = fx.ns.readdir(&creds, d, None, 2).expect("readdir");
    let names: Vec<&[u8]> = page.entries.iter().map(|e| &e.name[..]).collect();
    assert_eq!((names, page.more), (vec![&b"a"[..], b"b"], true));
    let page = fx.ns.readdir(&creds, d, Some(b"b"), 3).expect("readdir");
    let names: Vec<&[u8]> = page.entries.iter().map(|e| &e.name[..]).collect();
    assert_eq!((names, page.more), (vec![&b"c"[..], b"d", b"e"], true));
    let page = fx.ns.readdir(&creds, d, Some(b"e"), 3).expect("readdir");
    assert_eq!(page.entries.len(), 1);
    assert_eq!(
        (page.entries[0].ino, page.entries[0].kind, page.more),
        (sub, FileType::Dir, false)
    );
    // A cursor that is not an entry still works: the next name after it.
    let page = fx.ns.readdir(&creds, d, Some(b"bb"), 1).expect("readdir");
    assert_eq!(page.entries[0].name, n("c"));
    // An empty directory right after a full one in inode order.
    let empty = fx.mkdir(ROOT, "empty");
    assert_eq!(
        fx.ns
            .readdir(&creds, empty, None, 10)
            .map(|p| p.entries.len()),
        Ok(0)
    );
    let op = |dir, limit| MetaOp::Readdir {
        dir,
        after: None,
        limit,
    };
    fx.fails(root(), op(d, 0), Errno::EINVAL);
    fx.fails(root(), op(d, 1025), Errno::EINVAL);
    let f = fx.lookup(d, "a").expect("a");
    fx.fails(root(), op(f, 10), Errno::ENOTDIR);
    fx.fails(root(), op(Ino(31_337), 10), Errno::ENOENT);
    let bad_cursor = MetaOp::Readdir {
        dir: d,
        after: Some(n("x/y")),
        limit: 1,
    };
    fx.fails(root(), bad_cursor, Errno::EINVAL);
    let unreadable = fx.mkdir_as(alice(), ROOT, "unreadable", 0o311);
    fx.fails(bob(), op(unreadable, 10), Errno::EACCES);
    assert!(matches!(fx.ok(op(d, 10)), MetaReply::Dir(p) if p.entries.len() == 6));
}

#[test]
fn paths_resolve_with_symlinks_dots_and_permissions() {
    let mut fx = Fx::new();
    let a = fx.mkdir(ROOT, "a");
    let b = fx.mkdir(a, "b");
    let f = fx.create(b, "f");
    fx.ok(MetaOp::Symlink {
        parent: ROOT,
        name: n("abs"),
        target: n("/a/b"),
    });
    fx.ok(MetaOp::Symlink {
        parent: a,
        name: n("rel"),
        target: n("b/f"),
    });
    fx.ok(MetaOp::Symlink {
        parent: ROOT,
        name: n("loop"),
        target: n("loop"),
    });
    let ino = |r: MetaResult<Found>| match r {
        Ok(Found::Local(a)) => Ok(a.ino),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    };
    let c = root();
    assert_eq!(ino(fx.ns.lookup_path(&c, b"/", true)), Ok(ROOT));
    assert_eq!(ino(fx.ns.lookup_path(&c, b"//a/./b/../b/f", true)), Ok(f));
    assert_eq!(ino(fx.ns.lookup_path(&c, b"/abs/f", false)), Ok(f));
    assert_eq!(ino(fx.ns.lookup_path(&c, b"/a/rel", true)), Ok(f));
    assert_ne!(ino(fx.ns.lookup_path(&c, b"/a/rel", false)), Ok(f));
    assert_eq!(ino(fx.ns.lookup_path(&c, b"/abs/", false)), Ok(b));
    assert_eq!(ino(fx.ns.lookup_path(&c, b"/../a", true)), Ok(a));
    assert_eq!(
        ino(fx.ns.lookup_path(&c, b"/a/b/f/", true)),
        Err(Errno::ENOTDIR)
    );
    assert_eq!(
        ino(fx.ns.lookup_path(&c, b"/a/b/f/x", true)),
        Err(Errno::ENOTDIR)
    );
    assert_eq!(
        ino(fx.ns.lookup_path(&c, b"/a/nope", true)),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        ino(fx.ns.lookup_path(&c, b"/loop", true)),
        Err(Errno::ELOOP)
    );
    assert_eq!(ino(fx.ns.lookup_path(&c, b"", true)), Err(Errno::ENOENT));
    assert_eq!(ino(fx.ns.lookup_path(&c, b"a", true)), Err(Errno::EINVAL));
    assert_eq!(
        ino(fx.ns.lookup_path(&c, &[b'/'; 4096], true)),
        Err(Errno::ENAMETOOLONG)
    );
    let closed = fx.mkdir_as(alice(), ROOT, "closed", 0o700);
    let _ = closed;
    assert_eq!(
        ino(fx.ns.lookup_path(&bob(), b"/closed/x", true)),
        Err(Errno::EACCES)
    );
    let op = MetaOp::LookupPath {
        path: n("/a/b/f"),
        follow: true,
    };
    assert_eq!(fx.ok(op), MetaReply::Found(Found::Local(fx.stat(f))));

    assert_eq!(fx.ns.resolve_parent(&c, b"/a/b/new"), Ok((b, &b"new"[..])));
    assert_eq!(fx.ns.resolve_parent(&c, b"/a/b/"), Ok((a, &b"b"[..])));
    assert_eq!(fx.ns.resolve_parent(&c, b"/x"), Ok((ROOT, &b"x"[..])));
    assert_eq!(fx.ns.resolve_parent(&c, b"/"), Ok((ROOT, &b"."[..])));
    assert_eq!(fx.ns.resolve_parent(&c, b"/a/b/f/x"), Err(Errno::ENOTDIR));
    assert_eq!(fx.ns.resolve_parent(&c, b"/nope/x"), Err(Errno::ENOENT));
}

#[test]
fn access_stat_statfs() {
    let mut fx = Fx::new();
    let f = fx.create_as(alice(), ROOT, "f", 0o640);
    fx.ok(MetaOp::Setattr {
        ino: f,
        set: SetAttr {
            size: Some(100),
            ..SetAttr::default()
        },
    });
    assert_eq!(fx.ns.access(&alice(), f, perm::R_OK | perm::W_OK), Ok(()));
    assert_eq!(fx.ns.access(&bob(), f, perm::R_OK), Err(Errno::EACCES));
    fx.fails(
        bob(),
        MetaOp::Access {
            ino: f,
            mask: perm::R_OK,
        },
        Errno::EACCES,
    );
    fx.fails(bob(), MetaOp::Access { ino: f, mask: 8 }, Errno::EINVAL);
    assert_eq!(
        fx.ok_as(
            alice(),
            MetaOp::Access {
                ino: f,
                mask: perm::R_OK
            }
        ),
        MetaReply::Done
    );
    let s = fx.ns.statfs();
    assert_eq!((s.inodes, s.bytes, s.name_max), (2, 100, 255));
    assert_eq!(s.free_inodes, 10_000 - 1);
    assert_eq!(fx.ok(MetaOp::Statfs), MetaReply::Statfs(s));
}
