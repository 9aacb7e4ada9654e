//! Model-based test of the namespace: random operation sequences, by path,
//! against a reference model that keeps the tree as a map from path to node.
//! Every answer (success or errno) must agree, the whole tree (names, types,
//! modes, owners, sizes, link counts and which names share an inode) must
//! agree after every step, the invariants must hold, and a snapshot/restore
//! in the middle of a sequence must change nothing.
//!
//! The model mirrors the documented order of checks; it does not share code
//! with the namespace.

use std::collections::BTreeMap;

use govfs_core::meta::{
    decode_reply, encode_request, Credentials, Errno, FileType, Found, Ino, MetaOp, MetaReply,
    MetaRequest, Namespace, SetAttr, ROOT,
};
use govfs_core::node::App;
use proptest::prelude::*;

type Path = Vec<Vec<u8>>;

const S_ISGID: u32 = 0o2000;
const S_ISVTX: u32 = 0o1000;

#[derive(Clone, Debug)]
struct User {
    uid: u32,
}

impl User {
    fn creds(&self) -> Credentials {
        Credentials::user(self.uid, self.uid)
    }
    fn root(&self) -> bool {
        self.uid == 0
    }
    fn in_group(&self, gid: u32) -> bool {
        self.uid == gid
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    File { size: u64 },
    Dir,
    Symlink,
}

#[derive(Clone, Debug)]
struct Node {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The reference: every path (root is the empty path) to a node id.
#[derive(Clone, Debug)]
struct Model {
    paths: BTreeMap<Path, u64>,
    nodes: BTreeMap<u64, Node>,
    next: u64,
}

type R = Result<(), Errno>;

fn allows(u: &User, n: &Node, mask: u32) -> bool {
    if u.root() {
        return mask & 1 == 0 || n.kind == Kind::Dir || n.mode & 0o111 != 0;
    }
    let shift = if u.uid == n.uid {
        6
    } else if u.in_group(n.gid) {
        3
    } else {
        0
    };
    (n.mode >> shift) & mask == mask
}

fn need(u: &User, n: &Node, mask: u32) -> R {
    if allows(u, n, mask) {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

fn sticky(u: &User, dir: &Node, victim: &Node) -> R {
    if dir.mode & S_ISVTX != 0 && !u.root() && u.uid != victim.uid && u.uid != dir.uid {
        return Err(Errno::EPERM);
    }
    Ok(())
}

/// Name rules: (valid, is dot or dotdot).
fn check_name(name: &[u8]) -> Result<bool, Errno> {
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        return Err(Errno::EINVAL);
    }
    if name.len() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(name == b"." || name == b"..")
}

fn new_name(name: &[u8]) -> R {
    if check_name(name)? {
        return Err(Errno::EEXIST);
    }
    Ok(())
}

fn old_name(name: &[u8]) -> R {
    if check_name(name)? {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

fn join(p: &[Vec<u8>], name: &[u8]) -> Path {
    let mut out = p.to_vec();
    out.push(name.to_vec());
    out
}

impl Model {
    fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            0,
            Node {
                kind: Kind::Dir,
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
        );
        let mut paths = BTreeMap::new();
        paths.insert(Vec::new(), 0);
        Model {
            paths,
            nodes,
            next: 1,
        }
    }

    fn node(&self, p: &Path) -> Option<&Node> {
        self.paths.get(p).map(|id| &self.nodes[id])
    }

    /// A directory path: missing or a (dangling) symlink is ENOENT, a file
    /// ENOTDIR.
    fn resolve_dir(&self, p: &Path) -> R {
        for i in 0..=p.len() {
            match self.node(&p[..i].to_vec()).map(|n| &n.kind) {
                None | Some(Kind::Symlink) => return Err(Errno::ENOENT),
                Some(Kind::File { .. }) => return Err(Errno::ENOTDIR),
                Some(Kind::Dir) => {}
            }
        }
        Ok(())
    }

    fn resolve(&self, p: &Path) -> R {
        self.resolve_dir(&p[..p.len() - 1].to_vec())?;
        self.paths.get(p).map(|_| ()).ok_or(Errno::ENOENT)
    }

    fn children(&self, p: &Path) -> Vec<Path> {
        self.paths
            .keys()
            .filter(|k| k.len() == p.len() + 1 && k.starts_with(p))
            .cloned()
            .collect()
    }

    fn add(&mut self, path: Path, node: Node) {
        let id = self.next;
        self.next += 1;
        self.nodes.insert(id, node);
        self.paths.insert(path, id);
    }

    fn drop_path(&mut self, p: &Path) {
        let id = self.paths.remove(p).expect("present");
        if !self.paths.values().any(|&v| v == id) {
            self.nodes.remove(&id);
        }
    }

    /// Owner and group of something new in `dir`, with the set-group-ID rules.
    fn fresh(&self, u: &User, dir: &Node, kind: Kind, mode: u32) -> Node {
        let inherit = dir.mode & S_ISGID != 0;
        let gid = if inherit { dir.gid } else { u.uid };
        let mut mode = mode;
        if kind == Kind::Dir && inherit {
            mode |= S_ISGID;
        } else if mode & S_ISGID != 0 && !u.root() && !u.in_group(gid) {
            mode &= !S_ISGID;
        }
        Node {
            kind,
            mode,
            uid: u.uid,
            gid,
        }
    }

    fn check_new(&self, u: &User, parent: &Path, name: &[u8]) -> Result<Node, Errno> {
        let dir = self.node(parent).expect("resolved").clone();
        need(u, &dir, 1)?;
        if self.paths.contains_key(&join(parent, name)) {
            return Err(Errno::EEXIST);
        }
        need(u, &dir, 2)?;
        Ok(dir)
    }

    fn mkdir(&mut self, u: &User, parent: &Path, name: &[u8], mode: u32) -> R {
        new_name(name)?;
        let dir = self.check_new(u, parent, name)?;
        let node = self.fresh(u, &dir, Kind::Dir, mode);
        self.add(join(parent, name), node);
        Ok(())
    }

    fn create(&mut self, u: &User, parent: &Path, name: &[u8], mode: u32, excl: bool) -> R {
        new_name(name)?;
        let dir = self.node(parent).expect("resolved").clone();
        need(u, &dir, 1)?;
        if let Some(existing) = self.node(&join(parent, name)) {
            return match existing.kind {
                _ if excl => Err(Errno::EEXIST),
                Kind::Dir => Err(Errno::EISDIR),
                Kind::Symlink => Err(Errno::EEXIST),
                Kind::File { .. } => Ok(()),
            };
        }
        need(u, &dir, 2)?;
        let node = self.fresh(u, &dir, Kind::File { size: 0 }, mode);
        self.add(join(parent, name), node);
        Ok(())
    }

    fn symlink(&mut self, u: &User, parent: &Path, name: &[u8]) -> R {
        new_name(name)?;
        let dir = self.check_new(u, parent, name)?;
        let mut node = self.fresh(u, &dir, Kind::Symlink, 0o777);
        node.mode = 0o777;
        self.add(join(parent, name), node);
        Ok(())
    }

    fn link(&mut self, u: &User, src: &Path, parent: &Path, name: &[u8]) -> R {
        new_name(name)?;
        self.check_new(u, parent, name)?;
        let id = self.paths[src];
        if self.nodes[&id].kind == Kind::Dir {
            return Err(Errno::EPERM);
        }
        self.paths.insert(join(parent, name), id);
        Ok(())
    }

    fn check_remove(&self, u: &User, parent: &Path, name: &[u8]) -> Result<(Node, Node), Errno> {
        old_name(name)?;
        let dir = self.node(parent).expect("resolved").clone();
        need(u, &dir, 1)?;
        let victim = self.node(&join(parent, name)).ok_or(Errno::ENOENT)?.clone();
        need(u, &dir, 3)?;
        sticky(u, &dir, &victim)?;
        Ok((dir, victim))
    }

    fn unlink(&mut self, u: &User, parent: &Path, name: &[u8]) -> R {
        let (_, victim) = self.check_remove(u, parent, name)?;
        if victim.kind == Kind::Dir {
            return Err(Errno::EISDIR);
        }
        self.drop_path(&join(parent, name));
        Ok(())
    }

    fn rmdir(&mut self, u: &User, parent: &Path, name: &[u8]) -> R {
        let (_, victim) = self.check_remove(u, parent, name)?;
        let path = join(parent, name);
        if victim.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        if !self.children(&path).is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        self.drop_path(&path);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn rename(
        &mut self,
        u: &User,
        p1: &Path,
        n1: &[u8],
        p2: &Path,
        n2: &[u8],
        noreplace: bool,
    ) -> R {
        old_name(n1)?;
        old_name(n2)?;
        let d1 = self.node(p1).expect("resolved").clone();
        let d2 = self.node(p2).expect("resolved").clone();
        need(u, &d1, 1)?;
        need(u, &d2, 1)?;
        let (src, dst) = (join(p1, n1), join(p2, n2));
        let s = self.node(&src).ok_or(Errno::ENOENT)?.clone();
        let d = self.node(&dst).cloned();
        if noreplace && d.is_some() {
            return Err(Errno::EEXIST);
        }
        if d.is_some() && self.paths[&src] == self.paths[&dst] {
            return Ok(());
        }
        need(u, &d1, 2)?;
        need(u, &d2, 2)?;
        sticky(u, &d1, &s)?;
        if let Some(d) = &d {
            sticky(u, &d2, d)?;
        }
        let same_parent = self.paths[p1] == self.paths[p2];
        if s.kind == Kind::Dir {
            if p2.starts_with(&src) {
                return Err(Errno::EINVAL);
            }
            if !same_parent {
                need(u, &s, 2)?;
            }
        }
        if let Some(d) = &d {
            match (s.kind == Kind::Dir, d.kind == Kind::Dir) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !self.children(&dst).is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
            self.drop_path(&dst);
        }
        let moved: Vec<(Path, u64)> = self
            .paths
            .iter()
            .filter(|(k, _)| k.starts_with(&src))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (k, _) in &moved {
            self.paths.remove(k);
        }
        for (k, v) in moved {
            let mut new = dst.clone();
            new.extend_from_slice(&k[src.len()..]);
            self.paths.insert(new, v);
        }
        Ok(())
    }

    fn chmod(&mut self, u: &User, path: &Path, mode: u32) -> R {
        let id = self.paths[path];
        let node = self.nodes.get_mut(&id).expect("node");
        if !u.root() && u.uid != node.uid {
            return Err(Errno::EPERM);
        }
        let keep = u.root() || u.in_group(node.gid);
        node.mode = if keep { mode } else { mode & !S_ISGID };
        Ok(())
    }

    fn truncate(&mut self, u: &User, path: &Path, size: u64) -> R {
        let id = self.paths[path];
        let node = self.nodes.get_mut(&id).expect("node");
        match node.kind {
            Kind::Dir => return Err(Errno::EISDIR),
            Kind::Symlink => return Err(Errno::EINVAL),
            Kind::File { .. } => {}
        }
        need(u, node, 2)?;
        node.kind = Kind::File { size };
        Ok(())
    }

    /// What a tree walk shows: per path, (type, mode, uid, gid, size,
    /// nlink, first path of the same inode).
    fn view(&self) -> BTreeMap<Path, Seen> {
        let mut first: BTreeMap<u64, Path> = BTreeMap::new();
        let mut links: BTreeMap<u64, u32> = BTreeMap::new();
        for (p, id) in &self.paths {
            first.entry(*id).or_insert_with(|| p.clone());
            *links.entry(*id).or_default() += 1;
        }
        self.paths
            .iter()
            .filter(|(p, _)| !p.is_empty())
            .map(|(p, id)| {
                let n = &self.nodes[id];
                let (kind, size, nlink) = match n.kind {
                    Kind::File { size } => (FileType::File, size, links[id]),
                    Kind::Symlink => (FileType::Symlink, 1, links[id]),
                    Kind::Dir => {
                        let subdirs = self
                            .children(p)
                            .iter()
                            .filter(|c| self.node(c).map(|n| &n.kind) == Some(&Kind::Dir))
                            .count();
                        (FileType::Dir, 0, 2 + subdirs as u32)
                    }
                };
                let seen = Seen {
                    kind,
                    mode: n.mode,
                    uid: n.uid,
                    gid: n.gid,
                    size,
                    nlink,
                    same_as: first[id].clone(),
                };
                (p.clone(), seen)
            })
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Seen {
    kind: FileType,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    nlink: u32,
    same_as: Path,
}

/// The namespace under test, driven through `App::apply`.
struct Sut {
    ns: Namespace,
    index: u64,
}

fn path_bytes(p: &[Vec<u8>]) -> Vec<u8> {
    if p.is_empty() {
        return b"/".to_vec();
    }
    let mut out = Vec::new();
    for c in p {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    out
}

impl Sut {
    fn run(&mut self, u: &User, op: MetaOp) -> Result<MetaReply, Errno> {
        self.index += 1;
        let req = MetaRequest {
            op,
            creds: u.creds(),
            now: self.index as i64,
        };
        let out = self.ns.apply(self.index, &encode_request(&req));
        decode_reply(&out).expect("answers decode")
    }

    fn resolve(&self, p: &[Vec<u8>], follow: bool) -> Result<(Ino, FileType), Errno> {
        match self
            .ns
            .lookup_path(&Credentials::root(), &path_bytes(p), follow)?
        {
            Found::Local(a) => Ok((a.ino, a.kind)),
            Found::Foreign { .. } => panic!("no foreign subtrees here"),
        }
    }

    fn resolve_dir(&self, p: &[Vec<u8>]) -> Result<Ino, Errno> {
        match self.resolve(p, true)? {
            (ino, FileType::Dir) => Ok(ino),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn view(&self) -> BTreeMap<Path, Seen> {
        let mut out = BTreeMap::new();
        let mut stack = vec![(Vec::new(), ROOT)];
        while let Some((path, dir)) = stack.pop() {
            let page = self
                .ns
                .readdir(&Credentials::root(), dir, None, 1024)
                .expect("readdir");
            assert!(!page.more);
            for e in page.entries {
                let p = join(&path, &e.name);
                let a = self.ns.stat(e.ino).expect("stat");
                assert_eq!(a.kind, e.kind);
                if a.kind == FileType::Dir {
                    stack.push((p.clone(), e.ino));
                }
                out.insert(p, (a, e.ino));
            }
        }
        // The smallest path per inode names it, as in the model.
        let mut smallest: BTreeMap<Ino, Path> = BTreeMap::new();
        for (p, (_, ino)) in &out {
            smallest.entry(*ino).or_insert_with(|| p.clone());
        }
        out.into_iter()
            .map(|(p, (a, ino))| {
                let seen = Seen {
                    kind: a.kind,
                    mode: a.mode,
                    uid: a.uid,
                    gid: a.gid,
                    size: a.size,
                    nlink: a.nlink,
                    same_as: smallest[&ino].clone(),
                };
                (p, seen)
            })
            .collect()
    }
}

#[derive(Clone, Debug)]
enum Step {
    Mkdir(Path, u32, usize),
    Create(Path, u32, bool, usize),
    Symlink(Path, usize),
    Link(Path, Path, usize),
    Unlink(Path, usize),
    Rmdir(Path, usize),
    Rename(Path, Path, bool, usize),
    Chmod(Path, u32, usize),
    Truncate(Path, u64, usize),
    Restore,
}

const USERS: [u32; 3] = [0, 1000, 1001];

fn good_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"a".to_vec()),
        Just(b"b".to_vec()),
        Just(b"c".to_vec())
    ]
}

/// Names of parent directories: fewer, so that more paths exist.
fn dir_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(b"a".to_vec()), Just(b"b".to_vec())]
}

fn any_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        30 => good_name(),
        1 => Just(Vec::new()),
        1 => Just(b".".to_vec()),
        1 => Just(b"..".to_vec()),
        1 => Just(b"x/y".to_vec()),
        1 => Just(b"n\0l".to_vec()),
        1 => Just(vec![b'l'; 256]),
    ]
}

/// A path of good names whose last name may be bad.
fn target_path() -> impl Strategy<Value = Path> {
    (parent_path(), any_name()).prop_map(|(mut p, last)| {
        p.push(last);
        p
    })
}

/// Shallow paths mostly, so that most of them exist.
fn parent_path() -> impl Strategy<Value = Path> {
    prop_oneof![
        3 => Just(Vec::new()),
        3 => prop::collection::vec(dir_name(), 1),
        2 => prop::collection::vec(dir_name(), 2),
        1 => prop::collection::vec(dir_name(), 3),
    ]
}

fn good_path() -> impl Strategy<Value = Path> {
    (parent_path(), good_name()).prop_map(|(mut p, last)| {
        p.push(last);
        p
    })
}

fn dir_mode() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0o755),
        Just(0o777),
        Just(0o700),
        Just(0o555),
        Just(0o1777),
        Just(0o2777)
    ]
}

fn file_mode() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0o644), Just(0o600), Just(0o666), Just(0o2755)]
}

fn step() -> impl Strategy<Value = Step> {
    let user = 0..USERS.len();
    prop_oneof![
        4 => (target_path(), dir_mode(), user.clone()).prop_map(|(p, m, u)| Step::Mkdir(p, m, u)),
        4 => (target_path(), file_mode(), any::<bool>(), user.clone())
            .prop_map(|(p, m, x, u)| Step::Create(p, m, x, u)),
        1 => (target_path(), user.clone()).prop_map(|(p, u)| Step::Symlink(p, u)),
        2 => (good_path(), target_path(), user.clone()).prop_map(|(s, d, u)| Step::Link(s, d, u)),
        2 => (target_path(), user.clone()).prop_map(|(p, u)| Step::Unlink(p, u)),
        2 => (target_path(), user.clone()).prop_map(|(p, u)| Step::Rmdir(p, u)),
        4 => (target_path(), target_path(), any::<bool>(), user.clone())
            .prop_map(|(s, d, x, u)| Step::Rename(s, d, x, u)),
        2 => (good_path(), prop_oneof![dir_mode(), file_mode()], user.clone())
            .prop_map(|(p, m, u)| Step::Chmod(p, m, u)),
        1 => (good_path(), 0u64..1_000_000, user).prop_map(|(p, s, u)| Step::Truncate(p, s, u)),
        1 => Just(Step::Restore),
    ]
}

fn split(p: &Path) -> (Path, Vec<u8>) {
    let mut parent = p.clone();
    let name = parent.pop().expect("paths are not empty");
    (parent, name)
}

/// Runs one step on both; panics on any disagreement.
fn check_step(model: &mut Model, sut: &mut Sut, step: &Step) {
    let user = |i: usize| User { uid: USERS[i] };
    // Resolve a parent directory in both; they must agree.
    let parent = |model: &Model, sut: &Sut, p: &Path| -> Option<Ino> {
        let m = model.resolve_dir(p);
        let s = sut.resolve_dir(p);
        assert_eq!(m.err(), s.err(), "resolving {p:?}");
        s.ok()
    };
    let whole = |model: &Model, sut: &Sut, p: &Path| -> Option<Ino> {
        let m = model.resolve(p);
        let s = sut.resolve(p, false);
        assert_eq!(m.err(), s.as_ref().err().copied(), "resolving {p:?}");
        s.ok().map(|(ino, _)| ino)
    };
    let (expected, got) = match step {
        Step::Restore => {
            let bytes = sut.ns.snapshot();
            sut.ns = Namespace::restore(&bytes).expect("restores");
            assert!(sut.ns.snapshot() == bytes, "snapshot round trip");
            return;
        }
        Step::Mkdir(p, mode, u) | Step::Create(p, mode, _, u) => {
            let (pp, name) = split(p);
            let Some(dir) = parent(model, sut, &pp) else {
                return;
            };
            let u = user(*u);
            if let Step::Create(_, _, excl, _) = step {
                let op = MetaOp::Create {
                    parent: dir,
                    name: name.clone(),
                    mode: *mode,
                    exclusive: *excl,
                    layout: None,
                };
                (model.create(&u, &pp, &name, *mode, *excl), sut.run(&u, op))
            } else {
                let op = MetaOp::Mkdir {
                    parent: dir,
                    name: name.clone(),
                    mode: *mode,
                };
                (model.mkdir(&u, &pp, &name, *mode), sut.run(&u, op))
            }
        }
        Step::Symlink(p, u) => {
            let (pp, name) = split(p);
            let Some(dir) = parent(model, sut, &pp) else {
                return;
            };
            let u = user(*u);
            // Targets never resolve ("t" is not a name the test makes).
            let op = MetaOp::Symlink {
                parent: dir,
                name: name.clone(),
                target: b"t".to_vec(),
            };
            (model.symlink(&u, &pp, &name), sut.run(&u, op))
        }
        Step::Link(src, dst, u) => {
            let Some(ino) = whole(model, sut, src) else {
                return;
            };
            let (pp, name) = split(dst);
            let Some(dir) = parent(model, sut, &pp) else {
                return;
            };
            let u = user(*u);
            let op = MetaOp::Link {
                ino,
                new_parent: dir,
                new_name: name.clone(),
            };
            (model.link(&u, src, &pp, &name), sut.run(&u, op))
        }
        Step::Unlink(p, u) | Step::Rmdir(p, u) => {
            let (pp, name) = split(p);
            let Some(dir) = parent(model, sut, &pp) else {
                return;
            };
            let u = user(*u);
            if matches!(step, Step::Unlink(..)) {
                let op = MetaOp::Unlink {
                    parent: dir,
                    name: name.clone(),
                };
                (model.unlink(&u, &pp, &name), sut.run(&u, op))
            } else {
                let op = MetaOp::Rmdir {
                    parent: dir,
                    name: name.clone(),
                };
                (model.rmdir(&u, &pp, &name), sut.run(&u, op))
            }
        }
        Step::Rename(src, dst, noreplace, u) => {
            let (p1, n1) = split(src);
            let (p2, n2) = split(dst);
            let Some(d1) = parent(model, sut, &p1) else {
                return;
            };
            let Some(d2) = parent(model, sut, &p2) else {
                return;
            };
            let u = user(*u);
            let op = MetaOp::Rename {
                parent: d1,
                name: n1.clone(),
                new_parent: d2,
                new_name: n2.clone(),
                noreplace: *noreplace,
            };
            (
                model.rename(&u, &p1, &n1, &p2, &n2, *noreplace),
                sut.run(&u, op),
            )
        }
        Step::Chmod(p, mode, u) => {
            let Some(ino) = whole(model, sut, p) else {
                return;
            };
            let u = user(*u);
            let set = SetAttr {
                mode: Some(*mode),
                ..SetAttr::default()
            };
            (
                model.chmod(&u, p, *mode),
                sut.run(&u, MetaOp::Setattr { ino, set }),
            )
        }
        Step::Truncate(p, size, u) => {
            let Some(ino) = whole(model, sut, p) else {
                return;
            };
            let u = user(*u);
            let set = SetAttr {
                size: Some(*size),
                ..SetAttr::default()
            };
            (
                model.truncate(&u, p, *size),
                sut.run(&u, MetaOp::Setattr { ino, set }),
            )
        }
    };
    assert_eq!(expected, got.map(|_| ()), "{step:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn meta_namespace_agrees_with_the_model(steps in prop::collection::vec(step(), 1..120)) {
        let mut model = Model::new();
        let mut sut = Sut { ns: Namespace::default(), index: 0 };
        let root = User { uid: 0 };
        sut.run(&root, MetaOp::GrantInodes { start: 100, count: 1_000_000 }).expect("grant");
        let set = SetAttr { mode: Some(0o777), ..SetAttr::default() };
        sut.run(&root, MetaOp::Setattr { ino: ROOT, set }).expect("chmod root");
        for step in &steps {
            check_step(&mut model, &mut sut, step);
            sut.ns.check_invariants().expect("invariants");
            prop_assert_eq!(model.view(), sut.view(), "after {:?}", step);
        }
    }
}

/// A directory moved into its own subtree, at any depth, is EINVAL and
/// changes nothing.
#[test]
fn meta_rename_into_own_subtree_is_einval_at_any_depth() {
    let root = User { uid: 0 };
    let mut sut = Sut {
        ns: Namespace::default(),
        index: 0,
    };
    sut.run(
        &root,
        MetaOp::GrantInodes {
            start: 100,
            count: 1000,
        },
    )
    .expect("grant");
    let mut chain = vec![ROOT];
    for depth in 0..8 {
        let parent = *chain.last().expect("root");
        let op = MetaOp::Mkdir {
            parent,
            name: format!("d{depth}").into_bytes(),
            mode: 0o755,
        };
        match sut.run(&root, op) {
            Ok(MetaReply::Attr(a)) => chain.push(a.ino),
            other => panic!("{other:?}"),
        }
    }
    for (i, &moved_parent) in chain.iter().enumerate().take(chain.len() - 1) {
        let name = format!("d{i}").into_bytes();
        for &into in &chain[i + 1..] {
            let before = sut.ns.snapshot();
            let op = MetaOp::Rename {
                parent: moved_parent,
                name: name.clone(),
                new_parent: into,
                new_name: b"x".to_vec(),
                noreplace: false,
            };
            assert_eq!(sut.run(&root, op), Err(Errno::EINVAL));
            assert!(sut.ns.snapshot() == before);
        }
    }
    sut.ns.check_invariants().expect("invariants");
}
