//! `govfs`: the GovFS command-line tool.

mod sim_cmd;

use clap::{Parser, Subcommand};

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
    /// Run the deterministic cluster simulator and check safety after every step.
    Sim(sim_cmd::SimArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Sim(args) => sim_cmd::run(args),
    };
    std::process::exit(code);
}
