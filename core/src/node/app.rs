//! The replicated state machine a ministry runs (the namespace, in GovFS;
//! a key-value store in the simulator).

use crate::codec::DecodeError;
use crate::meta::types::Ino;
use crate::meta::ChunkPlace;
use crate::president::{ClusterMap, Step, Transfer};
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
    /// `inode_ranges` are the number ranges the president handed the ministry.
    fn on_appointed(&self, _ministry: GroupId, _inode_ranges: &[(u64, u64)]) -> Vec<Vec<u8>> {
        Vec::new()
    }

    /// Answer a read-only command from the applied state, without the log;
    /// `None` when `query` is not a read (it must then be proposed). Any
    /// member that serves may answer, so it must be deterministic in the
    /// state it reads.
    /// The command that runs `step` of `transfer` in a ministry (moving
    /// part of the state to another ministry, see
    /// [`crate::president::transfer`]); `image` is what the detach answered,
    /// for the attach. `None`: this application cannot move state.
    fn transfer_command(
        _transfer: &Transfer,
        _step: Step,
        _image: Option<&[u8]>,
    ) -> Option<Vec<u8>> {
        None
    }

    /// What a step's answer means: `Ok` with what the next step needs (a
    /// detach's image), or `Err` with why the step failed.
    fn transfer_outcome(_step: Step, _output: &[u8]) -> Result<Vec<u8>, String> {
        Err("this application cannot move state between ministries".into())
    }

    /// A minister may complete a client's command before proposing it,
    /// with what it knows and the replicated state does not (the cluster
    /// map: which storage nodes exist, to place chunks on). `None`: propose
    /// it as it came. Whatever it returns is applied on every member, so
    /// the application stays deterministic.
    fn prepare(&self, _command: &[u8], _map: &ClusterMap) -> Option<Vec<u8>> {
        None
    }

    /// For write grants (issue 6): the chunk size of file `file` and the
    /// placement of its chunks `indexes`, in that order; `Err` says why not
    /// (not a file, a chunk not placed yet).
    fn placements(&self, _file: Ino, _indexes: &[u64]) -> Result<(u32, Vec<ChunkPlace>), String> {
        Err("this application stores no file data".into())
    }

    /// For delete grants: the chunk size of a file that is gone and the
    /// placements of its chunks `indexes` that are still to delete; with
    /// `on`, the copies of `file`'s chunks `indexes` left on that node.
    fn garbage_placements(
        &self,
        _file: Ino,
        _indexes: &[u64],
        _on: Option<crate::raft::NodeId>,
    ) -> Result<(u32, Vec<ChunkPlace>), String> {
        Err("this application stores no file data".into())
    }

    /// `applied` is the index of the state it reads.
    fn query(&self, _applied: Index, _query: &[u8]) -> Option<Vec<u8>> {
        None
    }
}
