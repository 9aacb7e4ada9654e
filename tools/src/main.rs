//! `govfs`: the GovFS command-line tool.

mod bench_chunks;
mod bench_cmd;
mod bench_data;
mod bench_locks;
mod bench_meta;
mod bench_rtt;
mod bench_thesis;
mod cluster_cmd;
mod config;
mod data_cmd;
mod demo_cmd;
mod fs_cmd;
mod mount_cmd;
mod mount_data;
mod mount_fs;
mod mount_inodes;
mod mount_locks;
mod node_cmd;
mod repair;
mod sim_cmd;
mod status_cmd;
mod target;
mod thesis_data;
mod thesis_plot;
mod thesis_report;

use clap::{Parser, Subcommand};

/// mimalloc, built with `no_thp`: it turns transparent huge pages off for
/// the process (`PR_SET_THP_DISABLE`). With THP on, every fresh region the
/// allocator touched faulted in a whole 2 MiB page that the kernel zeroed:
/// the first `bench meta` run after an idle spell spent 13% of the nodes'
/// CPU in `clear_page` and created 40 k files/s; with THP off, 60 k.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "govfs",
    version,
    about = "GovFS: a distributed file system whose control plane scales out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local cluster, write through it across a minister's SIGKILL, verify, stop.
    Demo(demo_cmd::DemoArgs),
    #[command(flatten)]
    Fs(fs_cmd::FsCmd),
    /// Run one node (daemon) from its TOML configuration.
    Node(node_cmd::NodeArgs),
    /// Start, stop and poke a local cluster of node processes.
    #[command(subcommand)]
    Cluster(cluster_cmd::ClusterCmd),
    /// Print a table of the cluster's nodes, ministries, terms and indexes.
    Status(status_cmd::StatusArgs),
    /// Run the deterministic cluster simulator and check safety after every step.
    Sim(sim_cmd::SimArgs),
    /// Mount the cluster's file system with FUSE (foreground; SIGINT, SIGTERM or `fusermount3 -u` unmounts).
    Mount(mount_cmd::MountArgs),
    /// Benchmarks against a real local cluster.
    #[command(subcommand)]
    Bench(bench_cmd::BenchCmd),
}

/// Runs a command that talks to a cluster on a tokio runtime (the node,
/// the simulator and plain cluster commands need none).
fn block_on<F: std::future::Future<Output = i32>>(f: F) -> i32 {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("govfs: cannot start the async runtime: {e}");
            1
        }
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Demo(args) => block_on(demo_cmd::run(args)),
        Command::Fs(args) => block_on(fs_cmd::run(args)),
        Command::Node(args) => node_cmd::run(args),
        Command::Cluster(cmd) => block_on(cluster_cmd::run(cmd)),
        Command::Status(args) => block_on(status_cmd::run(args)),
        Command::Sim(args) => sim_cmd::run(args),
        Command::Mount(args) => mount_cmd::run(args),
        Command::Bench(cmd) => block_on(bench_cmd::run(cmd)),
    };
    std::process::exit(code);
}
