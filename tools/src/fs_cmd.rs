//! File-system commands over a cluster whose ministries run the namespace
//! (`govfs cluster up --app meta`): mkdir, touch, ls, stat, rm, mv, tree,
//! and put, get and cat for file data (`data_cmd.rs`).
//!
//! Each command is a call of the client's [`FileSystem`], which routes the
//! path to the ministry that holds it. The CLI reads through the log
//! (linearizable) and presents the caller's uid and gid as credentials
//! (trusted, like NFS AUTH_SYS).

use clap::{Args, Subcommand};
use govfs_client::{FileSystem, FsOptions, ReadConsistency};
use govfs_core::meta::{Credentials, FileType};

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
    /// Copy a local file into the cluster (created or overwritten).
    Put {
        #[command(flatten)]
        at: At,
        local: std::path::PathBuf,
        path: String,
        /// No progress bar.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Copy a file out of the cluster.
    Get {
        #[command(flatten)]
        at: At,
        path: String,
        local: std::path::PathBuf,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a file's contents to standard output.
    Cat {
        #[command(flatten)]
        at: At,
        path: String,
    },
    /// Move a file's chunks off dead or removed storage nodes, copying
    /// each from a surviving replica (under a write lease on the file).
    Rereplicate {
        #[command(flatten)]
        at: At,
        path: String,
        /// Storage nodes to leave (repeat or comma-separate).
        #[arg(long, value_delimiter = ',', required = true)]
        drop: Vec<u64>,
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

fn kind(k: FileType) -> &'static str {
    match k {
        FileType::File => "file",
        FileType::Dir => "dir",
        FileType::Symlink => "symlink",
    }
}

/// The caller's uid and gid, as the credentials the ministry checks.
fn caller() -> Credentials {
    // SAFETY: getuid and getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    Credentials::user(uid, gid)
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
        | FsCmd::Put { at, .. }
        | FsCmd::Get { at, .. }
        | FsCmd::Cat { at, .. }
        | FsCmd::Rereplicate { at, .. }
        | FsCmd::Ministry(MinistryCmd::Split { at, .. }) => at.clone(),
    };
    let client = match at.target.client().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("govfs: {e}");
            return 1;
        }
    };
    // Through the log: a CLI call is a fresh process with no session
    // history, and linearizable answers are what a person expects.
    let opts = FsOptions {
        root_ministry: at.ministry,
        creds: caller(),
        reads: ReadConsistency::Linearizable,
        ..FsOptions::default()
    };
    let mut fs = FileSystem::new(client, opts);
    let result = match cmd {
        FsCmd::Mkdir {
            path,
            mode,
            parents,
            ..
        } if parents => fs.mkdir_all(&path, mode).await,
        FsCmd::Mkdir { path, mode, .. } => fs.mkdir(&path, mode).await.map(|_| ()),
        FsCmd::Touch { path, mode, .. } => fs.create(&path, mode, false).await.map(|_| ()),
        FsCmd::Ls { path, .. } => fs.readdir(&path).await.map(|entries| {
            for e in entries {
                let name = String::from_utf8_lossy(&e.name);
                println!("{:<8} {:>14} {name}", kind(e.kind), e.ino.0);
            }
        }),
        FsCmd::Stat { path, .. } => fs.stat(&path).await.map(|a| {
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
        FsCmd::Rm { path, .. } => fs.remove(&path).await,
        FsCmd::Ministry(MinistryCmd::Split { path, .. }) => fs.split(&path).await.map(|m| {
            println!("{path} is now held by ministry {m}");
        }),
        FsCmd::Mv { from, to, .. } => fs.rename(&from, &to, false).await,
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
        FsCmd::Put {
            local, path, quiet, ..
        } => return report(crate::data_cmd::put(&mut fs, &local, &path, quiet).await),
        FsCmd::Get {
            path, local, quiet, ..
        } => return report(crate::data_cmd::get(&mut fs, &path, &local, quiet).await),
        FsCmd::Cat { path, .. } => return report(crate::data_cmd::cat(&mut fs, &path).await),
        FsCmd::Rereplicate { path, drop, .. } => {
            return report(crate::data_cmd::rereplicate(&mut fs, &path, &drop).await)
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

fn report(r: Result<(), String>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("govfs: {e}");
            1
        }
    }
}
