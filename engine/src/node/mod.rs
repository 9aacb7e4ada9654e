//! The node: the sans-IO `NodeCore` run on real storage and sockets.

pub mod runtime;
pub mod storage;

pub use runtime::{run, NodeError, NodeSettings};
