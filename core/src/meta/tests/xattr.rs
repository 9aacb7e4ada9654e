use super::*;
use crate::meta::name::{XATTR_TOTAL_MAX, XATTR_VALUE_MAX};

fn setx(ino: Ino, name: &str, value: &[u8], how: XattrHow) -> MetaOp {
    MetaOp::SetXattr {
        ino,
        name: n(name),
        value: value.to_vec(),
        how,
    }
}

#[test]
fn set_get_list_remove() {
    let mut fx = Fx::new();
    let f = fx.create_as(alice(), ROOT, "f", 0o644);
    fx.ok_as(alice(), setx(f, "user.b", b"2", XattrHow::Set));
    fx.ok_as(alice(), setx(f, "user.a", b"1", XattrHow::Create));
    fx.ok_as(alice(), setx(f, "user.a", b"one", XattrHow::Replace));
    fx.ok(setx(f, "trusted.t", b"t", XattrHow::Set));
    assert_eq!(fx.stat(f).ctime, fx.now);
    assert_eq!(fx.ns.getxattr(&bob(), f, b"user.a"), Ok(n("one")));
    assert_eq!(
        fx.ok_as(
            bob(),
            MetaOp::GetXattr {
                ino: f,
                name: n("user.b")
            }
        ),
        MetaReply::Value(n("2"))
    );
    assert_eq!(
        fx.ns.listxattr(&bob(), f),
        Ok(vec![n("user.a"), n("user.b")])
    );
    assert_eq!(
        fx.ns.listxattr(&root(), f),
        Ok(vec![n("trusted.t"), n("user.a"), n("user.b")])
    );
    assert_eq!(
        fx.ok(MetaOp::ListXattr { ino: f }),
        MetaReply::Names(vec![n("trusted.t"), n("user.a"), n("user.b")])
    );
    assert_eq!(fx.ns.getxattr(&bob(), f, b"trusted.t"), Err(Errno::ENODATA));
    assert_eq!(fx.ns.getxattr(&root(), f, b"trusted.t"), Ok(n("t")));
    fx.ok_as(
        alice(),
        MetaOp::RemoveXattr {
            ino: f,
            name: n("user.a"),
        },
    );
    assert_eq!(fx.ns.getxattr(&alice(), f, b"user.a"), Err(Errno::ENODATA));
}

#[test]
fn xattr_errors_change_nothing() {
    let mut fx = Fx::new();
    let f = fx.create_as(alice(), ROOT, "f", 0o640);
    fx.ok_as(alice(), setx(f, "user.a", b"1", XattrHow::Set));
    fx.fails(
        alice(),
        setx(f, "user.a", b"1", XattrHow::Create),
        Errno::EEXIST,
    );
    fx.fails(
        alice(),
        setx(f, "user.z", b"1", XattrHow::Replace),
        Errno::ENODATA,
    );
    fx.fails(
        alice(),
        MetaOp::RemoveXattr {
            ino: f,
            name: n("user.z"),
        },
        Errno::ENODATA,
    );
    fx.fails(bob(), setx(f, "user.a", b"2", XattrHow::Set), Errno::EACCES);
    fx.fails(
        bob(),
        MetaOp::RemoveXattr {
            ino: f,
            name: n("user.a"),
        },
        Errno::EACCES,
    );
    fx.fails(
        bob(),
        MetaOp::GetXattr {
            ino: f,
            name: n("user.a"),
        },
        Errno::EACCES,
    );
    fx.fails(
        alice(),
        setx(f, "trusted.x", b"2", XattrHow::Set),
        Errno::EPERM,
    );
    fx.fails(alice(), setx(f, "", b"2", XattrHow::Set), Errno::ERANGE);
    fx.fails(
        alice(),
        MetaOp::SetXattr {
            ino: f,
            name: vec![b'u'; 256],
            value: n("v"),
            how: XattrHow::Set,
        },
        Errno::ERANGE,
    );
    fx.fails(
        alice(),
        MetaOp::SetXattr {
            ino: f,
            name: b"user.\0".to_vec(),
            value: n("v"),
            how: XattrHow::Set,
        },
        Errno::EINVAL,
    );
    fx.fails(
        alice(),
        setx(f, "user.big", &vec![0; XATTR_VALUE_MAX + 1], XattrHow::Set),
        Errno::E2BIG,
    );
    fx.fails(
        alice(),
        setx(Ino(12_345), "user.a", b"1", XattrHow::Set),
        Errno::ENOENT,
    );
    fx.fails(
        alice(),
        MetaOp::ListXattr { ino: Ino(12_345) },
        Errno::ENOENT,
    );
    // The per-inode total is bounded.
    fx.ok_as(
        alice(),
        setx(
            f,
            "user.big",
            &vec![0; XATTR_VALUE_MAX - 100],
            XattrHow::Set,
        ),
    );
    let room = XATTR_TOTAL_MAX - (XATTR_VALUE_MAX - 100) - "user.big".len() - "user.a".len() - 1;
    fx.fails(
        alice(),
        setx(f, "user.c", &vec![0; room], XattrHow::Set),
        Errno::ENOSPC,
    );
    fx.ok_as(
        alice(),
        setx(f, "user.c", &vec![0; room - "user.c".len()], XattrHow::Set),
    );
    // Replacing counts the new value, not the old one.
    fx.ok_as(
        alice(),
        setx(
            f,
            "user.c",
            &vec![1; room - "user.c".len()],
            XattrHow::Replace,
        ),
    );
}
