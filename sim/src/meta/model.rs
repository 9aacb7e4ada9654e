//! The checker's reference file system for the namespace workload: a tree
//! of nodes, each directory holding its children by name, link counts
//! derived from the tree. Written from POSIX and the order of checks the
//! namespace documents (core/src/meta), sharing no code with `Namespace`:
//! only the request and answer types are common, as they are the contract.
//!
//! It applies one ministry's committed commands in log order with its own
//! exactly-once session table, and answers what every member must answer.
//! It covers what the workload sends (mkdir, create, symlink, unlink, rmdir,
//! rename, chmod, truncate, lookup, stat, readdir, readlink) and the
//! minister's inode grants; any other command is reported, not guessed.

use std::collections::{BTreeMap, VecDeque};

use govfs_core::codec::decode_exact;
use govfs_core::meta::{
    Attr, Credentials, DirEntry, DirPage, Errno, FileType, Found, Ino, Layout, MetaOp, MetaReply,
    MetaRequest, Nanos, SetAttr, ROOT,
};
use govfs_core::node::Proposal;
use govfs_core::raft::Index;

use crate::checker::Violation;

/// An answer: the log index it took effect at, and the reply or errno.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaAnswer {
    pub index: Index,
    pub result: Result<MetaReply, Errno>,
}

const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4095;
const READDIR_MAX: u32 = 1024;
const MODE_BITS: u32 = 0o7777;
const S_ISGID: u32 = 0o2000;
const S_ISVTX: u32 = 0o1000;
const R: u32 = 4;
const W: u32 = 2;
const X: u32 = 1;

#[derive(Clone, Debug)]
struct Node {
    kind: FileType,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    atime: Nanos,
    mtime: Nanos,
    ctime: Nanos,
    meta_seq: Index,
    data_seq: Index,
    /// The directory holding this node's name (the root: itself).
    parent: u64,
    /// A directory's entries.
    children: BTreeMap<Vec<u8>, u64>,
    /// A symlink's target.
    target: Vec<u8>,
}

/// What a name is, for the checks names go through.
#[derive(PartialEq, Eq)]
enum NameIs {
    Dot,
    DotDot,
    Plain,
}

fn name_is(name: &[u8]) -> Result<NameIs, Errno> {
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        return Err(Errno::EINVAL);
    }
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(match name {
        b"." => NameIs::Dot,
        b".." => NameIs::DotDot,
        _ => NameIs::Plain,
    })
}

/// A name to create: "." and ".." exist already.
fn fresh_name(name: &[u8]) -> Result<(), Errno> {
    match name_is(name)? {
        NameIs::Plain => Ok(()),
        _ => Err(Errno::EEXIST),
    }
}

/// A name to remove or rename: never "." or "..".
fn old_name(name: &[u8]) -> Result<(), Errno> {
    match name_is(name)? {
        NameIs::Plain => Ok(()),
        _ => Err(Errno::EINVAL),
    }
}

fn valid_mode(mode: u32) -> Result<(), Errno> {
    if mode & !MODE_BITS != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// POSIX access: root reads and writes anything and searches directories
/// and files with an execute bit; others get exactly one class of bits.
fn allowed(who: &Credentials, n: &Node, mask: u32) -> bool {
    if who.uid == 0 {
        return mask & X == 0 || n.kind == FileType::Dir || n.mode & 0o111 != 0;
    }
    let class = if who.uid == n.uid {
        6
    } else if who.gid == n.gid || who.groups.contains(&n.gid) {
        3
    } else {
        0
    };
    (n.mode >> class) & mask == mask
}

fn need(who: &Credentials, n: &Node, mask: u32) -> Result<(), Errno> {
    if allowed(who, n, mask) {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

/// Sticky directories: only root, the entry's owner or the directory's
/// owner may remove or rename an entry.
fn sticky_ok(who: &Credentials, dir: &Node, victim: &Node) -> Result<(), Errno> {
    if dir.mode & S_ISVTX == 0 || who.uid == 0 || who.uid == victim.uid || who.uid == dir.uid {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// Everything one command needs besides its arguments.
struct Call<'a> {
    index: Index,
    now: Nanos,
    who: &'a Credentials,
}

/// One ministry's file system as the checker believes it.
#[derive(Clone, Debug)]
pub struct FsModel {
    nodes: BTreeMap<u64, Node>,
    /// Granted, unused numbers: `[next, end)` ranges in grant order. Numbers
    /// are never reused.
    free: VecDeque<(u64, u64)>,
    /// Every grant so far ends at or below this.
    granted_to: u64,
    /// Inode -> log index of the committed operation that removed it.
    removed: BTreeMap<u64, Index>,
    /// client -> (last request id applied, its answer).
    sessions: BTreeMap<u64, (u64, MetaAnswer)>,
}

impl Default for FsModel {
    /// A ministry owning "/": root directory 1, uid 0, mode 0755, no numbers.
    fn default() -> Self {
        let root = Node {
            kind: FileType::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            atime: 0,
            mtime: 0,
            ctime: 0,
            meta_seq: 0,
            data_seq: 0,
            parent: ROOT.0,
            children: BTreeMap::new(),
            target: Vec::new(),
        };
        FsModel {
            nodes: BTreeMap::from([(ROOT.0, root)]),
            free: VecDeque::new(),
            granted_to: ROOT.0 + 1,
            removed: BTreeMap::new(),
            sessions: BTreeMap::new(),
        }
    }
}

/// The minister's bootstrap (0) and the president's transfer steps (top
/// bit) number their requests their own way: no session to open first.
fn internal(client: u64) -> bool {
    client == 0 || client >> 63 == 1
}

impl FsModel {
    /// Applies a committed proposal. `None` when it applies nothing: a
    /// request older than the client's last, or one of a session the
    /// model never saw open (ids start at 1).
    pub fn apply(&mut self, index: Index, p: &Proposal) -> Result<Option<MetaAnswer>, Violation> {
        match self.sessions.get(&p.client) {
            Some((seq, answer)) if *seq == p.seq => return Ok(Some(answer.clone())),
            Some((seq, _)) if *seq > p.seq => return Ok(None),
            Some(_) => {}
            None if p.seq > 1 && !internal(p.client) => return Ok(None),
            None => {}
        }
        let result = match decode_exact::<MetaRequest>(&p.command) {
            Ok(request) => self.execute(index, &request)?,
            Err(_) => Err(Errno::EINVAL),
        };
        let answer = MetaAnswer { index, result };
        self.sessions.insert(p.client, (p.seq, answer.clone()));
        Ok(Some(answer))
    }

    fn execute(
        &mut self,
        index: Index,
        request: &MetaRequest,
    ) -> Result<Result<MetaReply, Errno>, Violation> {
        let call = Call {
            index,
            now: request.now,
            who: &request.creds,
        };
        let c = &call;
        let reply = match &request.op {
            MetaOp::GrantInodes { start, count } => self.grant(c, *start, *count),
            MetaOp::Mkdir { parent, name, mode } => self.mkdir(c, parent.0, name, *mode),
            MetaOp::Create {
                parent,
                name,
                mode,
                exclusive,
                layout: None,
            } => self.create(c, parent.0, name, *mode, *exclusive),
            MetaOp::Symlink {
                parent,
                name,
                target,
            } => self.symlink(c, parent.0, name, target),
            MetaOp::Unlink { parent, name } => self.unlink(c, parent.0, name),
            MetaOp::Rmdir { parent, name } => self.rmdir(c, parent.0, name),
            MetaOp::Rename {
                parent,
                name,
                new_parent,
                new_name,
                noreplace,
            } => self.rename(c, parent.0, name, new_parent.0, new_name, *noreplace),
            MetaOp::Setattr { ino, set } => {
                let modelled = SetAttr {
                    mode: set.mode,
                    size: set.size,
                    ..SetAttr::default()
                };
                if *set != modelled {
                    return Err(format!("the meta model does not cover setattr {set:?}"));
                }
                self.setattr(c, ino.0, set.mode, set.size)
            }
            MetaOp::Lookup { parent, name } => self.lookup(c, parent.0, name),
            MetaOp::Stat { ino } => self.node(ino.0).map(|_| MetaReply::Attr(self.attr(ino.0))),
            MetaOp::Readdir {
                dir,
                after: None,
                limit,
            } => self.readdir(c, dir.0, *limit),
            MetaOp::Readlink { ino } => self.readlink(ino.0),
            other => return Err(format!("the meta model does not cover {other:?}")),
        };
        self.check_tree();
        Ok(reply)
    }

    // ---- what the model holds ----

    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> &mut Node {
        self.nodes.get_mut(&ino).expect("checked before the change")
    }

    fn dir(&self, ino: u64) -> Result<&Node, Errno> {
        let n = self.node(ino)?;
        if n.kind != FileType::Dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(n)
    }

    /// Names of a file (no hard links here: one); 2 and one per
    /// subdirectory for a directory.
    fn nlink(&self, n: &Node) -> u32 {
        match n.kind {
            FileType::Dir => {
                let subdirs = n
                    .children
                    .values()
                    .filter(|c| self.nodes[c].kind == FileType::Dir)
                    .count();
                2 + subdirs as u32
            }
            _ => 1,
        }
    }

    fn attr(&self, ino: u64) -> Attr {
        let n = &self.nodes[&ino];
        Attr {
            ino: Ino(ino),
            kind: n.kind,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            size: n.size,
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
            nlink: self.nlink(n),
            // Nothing here asks for a layout: every file has the default.
            layout: Layout::default(),
            meta_seq: n.meta_seq,
            data_seq: n.data_seq,
        }
    }

    /// Whether `ancestor` is `dir` or a directory above it.
    fn above_or_is(&self, ancestor: u64, dir: u64) -> bool {
        let mut cur = dir;
        for _ in 0..=self.nodes.len() {
            if cur == ancestor {
                return true;
            }
            let parent = self.nodes[&cur].parent;
            if parent == cur {
                return false;
            }
            cur = parent;
        }
        panic!("the model's tree has a cycle above {dir}");
    }

    /// Every node but the root has exactly one name, in its parent, and
    /// every name points at a node.
    fn check_tree(&self) {
        if cfg!(debug_assertions) || self.nodes.len() <= 64 {
            let mut names = 0;
            for (ino, n) in &self.nodes {
                for (name, child) in &n.children {
                    let c = &self.nodes[child];
                    assert_eq!(c.parent, *ino, "entry {name:?} of {ino}: wrong parent");
                    names += 1;
                }
                assert!(n.kind == FileType::Dir || n.children.is_empty());
            }
            assert_eq!(
                names + 1,
                self.nodes.len(),
                "every node but the root has one name"
            );
        }
    }

    fn dir_changed(&mut self, dir: u64, c: &Call) {
        let d = self.node_mut(dir);
        d.mtime = c.now;
        d.ctime = c.now;
        d.meta_seq = c.index;
        d.data_seq = c.index;
    }

    /// A new node's fields: the caller's owner, and the directory's group
    /// when it is set-group-ID (which a new directory inherits).
    fn new_node(&self, c: &Call, dir: u64, kind: FileType, mode: u32) -> Node {
        let d = &self.nodes[&dir];
        let inherit = d.mode & S_ISGID != 0;
        let gid = if inherit { d.gid } else { c.who.gid };
        let mut mode = mode;
        if kind == FileType::Dir && inherit {
            mode |= S_ISGID;
        } else if mode & S_ISGID != 0
            && c.who.uid != 0
            && c.who.gid != gid
            && !c.who.groups.contains(&gid)
        {
            mode &= !S_ISGID;
        }
        Node {
            kind,
            mode,
            uid: c.who.uid,
            gid,
            size: 0,
            atime: c.now,
            mtime: c.now,
            ctime: c.now,
            meta_seq: c.index,
            data_seq: c.index,
            parent: dir,
            children: BTreeMap::new(),
            target: Vec::new(),
        }
    }

    /// Takes the next granted number: ENOSPC when none is left.
    fn next_number(&self) -> Result<u64, Errno> {
        self.free.front().map(|r| r.0).ok_or(Errno::ENOSPC)
    }

    fn add(&mut self, dir: u64, name: &[u8], node: Node, c: &Call) -> u64 {
        let range = self.free.front_mut().expect("next_number checked");
        let ino = range.0;
        range.0 += 1;
        if range.0 == range.1 {
            self.free.pop_front();
        }
        assert!(
            self.nodes.insert(ino, node).is_none(),
            "number {ino} reused"
        );
        let old = self.node_mut(dir).children.insert(name.to_vec(), ino);
        assert!(old.is_none());
        self.dir_changed(dir, c);
        ino
    }

    /// Drops a node with no name left (and, for a directory, no entries).
    fn forget(&mut self, ino: u64, c: &Call) {
        let n = self.nodes.remove(&ino).expect("forgotten node exists");
        assert!(n.children.is_empty(), "a removed directory is empty");
        self.removed.insert(ino, c.index);
    }

    // ---- changes ----

    fn grant(&mut self, c: &Call, start: u64, count: u64) -> Result<MetaReply, Errno> {
        if c.who.uid != 0 {
            return Err(Errno::EPERM);
        }
        let end = start.checked_add(count).ok_or(Errno::EINVAL)?;
        let used = self.nodes.range(start..end).next().is_some();
        if count == 0 || start < self.granted_to || used {
            return Err(Errno::EINVAL);
        }
        self.free.push_back((start, end));
        self.granted_to = end;
        Ok(MetaReply::Done)
    }

    /// The checks of every new name: a directory the caller may search,
    /// a name not taken, and write permission.
    fn may_add(&self, c: &Call, dir: u64, name: &[u8]) -> Result<(), Errno> {
        let d = self.dir(dir)?;
        need(c.who, d, X)?;
        if d.children.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        need(c.who, d, W)
    }

    fn mkdir(&mut self, c: &Call, dir: u64, name: &[u8], mode: u32) -> Result<MetaReply, Errno> {
        fresh_name(name)?;
        valid_mode(mode)?;
        self.may_add(c, dir, name)?;
        self.next_number()?;
        let node = self.new_node(c, dir, FileType::Dir, mode);
        let ino = self.add(dir, name, node, c);
        Ok(MetaReply::Attr(self.attr(ino)))
    }

    fn create(
        &mut self,
        c: &Call,
        dir: u64,
        name: &[u8],
        mode: u32,
        exclusive: bool,
    ) -> Result<MetaReply, Errno> {
        fresh_name(name)?;
        valid_mode(mode)?;
        let d = self.dir(dir)?;
        need(c.who, d, X)?;
        if let Some(&ino) = d.children.get(name) {
            // O_CREAT alone opens an existing file.
            return match self.nodes[&ino].kind {
                _ if exclusive => Err(Errno::EEXIST),
                FileType::Dir => Err(Errno::EISDIR),
                FileType::Symlink => Err(Errno::EEXIST),
                FileType::File => Ok(MetaReply::Created {
                    attr: self.attr(ino),
                    created: false,
                }),
            };
        }
        need(c.who, d, W)?;
        self.next_number()?;
        let node = self.new_node(c, dir, FileType::File, mode);
        let ino = self.add(dir, name, node, c);
        Ok(MetaReply::Created {
            attr: self.attr(ino),
            created: true,
        })
    }

    fn symlink(
        &mut self,
        c: &Call,
        dir: u64,
        name: &[u8],
        target: &[u8],
    ) -> Result<MetaReply, Errno> {
        fresh_name(name)?;
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        if target.contains(&0) {
            return Err(Errno::EINVAL);
        }
        if target.len() > PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        self.may_add(c, dir, name)?;
        self.next_number()?;
        let mut node = self.new_node(c, dir, FileType::Symlink, 0o777);
        node.mode = 0o777;
        node.size = target.len() as u64;
        node.target = target.to_vec();
        let ino = self.add(dir, name, node, c);
        Ok(MetaReply::Attr(self.attr(ino)))
    }

    /// The checks of removing (dir, name): returns the entry's number.
    fn may_remove(&self, c: &Call, dir: u64, name: &[u8]) -> Result<u64, Errno> {
        old_name(name)?;
        let d = self.dir(dir)?;
        need(c.who, d, X)?;
        let &ino = d.children.get(name).ok_or(Errno::ENOENT)?;
        need(c.who, d, W | X)?;
        sticky_ok(c.who, d, &self.nodes[&ino])?;
        Ok(ino)
    }

    fn unlink(&mut self, c: &Call, dir: u64, name: &[u8]) -> Result<MetaReply, Errno> {
        let ino = self.may_remove(c, dir, name)?;
        if self.nodes[&ino].kind == FileType::Dir {
            return Err(Errno::EISDIR);
        }
        self.node_mut(dir).children.remove(name);
        self.forget(ino, c);
        self.dir_changed(dir, c);
        Ok(MetaReply::Done)
    }

    fn rmdir(&mut self, c: &Call, dir: u64, name: &[u8]) -> Result<MetaReply, Errno> {
        let ino = self.may_remove(c, dir, name)?;
        let n = &self.nodes[&ino];
        if n.kind != FileType::Dir {
            return Err(Errno::ENOTDIR);
        }
        if !n.children.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        self.node_mut(dir).children.remove(name);
        self.forget(ino, c);
        self.dir_changed(dir, c);
        Ok(MetaReply::Done)
    }

    fn rename(
        &mut self,
        c: &Call,
        from: u64,
        name: &[u8],
        to: u64,
        new_name: &[u8],
        noreplace: bool,
    ) -> Result<MetaReply, Errno> {
        old_name(name)?;
        old_name(new_name)?;
        let f = self.dir(from)?;
        let t = self.dir(to)?;
        need(c.who, f, X)?;
        need(c.who, t, X)?;
        let &src = f.children.get(name).ok_or(Errno::ENOENT)?;
        let dst = t.children.get(new_name).copied();
        if noreplace && dst.is_some() {
            return Err(Errno::EEXIST);
        }
        if dst == Some(src) {
            // The same file under both names: nothing to do (POSIX).
            return Ok(MetaReply::Done);
        }
        need(c.who, f, W)?;
        need(c.who, t, W)?;
        let s = &self.nodes[&src];
        sticky_ok(c.who, f, s)?;
        if let Some(d) = dst {
            sticky_ok(c.who, t, &self.nodes[&d])?;
        }
        let moving_dir = s.kind == FileType::Dir;
        if moving_dir {
            if self.above_or_is(src, to) {
                return Err(Errno::EINVAL);
            }
            if from != to {
                // Its ".." changes.
                need(c.who, s, W)?;
            }
        }
        if let Some(d) = dst {
            let d = &self.nodes[&d];
            match (moving_dir, d.kind == FileType::Dir) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !d.children.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }

        self.node_mut(from).children.remove(name);
        if let Some(d) = dst {
            self.node_mut(to).children.remove(new_name);
            self.forget(d, c);
        }
        self.node_mut(to).children.insert(new_name.to_vec(), src);
        let s = self.node_mut(src);
        s.parent = to;
        s.ctime = c.now;
        s.meta_seq = c.index;
        self.dir_changed(from, c);
        self.dir_changed(to, c);
        Ok(MetaReply::Done)
    }

    /// chmod and truncate.
    fn setattr(
        &mut self,
        c: &Call,
        ino: u64,
        mode: Option<u32>,
        size: Option<u64>,
    ) -> Result<MetaReply, Errno> {
        if let Some(mode) = mode {
            valid_mode(mode)?;
        }
        if size.is_some_and(|s| s > i64::MAX as u64) {
            return Err(Errno::EFBIG);
        }
        let n = self.node(ino)?;
        if size.is_some() {
            match n.kind {
                FileType::Dir => return Err(Errno::EISDIR),
                FileType::Symlink => return Err(Errno::EINVAL),
                FileType::File => need(c.who, n, W)?,
            }
        }
        if mode.is_some() && c.who.uid != 0 && c.who.uid != n.uid {
            return Err(Errno::EPERM);
        }
        if mode.is_none() && size.is_none() {
            return Ok(MetaReply::Attr(self.attr(ino)));
        }
        let keep_sgid = c.who.uid == 0 || c.who.gid == n.gid || c.who.groups.contains(&n.gid);
        let n = self.node_mut(ino);
        if let Some(mode) = mode {
            n.mode = if keep_sgid { mode } else { mode & !S_ISGID };
        }
        if let Some(size) = size {
            n.size = size;
            n.mtime = c.now;
            n.data_seq = c.index;
        }
        n.ctime = c.now;
        n.meta_seq = c.index;
        Ok(MetaReply::Attr(self.attr(ino)))
    }

    // ---- reads (through the log, so they are linearizable) ----

    fn lookup(&self, c: &Call, dir: u64, name: &[u8]) -> Result<MetaReply, Errno> {
        let is = name_is(name)?;
        let d = self.dir(dir)?;
        need(c.who, d, X)?;
        let ino = match is {
            NameIs::Dot => dir,
            NameIs::DotDot => d.parent,
            NameIs::Plain => *d.children.get(name).ok_or(Errno::ENOENT)?,
        };
        Ok(MetaReply::Found(Found::Local(self.attr(ino))))
    }

    fn readdir(&self, c: &Call, dir: u64, limit: u32) -> Result<MetaReply, Errno> {
        if limit == 0 || limit > READDIR_MAX {
            return Err(Errno::EINVAL);
        }
        let d = self.dir(dir)?;
        need(c.who, d, R)?;
        let entries = d
            .children
            .iter()
            .take(limit as usize)
            .map(|(name, ino)| DirEntry {
                name: name.clone(),
                ino: Ino(*ino),
                kind: self.nodes[ino].kind,
                foreign: None,
            })
            .collect();
        Ok(MetaReply::Dir(DirPage {
            entries,
            more: d.children.len() > limit as usize,
        }))
    }

    fn readlink(&self, ino: u64) -> Result<MetaReply, Errno> {
        let n = self.node(ino)?;
        if n.kind != FileType::Symlink {
            return Err(Errno::EINVAL);
        }
        Ok(MetaReply::Target(n.target.clone()))
    }

    // ---- for the end-of-run checks ----

    /// Every name in the tree: (directory, name) -> attributes, and the
    /// root as (0, "/").
    pub fn entries(&self) -> BTreeMap<(u64, Vec<u8>), Attr> {
        let mut out = BTreeMap::new();
        out.insert((0, b"/".to_vec()), self.attr(ROOT.0));
        for (dir, n) in &self.nodes {
            for (name, ino) in &n.children {
                out.insert((*dir, name.clone()), self.attr(*ino));
            }
        }
        out
    }

    /// The index of the committed operation that removed `ino`, if one did.
    pub fn removed_at(&self, ino: u64) -> Option<Index> {
        self.removed.get(&ino).copied()
    }
}
