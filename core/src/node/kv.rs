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
    /// An append answers with the key's length after it (postcard `u64`):
    /// constant-size, so a long-running workload does not measure the
    /// answer's growth. A read answers with the key's list (postcard `Vec<u64>`).
    fn apply(&mut self, _index: Index, command: &[u8]) -> Vec<u8> {
        match decode_exact::<KvOp>(command) {
            Ok(KvOp::Append { key, value }) => {
                let list = self.data.entry(key).or_default();
                list.push(value);
                postcard::to_stdvec(&(list.len() as u64)).expect("lengths encode")
            }
            Ok(KvOp::Read { key }) => {
                let values = self.data.get(&key).map_or(&[][..], |v| v.as_slice());
                postcard::to_stdvec(values).expect("values encode")
            }
            Err(_) => Vec::new(),
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
