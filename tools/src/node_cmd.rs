//! `govfs node --config FILE`: run one node until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use govfs_core::meta::Namespace;
use govfs_core::node::kv::KvApp;

use crate::config::{AppKind, NodeFile};
use crate::repair::{self, RepairSettings};

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The node's TOML configuration.
    #[arg(long)]
    config: PathBuf,
}

pub fn run(args: NodeArgs) -> i32 {
    let file = match NodeFile::load(&args.config) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("govfs node: {e}");
            return 2;
        }
    };
    let settings = match file.settings(&args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("govfs node: {e}");
            return 2;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("govfs node: cannot handle signal {sig}: {e}");
            return 1;
        }
    }
    // The re-replication agent serves the file system's ministries.
    let agent = if file.app == AppKind::Meta && !file.repair.disabled {
        let repair = RepairSettings {
            node: file.id,
            addrs: settings.peers.values().copied().collect(),
            key: settings.key.clone(),
            delay: Duration::from_millis(file.repair.delay_ms),
            interval: Duration::from_millis(file.repair.interval_ms.max(1)),
        };
        match repair::spawn(repair, Arc::clone(&stop)) {
            Ok(handle) => Some(handle),
            Err(e) => {
                eprintln!("govfs node: cannot start the re-replication agent: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    let result = match file.app {
        AppKind::Kv => govfs_engine::node::run::<KvApp>(settings, Arc::clone(&stop)),
        AppKind::Meta => govfs_engine::node::run::<Namespace>(settings, Arc::clone(&stop)),
    };
    stop.store(true, Ordering::Relaxed);
    if let Some(agent) = agent {
        let _ = agent.join();
    }
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("govfs node {}: {e}", file.id);
            1
        }
    }
}
