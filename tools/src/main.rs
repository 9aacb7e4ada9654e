//! `govfs`: the GovFS command-line tool.

mod bench_cmd;
mod cluster_cmd;
mod config;
mod demo_cmd;
mod fs_cmd;
mod node_cmd;
mod sim_cmd;
mod status_cmd;
mod target;

use clap::{Parser, Subcommand};

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
    /// Benchmarks against a real local cluster.
    #[command(subcommand)]
    Bench(bench_cmd::BenchCmd),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Demo(args) => demo_cmd::run(args),
        Command::Fs(args) => fs_cmd::run(args),
        Command::Node(args) => node_cmd::run(args),
        Command::Cluster(cmd) => cluster_cmd::run(cmd),
        Command::Status(args) => status_cmd::run(args),
        Command::Sim(args) => sim_cmd::run(args),
        Command::Bench(cmd) => bench_cmd::run(cmd),
    };
    std::process::exit(code);
}
