//! The checker's reference model of the key-value workload: its own session
//! table (independent of the node's) so a broken exactly-once shows up as a
//! divergence.

use std::collections::BTreeMap;

use govfs_core::codec::decode_exact;
use govfs_core::raft::Index;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvCommand {
    pub client: u64,
    /// Per-client request id; a client has one request outstanding at a time.
    pub seq: u64,
    pub op: KvOp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvResult {
    /// Log index at which the request took effect (its first application).
    pub index: Index,
    /// For an append, the key's length after it (one value); for a read,
    /// the key's list.
    pub values: Vec<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kv {
    pub data: BTreeMap<u8, Vec<u64>>,
    /// client -> (last seq applied, its result)
    pub sessions: BTreeMap<u64, (u64, KvResult)>,
}

impl Kv {
    /// Apply a committed command. `None` for a request older than one already
    /// applied for that client (a late duplicate nobody waits for).
    pub fn apply(&mut self, index: Index, cmd: &KvCommand) -> Option<KvResult> {
        if let Some((seq, result)) = self.sessions.get(&cmd.client) {
            if cmd.seq == *seq {
                return Some(result.clone());
            }
            if cmd.seq < *seq {
                return None;
            }
        }
        let result = match cmd.op {
            KvOp::Append { key, value } => {
                let list = self.data.entry(key).or_default();
                list.push(value);
                KvResult {
                    index,
                    values: vec![list.len() as u64],
                }
            }
            KvOp::Read { key } => KvResult {
                index,
                values: self.data.get(&key).cloned().unwrap_or_default(),
            },
        };
        self.sessions.insert(cmd.client, (cmd.seq, result.clone()));
        Some(result)
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("kv encodes")
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }
}

pub use govfs_core::node::kv::{KvApp, KvOp};

/// Decode a node's answer to `op` into the model's terms.
pub fn decode_result(op: &KvOp, index: Index, output: &[u8]) -> Option<KvResult> {
    let values = match op {
        KvOp::Append { .. } => vec![decode_exact::<u64>(output).ok()?],
        KvOp::Read { .. } => decode_exact::<Vec<u64>>(output).ok()?,
    };
    Some(KvResult { index, values })
}
