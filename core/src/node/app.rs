//! The replicated state machine a ministry runs (the namespace, in GovFS;
//! a key-value store in the simulator).

use crate::codec::DecodeError;
use crate::raft::Index;

pub trait App: Default {
    /// Apply a committed client command and return the answer for the client.
    /// Must be deterministic: every member applies the same log.
    fn apply(&mut self, index: Index, command: &[u8]) -> Vec<u8>;
    fn snapshot(&self) -> Vec<u8>;
    fn restore(bytes: &[u8]) -> Result<Self, DecodeError>;
}
