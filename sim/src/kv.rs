//! The checker's reference model of the key-value workload: its own session
//! table (independent of the node's) so a broken exactly-once shows up as a
//! divergence.

use std::collections::{BTreeMap, BTreeSet};

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
    /// For an append, the key's length after it (one value, `MOVED` if
    /// the key moved away); for a read, the key's list; for a transfer step,
    /// what it answered.
    pub values: Vec<u64>,
    /// Why a transfer step failed.
    pub failed: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kv {
    pub data: BTreeMap<u8, Vec<u64>>,
    /// Keys moved away by a transfer (detached, not yet unmounted or undone).
    pub away: BTreeSet<u8>,
    /// Lists detached by a transfer, until forgotten or undone.
    pub kept: BTreeMap<u64, (u8, Vec<u64>)>,
    pub attached: BTreeSet<u64>,
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
        let ok = |values: Vec<u64>| KvResult {
            index,
            values,
            failed: None,
        };
        let result = match cmd.op.clone() {
            KvOp::Append { key, .. } if self.away.contains(&key) => ok(vec![MOVED]),
            KvOp::Append { key, value } => {
                let list = self.data.entry(key).or_default();
                list.push(value);
                ok(vec![list.len() as u64])
            }
            KvOp::Read { key } => ok(self.data.get(&key).cloned().unwrap_or_default()),
            KvOp::Detach { transfer, key, .. } => match self.kept.get(&transfer) {
                Some((_, values)) => ok(values.clone()),
                None if self.away.contains(&key) => KvResult {
                    index,
                    values: Vec::new(),
                    failed: Some(format!("key {key} is away already")),
                },
                None => {
                    let values = self.data.remove(&key).unwrap_or_default();
                    self.away.insert(key);
                    self.kept.insert(transfer, (key, values.clone()));
                    ok(values)
                }
            },
            KvOp::Attach {
                transfer,
                key,
                values,
            } => {
                let occupied =
                    self.data.get(&key).is_some_and(|v| !v.is_empty()) || self.away.contains(&key);
                if self.attached.contains(&transfer) {
                    ok(Vec::new())
                } else if occupied {
                    KvResult {
                        index,
                        values: Vec::new(),
                        failed: Some(format!("key {key} exists here")),
                    }
                } else {
                    self.data.insert(key, values);
                    self.attached.insert(transfer);
                    ok(Vec::new())
                }
            }
            KvOp::Unmount { transfer } => {
                if let Some((key, _)) = self.kept.get(&transfer) {
                    self.away.remove(key);
                }
                ok(Vec::new())
            }
            KvOp::Forget { transfer } => {
                self.kept.remove(&transfer);
                ok(Vec::new())
            }
            KvOp::Undo { transfer } => {
                if let Some((key, values)) = self.kept.remove(&transfer) {
                    self.away.remove(&key);
                    self.data.insert(key, values);
                }
                ok(Vec::new())
            }
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

pub use govfs_core::node::kv::{KvApp, KvOp, MOVED};

/// Decode a node's answer to `op` into the model's terms.
pub fn decode_result(op: &KvOp, index: Index, output: &[u8]) -> Option<KvResult> {
    let (values, failed) = match op {
        KvOp::Append { .. } => (vec![decode_exact::<u64>(output).ok()?], None),
        KvOp::Read { .. } => (decode_exact::<Vec<u64>>(output).ok()?, None),
        _ => match decode_exact::<Result<Vec<u64>, String>>(output).ok()? {
            Ok(values) => (values, None),
            Err(why) => (Vec::new(), Some(why)),
        },
    };
    Some(KvResult {
        index,
        values,
        failed,
    })
}
