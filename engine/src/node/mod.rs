//! The node: the sans-IO `NodeCore` run on real storage and sockets, one
//! core thread per CPU given to it.

pub mod chunks;
mod core_loop;
pub mod data_path;
pub mod lamport;
mod listener;
pub mod routing;
pub mod runtime;
pub mod storage;

pub use chunks::StorageSettings;
pub use runtime::{run, NodeError, NodeSettings};
