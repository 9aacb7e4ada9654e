//! What a simulated cluster runs and how the checker judges it: the
//! application every node runs, the operations clients send, and the
//! reference model the checker applies each ministry's committed log to.
//! One engine (`world.rs`) and one checker (`checker.rs`) drive any
//! workload: the key-value one (`kv.rs`) or the namespace (`meta/`).

use std::collections::BTreeMap;
use std::fmt::Debug;

use govfs_core::node::{App, Proposal};
use govfs_core::president::TransferRequest;
use govfs_core::raft::{GroupId, Index, Micros, NodeId};

use crate::checker::Violation;
use crate::rng::Rng;

/// Which application the simulated ministries run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Application {
    /// `KvApp`: appends and reads of small lists; one key moves between
    /// ministries every seed.
    #[default]
    Kv,
    /// `Namespace`: file-system operations checked against a model file
    /// system (`meta::model`).
    Meta,
}

impl Application {
    pub fn name(self) -> &'static str {
        match self {
            Application::Kv => "kv",
            Application::Meta => "meta",
        }
    }
}

/// A client's request: its (client, seq) is what exactly-once is keyed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command<Op> {
    pub client: u64,
    /// Per-client request id; a client has one request outstanding at a time.
    pub seq: u64,
    pub op: Op,
}

/// One member of a ministry at the end of a run, as the final checks see it.
pub struct MemberView<'a, A> {
    pub ministry: GroupId,
    /// The member (shard) id.
    pub member: NodeId,
    pub applied: Index,
    pub app: &'a A,
}

pub trait Workload: Sized {
    /// The application every node runs.
    type App: App;
    /// What a client asks for (kept to resend it unchanged).
    type Op: Clone + Debug;
    /// An answer in the model's terms, with the log index it took effect at.
    type Answer: Clone + Debug + PartialEq;
    /// The checker's reference for one ministry, with its own session table.
    type Model: Default;

    /// The name `SimOptions::app` gives this workload.
    const APPLICATION: Application;

    fn new(seed: u64) -> Self;

    /// The command bytes a node proposes for `op`.
    fn command(op: &Self::Op) -> Vec<u8>;

    /// The next operation of `client` in `ministry`; `seq` is its request id.
    fn next_op(
        &mut self,
        rng: &mut Rng,
        client: u64,
        seq: u64,
        ministry: GroupId,
        now: Micros,
    ) -> Self::Op;

    /// A node's answer to a client's `op`; `None` if it does not decode.
    fn decode_answer(op: &Self::Op, index: Index, output: &[u8]) -> Option<Self::Answer>;

    /// A member's answer to a committed command (any client: the
    /// minister's bootstrap and transfer steps too).
    fn decode_applied(command: &[u8], index: Index, output: &[u8]) -> Option<Self::Answer>;

    fn answer_index(answer: &Self::Answer) -> Index;

    /// Apply a committed proposal to the model: `None` when it applies
    /// nothing (a late duplicate nobody waits for); an error when the
    /// command is one the model cannot judge.
    fn apply(
        model: &mut Self::Model,
        index: Index,
        proposal: &Proposal,
    ) -> Result<Option<Self::Answer>, Violation>;

    /// A client's operation completed with `answer` (already checked
    /// against the model).
    fn acknowledge(&mut self, ministry: GroupId, cmd: &Command<Self::Op>, answer: &Self::Answer);

    /// End of run: acknowledged effects are in the final state, once.
    /// `models` hold each ministry's state after its last committed entry;
    /// `members` every live member of a ministry, however far it applied.
    fn check_end(
        &self,
        models: &BTreeMap<GroupId, &Self::Model>,
        committed: &BTreeMap<GroupId, Index>,
        members: &[MemberView<'_, Self::App>],
    ) -> Result<(), Violation>;

    /// The move between ministries the world asks the president for, given
    /// whether this seed splits (`None`: this workload moves nothing), and
    /// how many requests client 1 completes before it is asked.
    fn transfer(split: bool) -> Option<(TransferRequest, u64)>;

    /// Counts of outcomes by kind ("create ok", "rmdir ENOTEMPTY", ...),
    /// so tests can require that the workload did real work.
    fn outcomes(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
}
