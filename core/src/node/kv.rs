//! A key-value workload application: keys holding lists of appended values.
//! The simulator and the cluster tests drive ministries with it until the
//! namespace takes its place; an append of a unique value makes lost or
//! doubled changes visible.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::app::App;
use crate::codec::{decode_exact, DecodeError};
use crate::president::{Step, Transfer, TransferKind};
use crate::raft::Index;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOp {
    Append {
        key: u8,
        value: u64,
    },
    Read {
        key: u8,
    },
    // Transfer steps (the president's, see `crate::president::transfer`):
    // move a key's list to another ministry. Each answers a postcard
    // `Result<Vec<u64>, String>`.
    /// Take the key out, keep its list under `transfer`, and mark it away
    /// (to ministry `to`): appends to it answer [`MOVED`] from then on.
    Detach {
        transfer: u64,
        key: u8,
        to: u64,
    },
    /// Add a moved key; refused if the key holds values or is away.
    Attach {
        transfer: u64,
        key: u8,
        values: Vec<u64>,
    },
    /// Drop the away mark of a detached key.
    Unmount {
        transfer: u64,
    },
    /// Drop the kept list of a detached key.
    Forget {
        transfer: u64,
    },
    /// Put a detached key back (its attach failed).
    Undo {
        transfer: u64,
    },
}

/// What an append to a key that moved to another ministry answers.
pub const MOVED: u64 = u64::MAX;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvApp {
    pub data: BTreeMap<u8, Vec<u64>>,
    /// Keys detached to another ministry, and where they went.
    pub away: BTreeMap<u8, u64>,
    /// Detached lists kept until forgotten or undone, by transfer.
    pub kept: BTreeMap<u64, (u8, Vec<u64>)>,
    /// Transfers attached here.
    pub attached: BTreeSet<u64>,
}

impl KvApp {
    fn step(&mut self, op: KvOp) -> Result<Vec<u64>, String> {
        match op {
            KvOp::Detach { transfer, key, to } => {
                if let Some((_, values)) = self.kept.get(&transfer) {
                    return Ok(values.clone());
                }
                if self.away.contains_key(&key) {
                    return Err(format!("key {key} is away already"));
                }
                let values = self.data.remove(&key).unwrap_or_default();
                self.kept.insert(transfer, (key, values.clone()));
                self.away.insert(key, to);
                Ok(values)
            }
            KvOp::Attach {
                transfer,
                key,
                values,
            } => {
                if self.attached.contains(&transfer) {
                    return Ok(Vec::new());
                }
                if self.data.get(&key).is_some_and(|v| !v.is_empty())
                    || self.away.contains_key(&key)
                {
                    return Err(format!("key {key} exists here"));
                }
                self.data.insert(key, values);
                self.attached.insert(transfer);
                Ok(Vec::new())
            }
            KvOp::Unmount { transfer } => {
                if let Some((key, _)) = self.kept.get(&transfer) {
                    self.away.remove(key);
                }
                Ok(Vec::new())
            }
            KvOp::Forget { transfer } => {
                self.kept.remove(&transfer);
                Ok(Vec::new())
            }
            KvOp::Undo { transfer } => {
                if let Some((key, values)) = self.kept.remove(&transfer) {
                    self.away.remove(&key);
                    self.data.insert(key, values);
                }
                Ok(Vec::new())
            }
            KvOp::Append { .. } | KvOp::Read { .. } => Err("not a transfer step".into()),
        }
    }
}

impl App for KvApp {
    /// An append answers with the key's length after it (postcard `u64`):
    /// constant-size, so a long-running workload does not measure the
    /// answer's growth; [`MOVED`] if the key moved away. A read answers with
    /// the key's list (postcard `Vec<u64>`).
    fn apply(&mut self, _index: Index, command: &[u8]) -> Vec<u8> {
        match decode_exact::<KvOp>(command) {
            Ok(KvOp::Append { key, .. }) if self.away.contains_key(&key) => {
                postcard::to_stdvec(&MOVED).expect("lengths encode")
            }
            Ok(KvOp::Append { key, value }) => {
                let list = self.data.entry(key).or_default();
                list.push(value);
                postcard::to_stdvec(&(list.len() as u64)).expect("lengths encode")
            }
            Ok(KvOp::Read { key }) => {
                let values = self.data.get(&key).map_or(&[][..], |v| v.as_slice());
                postcard::to_stdvec(values).expect("values encode")
            }
            Ok(step) => postcard::to_stdvec(&self.step(step)).expect("answers encode"),
            Err(_) => Vec::new(),
        }
    }

    /// A transfer moves the key numbered by the request's `ino` (renamed to
    /// `new_name[0]` by a rename).
    fn transfer_command(transfer: &Transfer, step: Step, image: Option<&[u8]>) -> Option<Vec<u8>> {
        let id = transfer.id;
        let key = u8::try_from(transfer.request.ino).ok()?;
        let op = match step {
            Step::Detach => KvOp::Detach {
                transfer: id,
                key,
                to: transfer.to?,
            },
            Step::Attach => {
                let key = match &transfer.request.kind {
                    TransferKind::Rename { new_name, .. } => *new_name.first()?,
                    _ => key,
                };
                let values = decode_exact::<Vec<u64>>(image?).ok()?;
                KvOp::Attach {
                    transfer: id,
                    key,
                    values,
                }
            }
            Step::Unmount => KvOp::Unmount { transfer: id },
            Step::Forget => KvOp::Forget { transfer: id },
            Step::Undo => KvOp::Undo { transfer: id },
            Step::Form | Step::Drop => return None,
        };
        Some(postcard::to_stdvec(&op).expect("ops encode"))
    }

    fn transfer_outcome(_step: Step, output: &[u8]) -> Result<Vec<u8>, String> {
        match decode_exact::<Result<Vec<u64>, String>>(output) {
            Ok(Ok(values)) => Ok(postcard::to_stdvec(&values).expect("values encode")),
            Ok(Err(why)) => Err(why),
            Err(e) => Err(format!("undecodable step answer: {e}")),
        }
    }

    fn query(&self, _applied: Index, query: &[u8]) -> Option<Vec<u8>> {
        match decode_exact::<KvOp>(query) {
            Ok(KvOp::Read { key }) => {
                let values = self.data.get(&key).map_or(&[][..], |v| v.as_slice());
                Some(postcard::to_stdvec(values).expect("values encode"))
            }
            _ => None,
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("kv encodes")
    }

    fn restore(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_exact(bytes)
    }
}

/// Decode the answer to a [`KvOp::Read`].
pub fn decode_values(output: &[u8]) -> Result<Vec<u64>, DecodeError> {
    decode_exact(output)
}

/// Decode the answer to a [`KvOp::Append`]: the key's length after it.
pub fn decode_len(output: &[u8]) -> Result<u64, DecodeError> {
    decode_exact(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(o: KvOp) -> Vec<u8> {
        postcard::to_stdvec(&o).unwrap()
    }

    #[test]
    fn appends_answer_lengths_and_reads_answer_lists() {
        let mut kv = KvApp::default();
        for v in [7, 8, 9] {
            let out = kv.apply(0, &op(KvOp::Append { key: 1, value: v }));
            assert_eq!(decode_len(&out).unwrap(), v - 6);
        }
        let out = kv.apply(0, &op(KvOp::Read { key: 1 }));
        assert_eq!(decode_values(&out).unwrap(), vec![7, 8, 9]);
        let out = kv.apply(0, &op(KvOp::Read { key: 2 }));
        assert!(decode_values(&out).unwrap().is_empty());
        assert!(kv.apply(0, b"\xff\xff").is_empty());
    }
}
