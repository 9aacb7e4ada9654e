//! The simulator as part of `cargo test`: many faulty seeds must pass, a seed
//! must replay identically, and every deliberate bug must be caught.

use govfs_sim::{run_seed, Application, Bug, SimOptions};

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

fn meta() -> SimOptions {
    SimOptions {
        app: Application::Meta,
        ..SimOptions::default()
    }
}

/// The namespace mode: seeds with faults pass, and the workload did real
/// work: many successful creates and every error the collisions should
/// produce, so a workload that stopped colliding (or stopped running)
/// fails here rather than passing vacuously.
#[test]
fn namespace_seeds_stay_safe_and_collide() {
    let opts = meta();
    let mut outcomes = std::collections::BTreeMap::<String, u64>::new();
    for seed in 1..=12 {
        let r = run_seed(seed, &opts)
            .unwrap_or_else(|f| panic!("seed {seed}: {}\n{}", f.violation, f.trace.join("\n")));
        for ministry in [1, 2] {
            let ops = r.ops_by_ministry.get(&ministry).copied().unwrap_or(0);
            assert!(
                ops > 100,
                "seed {seed}: ministry {ministry} completed {ops} operations"
            );
        }
        for (k, n) in r.outcomes {
            *outcomes.entry(k).or_default() += n;
        }
    }
    let count = |k: &str| outcomes.get(k).copied().unwrap_or(0);
    for (outcome, least) in [
        ("create-excl ok", 200),
        ("mkdir ok", 200),
        ("symlink ok", 50),
        ("rename ok", 50),
        ("unlink ok", 50),
        ("rmdir ok", 10),
        ("chmod ok", 50),
        ("truncate ok", 20),
        ("create existing", 10),
        ("create-excl EEXIST", 50),
        ("mkdir EEXIST", 50),
        ("rename ENOENT", 50),
        ("unlink ENOENT", 50),
        ("rmdir ENOTEMPTY", 20),
        ("rename ENOTEMPTY", 5),
        ("rename EINVAL", 10),
        ("rmdir ENOTDIR", 20),
        ("unlink EISDIR", 20),
        ("mkdir EACCES", 20),
        ("chmod EPERM", 20),
        ("stat ENOENT", 10),
        ("lookup ok", 50),
        ("readdir ok", 50),
        ("readlink ok", 2),
    ] {
        assert!(
            count(outcome) >= least,
            "only {} '{outcome}' in 12 namespace seeds (want {least}): {outcomes:?}",
            count(outcome)
        );
    }
}

#[test]
fn a_namespace_seed_replays_identically() {
    let a = run_seed(7, &meta()).expect("seed 7 passes");
    let b = run_seed(7, &meta()).expect("seed 7 passes");
    assert_eq!((a.hash, a.steps), (b.hash, b.steps));
    assert_eq!(a.outcomes, b.outcomes);
}

/// The consensus bugs are caught with the namespace running too.
#[test]
fn commit_without_majority_is_caught_in_namespace_mode() {
    let opts = SimOptions {
        bug: Some(Bug::CommitWithoutMajority),
        ..meta()
    };
    let caught = (1..=50).find_map(|seed| run_seed(seed, &opts).err());
    let failure = caught.expect("commit-without-majority caught within 50 namespace seeds");
    assert!(!failure.violation.is_empty());
}
