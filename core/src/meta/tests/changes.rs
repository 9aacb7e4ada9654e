use super::*;

fn page(fx: &Fx, dir: Ino, since: u64) -> Vec<(u64, Ino, ChangeKind, String)> {
    match fx
        .ns
        .changes(&root(), dir, since, fx.index, 100)
        .expect("changes")
    {
        ChangePage::Page { changes, .. } => changes
            .into_iter()
            .map(|c| {
                (
                    c.index,
                    c.ino,
                    c.kind,
                    String::from_utf8_lossy(&c.name).into_owned(),
                )
            })
            .collect(),
        ChangePage::Truncated { .. } => panic!("truncated"),
    }
}

#[test]
fn every_change_carries_its_index_and_queries_filter_by_subtree() {
    let mut fx = Fx::new();
    let start = fx.index;
    let a = fx.mkdir(ROOT, "a");
    let i_a = fx.index;
    let b = fx.mkdir(a, "b");
    let f = fx.create(b, "f");
    let i_f = fx.index;
    let g = fx.create(ROOT, "g");
    fx.ok(MetaOp::Setattr {
        ino: f,
        set: SetAttr {
            size: Some(9),
            ..SetAttr::default()
        },
    });
    let i_t = fx.index;
    let under_a = page(&fx, a, start);
    assert_eq!(
        under_a,
        vec![
            (i_a, a, ChangeKind::Mkdir, "a".into()),
            (i_a + 1, b, ChangeKind::Mkdir, "b".into()),
            (i_f, f, ChangeKind::Create, "f".into()),
            (i_t, f, ChangeKind::Truncate, String::new()),
        ]
    );
    assert_eq!(page(&fx, b, i_f).len(), 1);
    let all = page(&fx, ROOT, start);
    assert!(all.iter().any(|c| c.1 == g));
    assert_eq!(all.len(), 5);
    // stat shows the sequence numbers.
    let attr = fx.stat(f);
    assert_eq!((attr.meta_seq, attr.data_seq), (i_t, i_t));
    fx.ok(MetaOp::Setattr {
        ino: f,
        set: SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        },
    });
    let attr = fx.stat(f);
    assert_eq!((attr.meta_seq, attr.data_seq), (fx.index, i_t));
    assert_eq!(fx.stat(b).data_seq, i_f);
}

#[test]
fn renames_and_links_show_under_both_directories() {
    let mut fx = Fx::new();
    let a = fx.mkdir(ROOT, "a");
    let b = fx.mkdir(ROOT, "b");
    let f = fx.create(a, "f");
    let since = fx.index;
    fx.ok(MetaOp::Rename {
        parent: a,
        name: n("f"),
        new_parent: b,
        new_name: n("g"),
        noreplace: false,
    });
    assert_eq!(
        page(&fx, a, since),
        vec![(since + 1, f, ChangeKind::RenameFrom, "f".into())]
    );
    assert_eq!(
        page(&fx, b, since),
        vec![(since + 1, f, ChangeKind::RenameTo, "g".into())]
    );
    // A hard-linked file's attribute change shows under each of its directories.
    fx.ok(MetaOp::Link {
        ino: f,
        new_parent: a,
        new_name: n("h"),
    });
    let since = fx.index;
    fx.ok(MetaOp::SetXattr {
        ino: f,
        name: n("user.x"),
        value: n("1"),
        how: XattrHow::Set,
    });
    assert_eq!(page(&fx, a, since).len(), 1);
    assert_eq!(page(&fx, b, since).len(), 1);
}

#[test]
fn failed_operations_and_reads_record_nothing() {
    let mut fx = Fx::new();
    let len = fx.ns.feed().len();
    fx.fails(
        alice(),
        MetaOp::Rmdir {
            parent: ROOT,
            name: n("x"),
        },
        Errno::ENOENT,
    );
    fx.ok(MetaOp::Stat { ino: ROOT });
    assert_eq!(fx.ns.feed().len(), len);
}

#[test]
fn the_feed_is_bounded_and_says_when_to_resync() {
    let mut fx = Fx {
        ns: Namespace::new(ROOT, ChangeFeed::new(3)),
        index: 0,
        now: 0,
    };
    fx.ok(MetaOp::GrantInodes {
        start: 10,
        count: 100,
    });
    for name in ["a", "b", "c", "d", "e"] {
        fx.create(ROOT, name);
    }
    assert_eq!(fx.ns.feed().len(), 3);
    assert_eq!(
        fx.ns.changes(&root(), ROOT, 1, fx.index, 10),
        Ok(ChangePage::Truncated { resync_from: 3 })
    );
    assert_eq!(page(&fx, ROOT, 3).len(), 3);
}

#[test]
fn the_feed_through_the_log_is_capped_at_the_request_s_index() {
    let mut fx = Fx::new();
    let since = fx.index;
    fx.create(ROOT, "a");
    match fx.ok(MetaOp::Changes {
        dir: ROOT,
        since,
        limit: 10,
    }) {
        MetaReply::Changes(ChangePage::Page {
            changes,
            next,
            more,
        }) => {
            assert_eq!((changes.len(), next, more), (1, fx.index, false));
        }
        other => panic!("{other:?}"),
    }
    fx.fails(
        alice(),
        MetaOp::Changes {
            dir: ROOT,
            since,
            limit: 10,
        },
        Errno::EACCES,
    );
    fx.fails(
        root(),
        MetaOp::Changes {
            dir: ROOT,
            since,
            limit: 0,
        },
        Errno::EINVAL,
    );
    fx.fails(
        root(),
        MetaOp::Changes {
            dir: Ino(8_888),
            since,
            limit: 1,
        },
        Errno::ENOENT,
    );
    // Nothing past the committed index a caller names.
    assert_eq!(
        fx.ns.changes(&root(), ROOT, since, since, 10),
        Ok(ChangePage::Page {
            changes: vec![],
            next: since,
            more: false
        })
    );
}
