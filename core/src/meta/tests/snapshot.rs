use super::*;

fn populated() -> Fx {
    let mut fx = Fx::new();
    let d = fx.mkdir(ROOT, "d");
    let f = fx.create(d, "f");
    fx.ok(MetaOp::Link {
        ino: f,
        new_parent: ROOT,
        new_name: n("f2"),
    });
    fx.ok(MetaOp::Symlink {
        parent: d,
        name: n("s"),
        target: n("f"),
    });
    fx.ok(MetaOp::SetXattr {
        ino: f,
        name: n("user.a"),
        value: n("v"),
        how: XattrHow::Set,
    });
    fx.ok(MetaOp::Setattr {
        ino: f,
        set: SetAttr {
            size: Some(77),
            ..SetAttr::default()
        },
    });
    fx.ok(MetaOp::Mount {
        parent: d,
        name: n("m"),
        root: ForeignRoot {
            ino: Ino(1 << 50),
            ministry: 2,
        },
    });
    fx
}

#[test]
fn snapshot_round_trips() {
    let fx = populated();
    let bytes = fx.ns.snapshot();
    let back = Namespace::restore(&bytes).expect("restores");
    assert!(back.snapshot() == bytes);
    assert_eq!(back.statfs(), fx.ns.statfs());
    assert_eq!(back.feed(), fx.ns.feed());
}

#[test]
fn restored_namespace_keeps_working() {
    let fx = populated();
    let mut back = Fx {
        ns: Namespace::restore(&fx.ns.snapshot()).expect("restores"),
        index: fx.index,
        now: fx.now,
    };
    let g = back.create(ROOT, "g");
    assert_eq!(back.lookup(ROOT, "g"), Ok(g));
}

#[test]
fn garbage_and_truncated_snapshots_are_refused() {
    let bytes = populated().ns.snapshot();
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        assert!(Namespace::restore(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Namespace::restore(&longer).is_err());
    let mut wrong_version = bytes.clone();
    wrong_version[0] = 9;
    assert!(matches!(
        Namespace::restore_checked(&wrong_version),
        Err(RestoreError::Version(9))
    ));
    // Flipping single bytes must never panic; what decodes must hold.
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        if let Ok(ns) = Namespace::restore(&b) {
            ns.check_invariants().expect("restore checks invariants");
        }
    }
}

#[test]
fn snapshots_that_break_invariants_are_refused() {
    let fx = populated();
    let f = fx.lookup(fx.lookup(ROOT, "d").expect("d"), "f").expect("f");
    let mut ns = Namespace::restore(&fx.ns.snapshot()).expect("restores");
    ns.inode_mut(f).nlink = 5;
    assert!(matches!(
        Namespace::restore_checked(&ns.snapshot()),
        Err(RestoreError::Corrupt(_))
    ));
    assert!(Namespace::restore(&ns.snapshot()).is_err());

    // A directory made its own ancestor.
    let d = fx.lookup(ROOT, "d").expect("d");
    let e = fx.ns.peek_free().expect("free");
    let mut fx2 = Fx {
        ns: Namespace::restore(&fx.ns.snapshot()).expect("restores"),
        index: fx.index,
        now: 0,
    };
    assert_eq!(fx2.mkdir(d, "e"), e);
    let mut ns = Namespace::restore(&fx2.ns.snapshot()).expect("restores");
    ns.inode_mut(d).parent = e;
    assert!(Namespace::restore_checked(&ns.snapshot()).is_err());
}
