//! `govfs node --config FILE`: run one node until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Args;
use govfs_core::meta::Namespace;
use govfs_core::node::kv::KvApp;

use crate::config::{AppKind, NodeFile};

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
    let result = match file.app {
        AppKind::Kv => govfs_engine::node::run::<KvApp>(settings, stop),
        AppKind::Meta => govfs_engine::node::run::<Namespace>(settings, stop),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("govfs node {}: {e}", file.id);
            1
        }
    }
}
