//! Unit tests of every operation and error. Every failing operation goes
//! through [`Fx::fails`], which also checks that the snapshot bytes did not
//! change.

mod admin;
mod changes;
mod create;
mod lookup;
mod memory;
mod remove;
mod rename;
mod setattr;
mod snapshot;
mod transfer;
mod xattr;

use super::*;
use crate::node::App;

pub(super) const ALICE: u32 = 1000;
pub(super) const BOB: u32 = 1001;

pub(super) fn root() -> Credentials {
    Credentials::root()
}

pub(super) fn alice() -> Credentials {
    Credentials::user(ALICE, ALICE)
}

pub(super) fn bob() -> Credentials {
    Credentials::user(BOB, BOB)
}

pub(super) fn n(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// A namespace with inode numbers granted, driven through `App::apply`.
pub(super) struct Fx {
    pub ns: Namespace,
    pub index: u64,
    pub now: i64,
}

impl Fx {
    pub fn new() -> Self {
        let mut fx = Fx {
            ns: Namespace::default(),
            index: 0,
            now: 1_000,
        };
        fx.ok(MetaOp::GrantInodes {
            start: 100,
            count: 10_000,
        });
        // A world-writable playground so users can work at the root.
        fx.ok(MetaOp::Setattr {
            ino: ROOT,
            set: SetAttr {
                mode: Some(0o777),
                ..SetAttr::default()
            },
        });
        fx
    }

    /// Applies `op` as `creds` at the next index, through the encoded path.
    pub fn run(&mut self, creds: Credentials, op: MetaOp) -> MetaResult<MetaReply> {
        self.index += 1;
        self.now += 1_000;
        let req = MetaRequest {
            op,
            creds,
            now: self.now,
        };
        let out = self.ns.apply(self.index, &encode_request(&req));
        let result = decode_reply(&out).expect("answers decode");
        self.ns.check_invariants().expect("invariants hold");
        result
    }

    pub fn ok(&mut self, op: MetaOp) -> MetaReply {
        self.ok_as(root(), op)
    }

    pub fn ok_as(&mut self, creds: Credentials, op: MetaOp) -> MetaReply {
        let shown = format!("{op:?}");
        self.run(creds, op)
            .unwrap_or_else(|e| panic!("{shown} failed: {e}"))
    }

    /// `op` fails with `errno` and leaves the state exactly as it was.
    pub fn fails(&mut self, creds: Credentials, op: MetaOp, errno: Errno) {
        let before = self.ns.snapshot();
        let shown = format!("{op:?}");
        assert_eq!(self.run(creds, op), Err(errno), "{shown}");
        assert!(self.ns.snapshot() == before, "{shown} changed the state");
    }

    pub fn mkdir_as(&mut self, creds: Credentials, parent: Ino, name: &str, mode: u32) -> Ino {
        match self.ok_as(
            creds,
            MetaOp::Mkdir {
                parent,
                name: n(name),
                mode,
            },
        ) {
            MetaReply::Attr(a) => a.ino,
            other => panic!("mkdir answered {other:?}"),
        }
    }

    pub fn mkdir(&mut self, parent: Ino, name: &str) -> Ino {
        self.mkdir_as(root(), parent, name, 0o755)
    }

    pub fn create_as(&mut self, creds: Credentials, parent: Ino, name: &str, mode: u32) -> Ino {
        match self.ok_as(
            creds,
            MetaOp::Create {
                parent,
                name: n(name),
                mode,
                exclusive: true,
                layout: None,
            },
        ) {
            MetaReply::Created { attr, created } => {
                assert!(created);
                attr.ino
            }
            other => panic!("create answered {other:?}"),
        }
    }

    pub fn create(&mut self, parent: Ino, name: &str) -> Ino {
        self.create_as(root(), parent, name, 0o644)
    }

    pub fn stat(&self, ino: Ino) -> Attr {
        self.ns.stat(ino).expect("stat")
    }

    pub fn lookup(&self, parent: Ino, name: &str) -> MetaResult<Ino> {
        match self.ns.lookup(&root(), parent, name.as_bytes())? {
            Found::Local(a) => Ok(a.ino),
            Found::Foreign { root, .. } => Ok(root.ino),
        }
    }

    pub fn names(&self, dir: Ino) -> Vec<String> {
        let page = self.ns.readdir(&root(), dir, None, 1024).expect("readdir");
        page.entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect()
    }
}

/// Bad names, each with its error, for an operation creating a name.
pub(super) fn bad_new_names() -> Vec<(Vec<u8>, Errno)> {
    vec![
        (n(""), Errno::EINVAL),
        (n("a/b"), Errno::EINVAL),
        (b"a\0b".to_vec(), Errno::EINVAL),
        (vec![b'x'; 256], Errno::ENAMETOOLONG),
        (n("."), Errno::EEXIST),
        (n(".."), Errno::EEXIST),
    ]
}

/// Bad names for an operation removing or renaming a name.
pub(super) fn bad_old_names() -> Vec<(Vec<u8>, Errno)> {
    vec![
        (n(""), Errno::EINVAL),
        (n("a/b"), Errno::EINVAL),
        (b"a\0b".to_vec(), Errno::EINVAL),
        (vec![b'x'; 256], Errno::ENAMETOOLONG),
        (n("."), Errno::EINVAL),
        (n(".."), Errno::EINVAL),
    ]
}

#[test]
fn a_new_minister_claims_its_inode_range_once() {
    use crate::node::App;
    let mut ns = Namespace::default();
    let grant = ns.on_appointed(3, &[(3 << 40, 1 << 40)]);
    assert_eq!(grant.len(), 1);
    let first: MetaResult<MetaReply> = crate::codec::decode_exact(&ns.apply(1, &grant[0])).unwrap();
    assert_eq!(first, Ok(MetaReply::Done));
    // A later minister proposes the same grant: refused, nothing changes.
    let before = ns.snapshot();
    let again: MetaResult<MetaReply> = crate::codec::decode_exact(&ns.apply(2, &grant[0])).unwrap();
    assert_eq!(again, Err(Errno::EINVAL));
    assert_eq!(ns.snapshot(), before);
}
