//! The replicated state machine a ministry runs (the namespace, in GovFS;
//! a key-value store in the simulator).

use crate::codec::DecodeError;
use crate::raft::{GroupId, Index};

pub trait App: Default {
    /// Apply a committed client command and return the answer for the client.
    /// Must be deterministic: every member applies the same log.
    fn apply(&mut self, index: Index, command: &[u8]) -> Vec<u8>;
    fn snapshot(&self) -> Vec<u8>;
    fn restore(bytes: &[u8]) -> Result<Self, DecodeError>;

    /// Commands a newly appointed minister of `ministry` proposes before
    /// anything else (e.g. claiming resources the state needs). Applied
    /// like any command, so every member sees them; they must be harmless
    /// when applied again by a later minister.
    fn on_appointed(&self, _ministry: GroupId) -> Vec<Vec<u8>> {
        Vec::new()
    }

    /// Answer a read-only command from the applied state, without the log;
    /// `None` when `query` is not a read (it must then be proposed). Any
    /// member that serves may answer, so it must be deterministic in the
    /// state it reads.
    /// `applied` is the index of the state it reads.
    fn query(&self, _applied: Index, _query: &[u8]) -> Option<Vec<u8>> {
        None
    }
}
