//! A key-value workload application: keys holding lists of appended values.
//! The simulator and the cluster tests drive ministries with it until the
//! namespace takes its place; an append of a unique value makes lost or
//! doubled changes visible.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::app::App;
use crate::codec::{decode_exact, DecodeError};
use crate::raft::Index;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOp {
    Append { key: u8, value: u64 },
    Read { key: u8 },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvApp {
    pub data: BTreeMap<u8, Vec<u64>>,
}

impl App for KvApp {
    /// Answers with the key's list after the operation (postcard `Vec<u64>`).
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

/// Decode an answer of [`KvApp::apply`].
pub fn decode_values(output: &[u8]) -> Result<Vec<u64>, DecodeError> {
    decode_exact(output)
}
