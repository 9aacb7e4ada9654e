//! The ministries' workload state machine in the simulator: keys holding
//! lists of appended values, with a session table so a resent request is
//! applied once.

use std::collections::BTreeMap;

use govfs_core::codec::{decode_exact, DecodeError};
use govfs_core::node::App;
use govfs_core::raft::Index;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOp {
    Append { key: u8, value: u64 },
    Read { key: u8 },
}

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
    /// The key's list after the append, or as read.
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
                    values: list.clone(),
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

/// The key-value store as the nodes run it: the session table (exactly-once)
/// is the node's, so the application only holds data. [`Kv`] above keeps its
/// own sessions and serves as the checker's independent reference model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvApp {
    pub data: BTreeMap<u8, Vec<u64>>,
}

impl App for KvApp {
    fn apply(&mut self, _index: Index, command: &[u8]) -> Vec<u8> {
        let values = match decode_exact::<KvOp>(command) {
            Ok(KvOp::Append { key, value }) => {
                let list = self.data.entry(key).or_default();
                list.push(value);
                list.clone()
            }
            Ok(KvOp::Read { key }) => self.data.get(&key).cloned().unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        postcard::to_stdvec(&values).expect("values encode")
    }

    fn snapshot(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("kv encodes")
    }

    fn restore(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_exact(bytes)
    }
}

/// Decode a node's answer into the model's terms.
pub fn decode_result(index: Index, output: &[u8]) -> Option<KvResult> {
    decode_exact::<Vec<u64>>(output).ok().map(|values| KvResult { index, values })
}
