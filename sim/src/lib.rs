//! GovFS's deterministic simulator: a president group and several ministries
//! in one process, on a virtual clock, with seeded crashes, partitions
//! (including one-way cuts between a minister and one clerk), message loss,
//! duplication, reordering and delay, and disks that lose unsynced writes.
//! Safety is checked after every step (see [`checker`]); a seed names a run.
//! The ministries run a key-value store ([`kv`]) or the namespace ([`meta`]),
//! each checked against its own reference model ([`workload`]).

pub mod checker;
pub mod disk;
pub mod kv;
pub mod meta;
pub mod node;
pub mod rng;
pub mod workload;
pub mod world;

pub use workload::Application;
pub use world::{Bug, Failure, RunReport, SimOptions, World};

/// Run one seed to completion. Assertions inside the core that fire are
/// reported as violations with the seed and trace, like checker failures.
pub fn run_seed(seed: u64, opts: &SimOptions) -> Result<RunReport, Failure> {
    match opts.app {
        Application::Kv => World::<kv::KvWorkload>::new(seed, opts.clone()).run(seed),
        Application::Meta => World::<meta::MetaWorkload>::new(seed, opts.clone()).run(seed),
    }
}
