//! File-system commands over a cluster whose ministries run the namespace
//! (`govfs cluster up --app meta`): mkdir, touch, ls, stat, rm, mv, tree.
//!
//! Every command is a `MetaRequest` submitted to the ministry's minister
//! through the log (so reads are linearizable), with the caller's uid and gid
//! as credentials (trusted, like NFS AUTH_SYS) and the caller's clock as the
//! time stamp. One ministry owns "/" for now; subtrees owned by other
//! ministries are reported, not followed.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use govfs_client::{Client, Session};
use govfs_core::meta::{
    decode_reply, encode_request, Attr, Change, ChangePage, Credentials, Errno, FileType, Found,
    Ino, MetaOp, MetaReply, MetaRequest, ROOT,
};

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
    session: Session,
    ministry: u64,
    creds: Credentials,
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
            ministry,
            creds: Credentials {
                uid,
                gid,
                groups: Vec::new(),
            },
        }
    }

    pub async fn call(&mut self, op: MetaOp) -> Result<MetaReply, FsError> {
        let req = MetaRequest {
            op,
            creds: self.creds.clone(),
            now: now(),
        };
        let (_, out) = self
            .session
            .submit(self.ministry, encode_request(&req), Duration::from_secs(20))
            .await
            .map_err(|e| FsError::Other(e.to_string()))?;
        let reply =
            decode_reply(&out).map_err(|e| FsError::Other(format!("undecodable answer: {e}")))?;
        Ok(reply?)
    }

    pub async fn resolve(&mut self, path: &str) -> Result<Attr, FsError> {
        match self
            .call(MetaOp::LookupPath {
                path: path.as_bytes().to_vec(),
                follow: true,
            })
            .await?
        {
            MetaReply::Found(Found::Local(attr)) => Ok(attr),
            MetaReply::Found(Found::Foreign { root, .. }) => Err(FsError::Other(format!(
                "{path}: owned by ministry {} (not followed yet)",
                root.ministry
            ))),
            other => Err(FsError::Other(format!("unexpected answer {other:?}"))),
        }
    }

    async fn dir(&mut self, path: &str) -> Result<Ino, FsError> {
        if path == "/" {
            return Ok(ROOT);
        }
        Ok(self.resolve(path).await?.ino)
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
        let parent = self.dir(parent).await?;
        self.call(MetaOp::Mkdir {
            parent,
            name: name.as_bytes().to_vec(),
            mode,
        })
        .await?;
        Ok(())
    }

    /// Create `path` if missing; returns its attributes and whether this call made it.
    pub async fn touch(&mut self, path: &str, mode: u32) -> Result<(Attr, bool), FsError> {
        let (parent, name) = split(path)?;
        let parent = self.dir(parent).await?;
        let op = MetaOp::Create {
            parent,
            name: name.as_bytes().to_vec(),
            mode,
            exclusive: false,
            layout: None,
        };
        match self.call(op).await? {
            MetaReply::Created { attr, created } => Ok((attr, created)),
            other => Err(FsError::Other(format!("unexpected answer {other:?}"))),
        }
    }

    pub async fn list(&mut self, path: &str) -> Result<Vec<(String, FileType, Ino)>, FsError> {
        let dir = self.dir(path).await?;
        let mut after = None;
        let mut out = Vec::new();
        loop {
            let page = match self
                .call(MetaOp::Readdir {
                    dir,
                    after: after.clone(),
                    limit: 1024,
                })
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

    pub async fn rm(&mut self, path: &str) -> Result<(), FsError> {
        let attr = self.resolve(path).await?;
        let (parent, name) = split(path)?;
        let parent = self.dir(parent).await?;
        let name = name.as_bytes().to_vec();
        let op = if attr.kind == FileType::Dir {
            MetaOp::Rmdir { parent, name }
        } else {
            MetaOp::Unlink { parent, name }
        };
        self.call(op).await?;
        Ok(())
    }

    pub async fn mv(&mut self, from: &str, to: &str) -> Result<(), FsError> {
        let (fp, fname) = split(from)?;
        let (tp, tname) = split(to)?;
        let (parent, new_parent) = (self.dir(fp).await?, self.dir(tp).await?);
        let op = MetaOp::Rename {
            parent,
            name: fname.as_bytes().to_vec(),
            new_parent,
            new_name: tname.as_bytes().to_vec(),
            noreplace: false,
        };
        self.call(op).await?;
        Ok(())
    }

    /// Every change under `path` after `since`, page by page.
    pub async fn changes(&mut self, path: &str, since: u64) -> Result<Vec<Change>, FsError> {
        let dir = self.dir(path).await?;
        let (mut since, mut all) = (since, Vec::new());
        loop {
            match self.call(MetaOp::Changes { dir, since, limit: 4096 }).await? {
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
        | FsCmd::Changes { at, .. } => at.clone(),
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
