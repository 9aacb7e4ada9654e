//! File-system commands over a cluster whose ministries run the namespace
//! (`govfs cluster up --app meta`): mkdir, touch, ls, stat, rm, mv, tree.
//!
//! Every command is a `MetaRequest` submitted to the minister of the
//! ministry that holds the path, through the log (so reads are
//! linearizable), with the caller's uid and gid as credentials (trusted, like
//! NFS AUTH_SYS) and the caller's clock as the time stamp. Paths are routed
//! with the cluster map's subtrees and followed across foreign roots; a
//! rename between ministries, removing a directory another ministry holds,
//! and `govfs ministry split` go through the president (transfers).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use govfs_client::{Client, Session};
use govfs_core::meta::{
    decode_reply, encode_request, Attr, Change, ChangePage, Credentials, Errno, FileType, Found,
    Ino, MetaOp, MetaReply, MetaRequest, ROOT,
};
use govfs_core::president::{ClusterMap, TransferKind, TransferRequest};

use crate::target::Target;

#[derive(Subcommand, Debug)]
pub enum FsCmd {
    /// Make a directory.
    Mkdir {
        #[command(flatten)]
        at: At,
        path: String,
        #[arg(long, default_value = "755", value_parser = octal)]
        mode: u32,
        /// Make missing parents too.
        #[arg(short, long)]
        parents: bool,
    },
    /// Create an empty file if it does not exist.
    Touch {
        #[command(flatten)]
        at: At,
        path: String,
        #[arg(long, default_value = "644", value_parser = octal)]
        mode: u32,
    },
    /// List a directory's entries.
    Ls {
        #[command(flatten)]
        at: At,
        path: String,
    },
    /// Show a file's attributes (with meta_seq and data_seq).
    Stat {
        #[command(flatten)]
        at: At,
        path: String,
    },
    /// Remove a file, a symlink or an empty directory.
    Rm {
        #[command(flatten)]
        at: At,
        path: String,
    },
    /// Rename, replacing an existing target.
    Mv {
        #[command(flatten)]
        at: At,
        from: String,
        to: String,
    },
    /// Print a directory tree.
    Tree {
        #[command(flatten)]
        at: At,
        path: String,
    },
    /// What changed under PATH after log index N, up to what is committed,
    /// without walking the namespace (root only).
    Changes {
        #[command(flatten)]
        at: At,
        #[arg(long, default_value_t = 0)]
        since: u64,
        path: String,
    },
    /// Ministries and the parts of the namespace they hold.
    #[command(subcommand)]
    Ministry(MinistryCmd),
}

#[derive(Subcommand, Debug)]
pub enum MinistryCmd {
    /// Give the directory at PATH, with everything below it, to a new
    /// ministry formed from idle shards (through the president's log).
    Split {
        #[command(flatten)]
        at: At,
        path: String,
    },
}

/// Which cluster, and which ministry owns "/".
#[derive(Args, Debug, Clone)]
pub struct At {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value_t = 1)]
    ministry: u64,
}

fn octal(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8).map_err(|_| format!("{s:?} is not an octal mode"))
}

pub struct Fs {
    client: Client,
    session: Session,
    /// The ministry that owns "/".
    ministry: u64,
    creds: Credentials,
    /// The cluster map, for subtrees other ministries own (fetched once).
    map: Option<ClusterMap>,
}

#[derive(Debug)]
pub enum FsError {
    Errno(Errno),
    Other(String),
}

impl std::fmt::Display for FsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsError::Errno(e) => write!(f, "{e}"),
            FsError::Other(s) => f.write_str(s),
        }
    }
}

impl From<Errno> for FsError {
    fn from(e: Errno) -> Self {
        FsError::Errno(e)
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Split "/a/b/c" into ("/a/b", "c").
fn split(path: &str) -> Result<(&str, &str), FsError> {
    let path = path.trim_end_matches('/');
    match path.rsplit_once('/') {
        Some((parent, name)) if !name.is_empty() => {
            Ok((if parent.is_empty() { "/" } else { parent }, name))
        }
        _ => Err(FsError::Other(format!(
            "{path:?}: need an absolute path below /"
        ))),
    }
}

impl Fs {
    pub fn new(client: Client, ministry: u64) -> Fs {
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Fs {
            session: client.session(),
            client,
            ministry,
            creds: Credentials {
                uid,
                gid,
                groups: Vec::new(),
            },
            map: None,
        }
    }

    /// Runs `op` in `ministry` through its log (linearizable).
    pub async fn call_in(&mut self, ministry: u64, op: MetaOp) -> Result<MetaReply, FsError> {
        let req = MetaRequest {
            op,
            creds: self.creds.clone(),
            now: now(),
        };
        let (_, out) = self
            .session
            .submit(ministry, encode_request(&req), Duration::from_secs(20))
            .await
            .map_err(|e| FsError::Other(e.to_string()))?;
        let reply =
            decode_reply(&out).map_err(|e| FsError::Other(format!("undecodable answer: {e}")))?;
        Ok(reply?)
    }

    async fn map(&mut self, refresh: bool) -> Result<&ClusterMap, FsError> {
        if refresh || self.map.is_none() {
            let map = self
                .client
                .map()
                .await
                .map_err(|e| FsError::Other(e.to_string()))?;
            self.map = Some(map);
        }
        Ok(self.map.as_ref().expect("just set"))
    }

    /// Resolves `path` to the ministry that holds it and its attributes.
    /// The cached map's subtrees take it straight to the right ministry;
    /// a foreign root met on the way (a stale map) costs one redirect each.
    pub async fn locate(&mut self, path: &str, follow: bool) -> Result<(u64, Attr), FsError> {
        let (mut ministry, mut op) = {
            let map = self.map(false).await?;
            match map.transfers.subtree_of(path.as_bytes()) {
                Some((prefix, sub)) => (
                    sub.ministry,
                    MetaOp::LookupPathAt {
                        start: Ino(sub.root),
                        path: rest_or_root(&path.as_bytes()[prefix.len()..]),
                        follow,
                    },
                ),
                None => (
                    self.ministry,
                    MetaOp::LookupPath {
                        path: path.as_bytes().to_vec(),
                        follow,
                    },
                ),
            }
        };
        for _ in 0..MAX_REDIRECTS {
            match self.call_in(ministry, op).await? {
                MetaReply::Found(Found::Local(attr)) => return Ok((ministry, attr)),
                MetaReply::Found(Found::Foreign { root, rest }) => {
                    ministry = root.ministry;
                    op = MetaOp::LookupPathAt {
                        start: root.ino,
                        path: rest_or_root(&rest),
                        follow,
                    };
                }
                other => return Err(FsError::Other(format!("unexpected answer {other:?}"))),
            }
        }
        Err(FsError::Other(format!(
            "{path}: more than {MAX_REDIRECTS} ministries deep"
        )))
    }

    pub async fn resolve(&mut self, path: &str) -> Result<Attr, FsError> {
        Ok(self.locate(path, true).await?.1)
    }

    /// A directory: the ministry that holds it and its inode.
    async fn dir(&mut self, path: &str) -> Result<(u64, Ino), FsError> {
        if path == "/" {
            return Ok((self.ministry, ROOT));
        }
        let (ministry, attr) = self.locate(path, true).await?;
        Ok((ministry, attr.ino))
    }

    /// The entry `name` of directory `path` as its own directory sees it:
    /// local, or a foreign root another ministry holds.
    async fn entry(&mut self, path: &str) -> Result<Entry, FsError> {
        let (parent, name) = split(path)?;
        let (ministry, dir) = self.dir(parent).await?;
        let name = name.as_bytes().to_vec();
        let op = MetaOp::Lookup {
            parent: dir,
            name: name.clone(),
        };
        let found = match self.call_in(ministry, op).await? {
            MetaReply::Found(f) => f,
            other => return Err(FsError::Other(format!("unexpected answer {other:?}"))),
        };
        Ok(Entry {
            ministry,
            parent: dir,
            name,
            found,
        })
    }

    pub async fn mkdir(&mut self, path: &str, mode: u32, parents: bool) -> Result<(), FsError> {
        if parents {
            let mut prefix = String::new();
            for part in path.split('/').filter(|p| !p.is_empty()) {
                prefix = format!("{prefix}/{part}");
                match self.mkdir_one(&prefix, mode).await {
                    Ok(()) | Err(FsError::Errno(Errno::EEXIST)) => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
        self.mkdir_one(path, mode).await
    }

    async fn mkdir_one(&mut self, path: &str, mode: u32) -> Result<(), FsError> {
        let (parent, name) = split(path)?;
        let (ministry, parent) = self.dir(parent).await?;
        self.call_in(
            ministry,
            MetaOp::Mkdir {
                parent,
                name: name.as_bytes().to_vec(),
                mode,
            },
        )
        .await?;
        Ok(())
    }

    /// Create `path` if missing; returns its attributes and whether this call made it.
    pub async fn touch(&mut self, path: &str, mode: u32) -> Result<(Attr, bool), FsError> {
        let (parent, name) = split(path)?;
        let (ministry, parent) = self.dir(parent).await?;
        let op = MetaOp::Create {
            parent,
            name: name.as_bytes().to_vec(),
            mode,
            exclusive: false,
            layout: None,
        };
        match self.call_in(ministry, op).await? {
            MetaReply::Created { attr, created } => Ok((attr, created)),
            other => Err(FsError::Other(format!("unexpected answer {other:?}"))),
        }
    }

    pub async fn list(&mut self, path: &str) -> Result<Vec<(String, FileType, Ino)>, FsError> {
        let (ministry, dir) = self.dir(path).await?;
        let mut after = None;
        let mut out = Vec::new();
        loop {
            let page = match self
                .call_in(
                    ministry,
                    MetaOp::Readdir {
                        dir,
                        after: after.clone(),
                        limit: 1024,
                    },
                )
                .await?
            {
                MetaReply::Dir(page) => page,
                other => return Err(FsError::Other(format!("unexpected answer {other:?}"))),
            };
            for e in &page.entries {
                out.push((String::from_utf8_lossy(&e.name).into_owned(), e.kind, e.ino));
            }
            match page.entries.last() {
                Some(last) if page.more => after = Some(last.name.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// Removes a file, a symlink or an empty directory. A directory
    /// another ministry holds (a split subtree) is removed through the
    /// president: its empty root there, then the entry here.
    pub async fn rm(&mut self, path: &str) -> Result<(), FsError> {
        let e = self.entry(path).await?;
        let op = match &e.found {
            Found::Foreign { root, .. } => {
                let request = self.request(
                    TransferKind::RemoveRoot { to: root.ministry },
                    &e,
                    root.ino.0,
                    path,
                );
                return self.transfer(request).await;
            }
            Found::Local(attr) if attr.kind == FileType::Dir => MetaOp::Rmdir {
                parent: e.parent,
                name: e.name,
            },
            Found::Local(_) => MetaOp::Unlink {
                parent: e.parent,
                name: e.name,
            },
        };
        self.call_in(e.ministry, op).await?;
        Ok(())
    }

    /// Renames, replacing an existing target. Between ministries it goes
    /// through the president (detach here, attach there), which refuses to
    /// replace an existing target (EEXIST).
    pub async fn mv(&mut self, from: &str, to: &str) -> Result<(), FsError> {
        let e = self.entry(from).await?;
        let (tp, tname) = split(to)?;
        let (to_ministry, new_parent) = self.dir(tp).await?;
        let new_name = tname.as_bytes().to_vec();
        if to_ministry == e.ministry {
            let op = MetaOp::Rename {
                parent: e.parent,
                name: e.name,
                new_parent,
                new_name,
                noreplace: false,
            };
            self.call_in(e.ministry, op).await?;
            return Ok(());
        }
        let ino = match &e.found {
            Found::Local(attr) => attr.ino.0,
            Found::Foreign { root, .. } => root.ino.0,
        };
        let kind = TransferKind::Rename {
            to: to_ministry,
            new_parent: new_parent.0,
            new_name,
        };
        let request = self.request(kind, &e, ino, from);
        self.transfer(request).await
    }

    /// Gives the directory at `path` to a new ministry (formed from idle
    /// shards); the path keeps resolving, through the cluster map.
    pub async fn split(&mut self, path: &str) -> Result<u64, FsError> {
        let e = self.entry(path).await?;
        let ino = match &e.found {
            Found::Local(attr) if attr.kind == FileType::Dir => attr.ino.0,
            Found::Local(_) => return Err(FsError::Errno(Errno::ENOTDIR)),
            Found::Foreign { root, .. } => {
                return Err(FsError::Other(format!(
                    "{path} is already held by ministry {}",
                    root.ministry
                )))
            }
        };
        let request = self.request(TransferKind::Split, &e, ino, path);
        self.transfer(request).await?;
        let map = self.map(true).await?;
        map.transfers
            .subtrees
            .get(path.trim_end_matches('/').as_bytes())
            .map(|s| s.ministry)
            .ok_or_else(|| {
                FsError::Other(format!(
                    "{path}: the split finished but the map does not show it"
                ))
            })
    }

    fn request(&self, kind: TransferKind, e: &Entry, ino: u64, path: &str) -> TransferRequest {
        TransferRequest {
            kind,
            from: e.ministry,
            parent: e.parent.0,
            name: e.name.clone(),
            ino,
            path: path.trim_end_matches('/').as_bytes().to_vec(),
            now: now(),
        }
    }

    async fn transfer(&mut self, request: TransferRequest) -> Result<(), FsError> {
        let outcome = self
            .client
            .transfer(request, TRANSFER_WAIT)
            .await
            .map_err(|e| FsError::Other(e.to_string()))?;
        // The namespace moved: drop the cached subtrees.
        self.map = None;
        match outcome {
            None => Ok(()),
            Some(why) => Err(FsError::Other(format!("refused: {why}"))),
        }
    }

    /// Every change under `path` after `since`, page by page.
    pub async fn changes(&mut self, path: &str, since: u64) -> Result<Vec<Change>, FsError> {
        let (ministry, dir) = self.dir(path).await?;
        let (mut since, mut all) = (since, Vec::new());
        loop {
            match self
                .call_in(ministry, MetaOp::Changes { dir, since, limit: 4096 })
                .await?
            {
                MetaReply::Changes(ChangePage::Page { changes, next, more }) => {
                    all.extend(changes);
                    if !more {
                        return Ok(all);
                    }
                    since = next;
                }
                MetaReply::Changes(ChangePage::Truncated { resync_from }) => {
                    return Err(FsError::Other(format!(
                        "changes after {since} are no longer kept: resync by walking the tree, then follow from {resync_from}"
                    )))
                }
                other => return Err(FsError::Other(format!("unexpected answer {other:?}"))),
            }
        }
    }

    /// Boxed: an async fn cannot recurse into itself directly.
    fn tree<'a>(
        &'a mut self,
        path: &'a str,
        depth: usize,
        out: &'a mut String,
    ) -> Pin<Box<dyn Future<Output = Result<(), FsError>> + 'a>> {
        Box::pin(async move {
            for (name, kind, _) in self.list(path).await? {
                let mark = if kind == FileType::Dir { "/" } else { "" };
                out.push_str(&format!("{}{name}{mark}\n", "  ".repeat(depth)));
                if kind == FileType::Dir {
                    let child = if path == "/" {
                        format!("/{name}")
                    } else {
                        format!("{path}/{name}")
                    };
                    self.tree(&child, depth + 1, out).await?;
                }
            }
            Ok(())
        })
    }
}

/// An entry as its directory holds it.
struct Entry {
    ministry: u64,
    parent: Ino,
    name: Vec<u8>,
    found: Found,
}

/// Ministries one path may cross.
const MAX_REDIRECTS: usize = 8;
/// How long a transfer (split, cross-ministry rename or removal) may take.
const TRANSFER_WAIT: Duration = Duration::from_secs(60);

/// The rest of a path after a subtree's root ("/" for the root itself).
fn rest_or_root(rest: &[u8]) -> Vec<u8> {
    if rest.is_empty() {
        b"/".to_vec()
    } else {
        rest.to_vec()
    }
}

fn kind(k: FileType) -> &'static str {
    match k {
        FileType::File => "file",
        FileType::Dir => "dir",
        FileType::Symlink => "symlink",
    }
}

pub async fn run(cmd: FsCmd) -> i32 {
    let at = match &cmd {
        FsCmd::Mkdir { at, .. }
        | FsCmd::Touch { at, .. }
        | FsCmd::Ls { at, .. }
        | FsCmd::Stat { at, .. }
        | FsCmd::Rm { at, .. }
        | FsCmd::Mv { at, .. }
        | FsCmd::Tree { at, .. }
        | FsCmd::Changes { at, .. }
        | FsCmd::Ministry(MinistryCmd::Split { at, .. }) => at.clone(),
    };
    let client = match at.target.client().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("govfs: {e}");
            return 1;
        }
    };
    let mut fs = Fs::new(client, at.ministry);
    let result = match cmd {
        FsCmd::Mkdir {
            path,
            mode,
            parents,
            ..
        } => fs.mkdir(&path, mode, parents).await,
        FsCmd::Touch { path, mode, .. } => fs.touch(&path, mode).await.map(|_| ()),
        FsCmd::Ls { path, .. } => fs.list(&path).await.map(|entries| {
            for (name, k, ino) in entries {
                println!("{:<8} {:>14} {name}", kind(k), ino.0);
            }
        }),
        FsCmd::Stat { path, .. } => fs.resolve(&path).await.map(|a| {
            println!(
                "  path: {path}\n   ino: {}\n  type: {}\n  mode: {:o}\n   uid: {}  gid: {}",
                a.ino.0,
                kind(a.kind),
                a.mode,
                a.uid,
                a.gid
            );
            println!("  size: {}  nlink: {}", a.size, a.nlink);
            println!(
                " mtime: {}  ctime: {}  atime: {} (ns)",
                a.mtime, a.ctime, a.atime
            );
            println!(
                "layout: chunk {} B, stripes {}, replicas {}",
                a.layout.chunk_size, a.layout.stripe_count, a.layout.replicas
            );
            println!("  seqs: meta_seq {}  data_seq {}", a.meta_seq, a.data_seq);
        }),
        FsCmd::Rm { path, .. } => fs.rm(&path).await,
        FsCmd::Ministry(MinistryCmd::Split { path, .. }) => fs.split(&path).await.map(|m| {
            println!("{path} is now held by ministry {m}");
        }),
        FsCmd::Mv { from, to, .. } => fs.mv(&from, &to).await,
        FsCmd::Changes { since, path, .. } => fs.changes(&path, since).await.map(|changes| {
            for c in changes {
                println!(
                    "{:>10} {:<11} {} {}",
                    c.index,
                    format!("{:?}", c.kind),
                    c.ino.0,
                    String::from_utf8_lossy(&c.name)
                );
            }
        }),
        FsCmd::Tree { path, .. } => {
            let mut out = format!("{path}\n");
            fs.tree(&path, 1, &mut out).await.map(|()| print!("{out}"))
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("govfs: {e}");
            1
        }
    }
}
