//! GovFS core: sans-IO state machines. Nothing here opens a socket, reads a
//! clock, spawns a thread or touches a disk; callers feed messages and time in
//! and carry out the actions that come back.

pub mod codec;
pub mod data;
pub mod ids;
pub mod lease;
pub mod meta;
pub mod node;
pub mod president;
pub mod raft;
pub mod wal;
