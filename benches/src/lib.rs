//! Drivers shared by the GovFS benchmarks (`benches/consensus.rs`) and the
//! `consensus_report` binary that produces the numbers in `docs/benchmarks.md`.

pub mod consensus;
pub mod fsync;
