//! The simulator as part of `cargo test`: many faulty seeds must pass, a seed
//! must replay identically, and every deliberate bug must be caught.

use govfs_sim::{run_seed, Bug, SimOptions};

#[test]
fn many_seeds_with_faults_stay_safe() {
    let opts = SimOptions::default();
    let mut ops = 0;
    let mut crashes = 0;
    for seed in 1..=150 {
        match run_seed(seed, &opts) {
            Ok(r) => {
                ops += r.completed_ops;
                crashes += r.crashes;
            }
            Err(f) => panic!("seed {seed}: {}\n{}", f.violation, f.trace.join("\n")),
        }
    }
    // The runs must actually exercise the cluster, not pass vacuously.
    assert!(ops > 10_000, "only {ops} client operations completed");
    assert!(crashes > 100, "only {crashes} crashes injected");
}

/// Three nodes with two shards each hold two ministries of three only if
/// every node serves both: the shards of one node lead separate lives.
#[test]
fn three_nodes_serve_two_ministries_each() {
    let opts = SimOptions {
        nodes: 3,
        voters: 3,
        ministries: 2,
        shards: 2,
        ..SimOptions::default()
    };
    for seed in 1..=40 {
        let r = run_seed(seed, &opts)
            .unwrap_or_else(|f| panic!("seed {seed}: {}\n{}", f.violation, f.trace.join("\n")));
        for ministry in [1, 2] {
            let ops = r.ops_by_ministry.get(&ministry).copied().unwrap_or(0);
            assert!(
                ops > 0,
                "seed {seed}: ministry {ministry} completed no operation"
            );
        }
    }
}

#[test]
fn a_seed_replays_identically() {
    let opts = SimOptions::default();
    let a = run_seed(42, &opts).expect("seed 42 passes");
    let b = run_seed(42, &opts).expect("seed 42 passes");
    assert_eq!(a.hash, b.hash);
    assert_eq!(a.steps, b.steps);
    let c = run_seed(43, &opts).expect("seed 43 passes");
    assert_ne!(a.hash, c.hash, "different seeds should make different runs");
}

#[test]
fn every_injected_bug_is_caught_within_500_seeds() {
    for bug in Bug::ALL {
        let opts = SimOptions {
            bug: Some(bug),
            ..SimOptions::default()
        };
        let caught = (1..=500).find_map(|seed| run_seed(seed, &opts).err());
        let failure =
            caught.unwrap_or_else(|| panic!("{} was not caught in 500 seeds", bug.name()));
        assert!(!failure.violation.is_empty());
        eprintln!(
            "{} caught at seed {}: {}",
            bug.name(),
            failure.seed,
            failure.violation
        );
    }
}
