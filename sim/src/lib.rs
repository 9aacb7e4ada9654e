//! GovFS's deterministic simulator: a president group and several ministries
//! in one process, on a virtual clock, with seeded crashes, partitions
//! (including one-way cuts between a minister and one clerk), message loss,
//! duplication, reordering and delay, and disks that lose unsynced writes.
//! Safety is checked after every step (see [`checker`]); a seed names a run.

pub mod checker;
pub mod disk;
pub mod kv;
pub mod node;
pub mod rng;
pub mod world;

pub use world::{Bug, Failure, RunReport, SimOptions, World};

/// Run one seed to completion. Assertions inside the core that fire are
/// reported as violations with the seed and trace, like checker failures.
pub fn run_seed(seed: u64, opts: &SimOptions) -> Result<RunReport, Failure> {
    World::new(seed, opts.clone()).run(seed)
}
