//! `govfs mount [ADDR] MOUNTPOINT`: the cluster's namespace and file data
//! as a local file system (FUSE, through fuser's pure-Rust mount and
//! `fusermount3`), in the foreground until SIGINT, SIGTERM or
//! `fusermount3 -u MOUNTPOINT`. Either way every open file's size is
//! reported and every lease given back before it exits.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use fuser::{Config, MountOption, SessionACL};

use crate::mount_fs::{GovFuse, Inner};
use crate::target::Target;

#[derive(Args, Debug)]
pub struct MountArgs {
    /// `[ADDR[,ADDR...]] MOUNTPOINT`: node addresses (else --cluster or
    /// GOVFS_CLUSTER) and an existing empty directory to mount on.
    #[arg(num_args = 1..=2, required = true, value_name = "[ADDR] MOUNTPOINT")]
    places: Vec<String>,
    /// Node addresses, comma separated [env: GOVFS_CLUSTER].
    #[arg(long, env = "GOVFS_CLUSTER")]
    cluster: Option<String>,
    /// File holding the cluster key in hex [env: GOVFS_KEY_FILE].
    #[arg(long, env = "GOVFS_KEY_FILE")]
    key_file: PathBuf,
    /// Let users other than the one mounting use it (`allow_other`).
    #[arg(long)]
    allow_other: bool,
}

pub fn run(args: MountArgs) -> i32 {
    let (cluster, mountpoint) = match args.places.as_slice() {
        [m] => (args.cluster.clone(), PathBuf::from(m)),
        [a, m] => (Some(a.clone()), PathBuf::from(m)),
        _ => (None, PathBuf::new()),
    };
    let Some(cluster) = cluster else {
        eprintln!("govfs mount: name the cluster: ADDR, --cluster or GOVFS_CLUSTER");
        return 2;
    };
    if !mountpoint.is_dir() {
        eprintln!("govfs mount: {} is not a directory", mountpoint.display());
        return 2;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("govfs mount: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let target = Target {
        cluster: cluster.clone(),
        key_file: args.key_file.clone(),
    };
    let client = match rt.block_on(target.client()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("govfs mount: cannot reach the cluster: {e}");
            return 1;
        }
    };
    let fuse = GovFuse {
        inner: Arc::new(Inner::new(client)),
        rt: rt.handle().clone(),
    };
    let mut cfg = Config::default();
    cfg.mount_options = vec![
        MountOption::FSName("govfs".into()),
        MountOption::Subtype("govfs".into()),
        MountOption::RW,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if args.allow_other {
        cfg.acl = SessionACL::All;
    }
    let mut session = match fuser::Session::new(fuse, &mountpoint, &cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "govfs mount: cannot mount on {} (is /dev/fuse there and fusermount3 installed?): {e}",
                mountpoint.display()
            );
            return 1;
        }
    };
    let mut unmounter = session.unmount_callable();
    let point = mountpoint.clone();
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ]);
    match signals {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                for sig in signals.forever() {
                    eprintln!("govfs mount: signal {sig}: unmounting {}", point.display());
                    match unmounter.unmount() {
                        Ok(()) => break,
                        Err(e) => {
                            // Busy (a process inside): detach it now, it goes when free.
                            eprintln!("govfs mount: unmount: {e}; unmounting lazily");
                            let lazy = std::process::Command::new("fusermount3")
                                .args(["-u", "-z"])
                                .arg(&point)
                                .status();
                            if matches!(lazy, Ok(s) if s.success()) {
                                break;
                            }
                        }
                    }
                }
            });
        }
        Err(e) => eprintln!("govfs mount: no signal handling ({e}): unmount with fusermount3 -u"),
    }
    eprintln!("govfs mount: {cluster} mounted at {}", mountpoint.display());
    let point = mountpoint.clone();
    std::thread::spawn(move || raise_readahead(&point));
    let ended = session.run();
    rt.shutdown_timeout(Duration::from_secs(2));
    match ended {
        Ok(()) => {
            eprintln!("govfs mount: unmounted {}", mountpoint.display());
            0
        }
        Err(e) => {
            eprintln!("govfs mount: the FUSE session ended with an error: {e}");
            1
        }
    }
}

/// Sequential reads through FUSE come in requests of the kernel's
/// readahead window, 128 KiB by default, each a round trip through the
/// mount; a window of `READAHEAD_KB` makes them 1 MiB (reads of a large
/// file went from 238 to 372 MB/s here). The window is the mount's bdi
/// setting, only writable once the kernel finished the FUSE handshake (it
/// lowers it to what the handshake agreed) and only by root: best effort.
fn raise_readahead(mountpoint: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    const READAHEAD_KB: u32 = 1024;
    // A stat waits for the handshake (the kernel queues it behind INIT).
    let dev = match std::fs::metadata(mountpoint) {
        Ok(m) => m.dev(),
        Err(e) => {
            tracing::info!("readahead left as it is: {e}");
            return;
        }
    };
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let knob = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    match std::fs::write(&knob, READAHEAD_KB.to_string()) {
        Ok(()) => tracing::info!("{knob} = {READAHEAD_KB}"),
        Err(e) => tracing::info!("readahead left as it is ({knob}: {e})"),
    }
}
