//! `govfs sim`: run seeds of the deterministic simulator.

use std::time::Instant;

use clap::{Args, ValueEnum};
use govfs_sim::{run_seed, Application, Bug, SimOptions};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BugName {
    /// Voters grant votes without checking the term or an earlier vote.
    VoteIgnoresTerm,
    /// Leaders commit on their own durable copy, without a majority.
    CommitWithoutMajority,
    /// The president appoints a minister after a single poll answer.
    AppointWithoutMajority,
    /// Followers accept appends from leaders with an older term.
    AcceptStaleTerm,
}

impl From<BugName> for Bug {
    fn from(b: BugName) -> Bug {
        match b {
            BugName::VoteIgnoresTerm => Bug::VoteIgnoresTerm,
            BugName::CommitWithoutMajority => Bug::CommitWithoutMajority,
            BugName::AppointWithoutMajority => Bug::AppointWithoutMajority,
            BugName::AcceptStaleTerm => Bug::AcceptStaleTerm,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AppName {
    /// Key-value lists (one key moves between ministries every seed).
    Kv,
    /// The namespace, checked against a model file system.
    Meta,
}

impl From<AppName> for Application {
    fn from(a: AppName) -> Application {
        match a {
            AppName::Kv => Application::Kv,
            AppName::Meta => Application::Meta,
        }
    }
}

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Run seeds 1..=N.
    #[arg(long, conflicts_with = "seed")]
    seeds: Option<u64>,
    /// Run this one seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Turn on a deliberate bug to see the checker catch it.
    #[arg(long, value_enum)]
    inject_bug: Option<BugName>,
    /// Nodes in the simulated cluster.
    #[arg(long, default_value_t = 7)]
    nodes: u64,
    /// What the ministries run.
    #[arg(long, value_enum, default_value = "kv")]
    app: AppName,
    /// Ministries to form.
    #[arg(long, default_value_t = 2)]
    ministries: usize,
    /// Print one line per seed.
    #[arg(long)]
    verbose: bool,
}

pub fn run(args: SimArgs) -> i32 {
    let seeds: Vec<u64> = match (args.seed, args.seeds) {
        (Some(s), _) => vec![s],
        (None, Some(n)) => (1..=n).collect(),
        (None, None) => (1..=100).collect(),
    };
    let opts = SimOptions {
        nodes: args.nodes.max(3),
        ministries: args.ministries.max(1),
        bug: args.inject_bug.map(Bug::from),
        app: args.app.into(),
        ..SimOptions::default()
    };
    // Assertions inside the core are caught and reported as violations;
    // keep the default hook from printing each one.
    std::panic::set_hook(Box::new(|_| {}));
    let started = Instant::now();
    let mut run_hash = 0xcbf2_9ce4_8422_2325u64;
    let (mut ops, mut steps, mut crashes, mut cuts, mut reconfigs) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut outcomes = std::collections::BTreeMap::<String, u64>::new();
    for &seed in &seeds {
        match run_seed(seed, &opts) {
            Ok(r) => {
                if args.verbose || seeds.len() == 1 {
                    println!(
                        "seed {seed}: ok, {} steps, {} client ops, {} crashes, {} cuts, {} leader changes, {} voter changes, hash {:016x}",
                        r.steps, r.completed_ops, r.crashes, r.partitions, r.leader_changes, r.reconfigs, r.hash
                    );
                }
                ops += r.completed_ops;
                steps += r.steps;
                crashes += r.crashes;
                cuts += r.partitions;
                reconfigs += r.reconfigs;
                for (k, n) in r.outcomes {
                    *outcomes.entry(k).or_default() += n;
                }
                for b in r.hash.to_le_bytes() {
                    run_hash ^= b as u64;
                    run_hash = run_hash.wrapping_mul(0x0100_0000_01b3);
                }
            }
            Err(f) => {
                println!("VIOLATION with seed {}: {}", f.seed, f.violation);
                println!("the last {} steps before it:", f.trace.len());
                for line in &f.trace {
                    println!("  {line}");
                }
                println!(
                    "reproduce with: govfs sim --app {} --seed {}{}",
                    opts.app.name(),
                    f.seed,
                    bug_flag(&args)
                );
                return 1;
            }
        }
    }
    println!(
        "{} seeds passed in {:.1}s: {steps} steps, {ops} client ops checked, {crashes} crashes, {cuts} network cuts, {reconfigs} president voter changes",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    if !outcomes.is_empty() {
        let line: Vec<String> = outcomes.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("outcomes: {}", line.join(", "));
    }
    println!("run hash: {run_hash:016x}");
    0
}

fn bug_flag(args: &SimArgs) -> String {
    match args.inject_bug {
        Some(b) => format!(
            " --inject-bug {}",
            b.to_possible_value()
                .map(|v| v.get_name().to_string())
                .unwrap_or_default()
        ),
        None => String::new(),
    }
}
