//! The key-value workload: clients append unique values to a few keys and
//! read them; one key (9) moves to another ministry every seed. The
//! checker's reference model has its own session table (independent of the
//! node's) so a broken exactly-once shows up as a divergence.

use std::collections::{BTreeMap, BTreeSet};

use govfs_core::codec::decode_exact;
use govfs_core::node::Proposal;
use govfs_core::president::{TransferKind, TransferRequest};
use govfs_core::raft::{GroupId, Index, Micros};
use serde::{Deserialize, Serialize};

use crate::checker::Violation;
use crate::rng::Rng;
use crate::workload::{Application, Command, MemberView, Workload};

pub type KvCommand = Command<KvOp>;

/// Client 1 writes this key first; then it moves to another ministry.
pub const TRANSFER_KEY: u8 = 9;
const TRANSFER_WRITES: u64 = 5;

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

/// The key-value workload's client side: what was acknowledged.
#[derive(Default)]
pub struct KvWorkload {
    /// (ministry, key, value) of every acknowledged append.
    acked: Vec<(GroupId, u8, u64)>,
}

impl Workload for KvWorkload {
    type App = KvApp;
    type Op = KvOp;
    type Answer = KvResult;
    type Model = Kv;

    const APPLICATION: Application = Application::Kv;

    fn new(_seed: u64) -> Self {
        KvWorkload::default()
    }

    fn command(op: &KvOp) -> Vec<u8> {
        postcard::to_stdvec(op).expect("ops encode")
    }

    fn next_op(
        &mut self,
        rng: &mut Rng,
        client: u64,
        seq: u64,
        _ministry: GroupId,
        _now: Micros,
    ) -> KvOp {
        let key = rng.range(0, 4) as u8;
        let value = (client << 32) | seq;
        if client == 1 && seq <= TRANSFER_WRITES {
            KvOp::Append {
                key: TRANSFER_KEY,
                value,
            }
        } else if rng.chance(0.7) {
            KvOp::Append { key, value }
        } else {
            KvOp::Read { key }
        }
    }

    fn decode_answer(op: &KvOp, index: Index, output: &[u8]) -> Option<KvResult> {
        decode_result(op, index, output)
    }

    fn decode_applied(command: &[u8], index: Index, output: &[u8]) -> Option<KvResult> {
        let op = decode_exact::<KvOp>(command).ok()?;
        decode_result(&op, index, output)
    }

    fn answer_index(answer: &KvResult) -> Index {
        answer.index
    }

    fn apply(model: &mut Kv, index: Index, p: &Proposal) -> Result<Option<KvResult>, Violation> {
        let op: KvOp = postcard::from_bytes(&p.command)
            .map_err(|_| format!("undecodable command at {index}"))?;
        Ok(model.apply(
            index,
            &KvCommand {
                client: p.client,
                seq: p.seq,
                op,
            },
        ))
    }

    fn acknowledge(&mut self, ministry: GroupId, cmd: &KvCommand, _answer: &KvResult) {
        if let KvOp::Append { key, value } = cmd.op {
            self.acked.push((ministry, key, value));
        }
    }

    /// Every acknowledged append is applied, exactly once. Transfers move
    /// keys between ministries: it must be in exactly one ministry's
    /// state, wherever its key went.
    fn check_end(
        &self,
        models: &BTreeMap<GroupId, &Kv>,
        _committed: &BTreeMap<GroupId, Index>,
        _members: &[MemberView<'_, KvApp>],
    ) -> Result<(), Violation> {
        for (ministry, key, value) in &self.acked {
            let n: usize = models
                .values()
                .filter_map(|m| m.data.get(key))
                .map(|l| l.iter().filter(|v| *v == value).count())
                .sum();
            if n != 1 {
                return Err(format!("acknowledged append {value:#x} to key {key} (written in ministry {ministry}) is applied {n} times across the ministries"));
            }
        }
        Ok(())
    }

    /// Key 9 of ministry 1 moves, by a split to a new ministry or a rename
    /// into ministry 2 (half the seeds each).
    fn transfer(split: bool) -> Option<(TransferRequest, u64)> {
        let kind = if split {
            TransferKind::Split
        } else {
            TransferKind::Rename {
                to: 2,
                new_parent: 0,
                new_name: vec![TRANSFER_KEY],
            }
        };
        let request = TransferRequest {
            kind,
            from: 1,
            parent: 0,
            name: vec![TRANSFER_KEY],
            ino: u64::from(TRANSFER_KEY),
            path: vec![b'/', TRANSFER_KEY],
            now: 0,
        };
        Some((request, TRANSFER_WRITES))
    }
}
