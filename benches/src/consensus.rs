//! A 3-member appointed Raft group in one process, driven the way an engine
//! drives the sans-IO core, for throughput measurements.
//!
//! * Transport: messages move between members through `Vec` queues; no
//!   threads, no sockets.
//! * Load: `P` closed-loop proposers. Each has exactly one 64-byte command
//!   outstanding; when the leader applies it, the proposer proposes its next
//!   one. Batching is whatever the core makes of that, never forced here.
//! * Storage: [`Storage::Memory`] (persisting is a no-op) or
//!   [`Storage::Durable`]: every member has its own [`SegmentedLog`] and makes
//!   each Ready's hard state and entries durable with one `sync` (group
//!   commit) before it reports [`Raft::persisted`] and before it sends that
//!   Ready's `persisted_messages`.
//!
//! One *turn*: the leader proposes for every idle proposer; then each member
//! in turn ticks, takes its Ready, sends `messages`, persists, calls
//! `persisted`, sends `persisted_messages` and applies `committed`; finally
//! every message queued during the turn is delivered (stepped). Messages thus
//! take one turn to arrive: an entry proposed in turn t is appended and sent
//! in t, synced and acknowledged by the followers in t + 1, and committed and
//! applied on the leader in t + 2, whose proposer proposes again in t + 3. As
//! all proposers start together they stay in lockstep: one batch of P entries
//! every three turns (three syncs per batch when durable, one per member,
//! one after another in this single process).
//!
//! The driver checks itself: every member must apply every proposer's commands
//! in order (a per-proposer sequence number checked at each apply), all three
//! must end with the same applied counts and the same order-sensitive digest,
//! and a durable member's log must replay to what its Raft holds.

use std::path::{Path, PathBuf};

use govfs_core::raft::{
    Config, Entry, GroupId, HardState, Membership, Message, Micros, Mode, NodeId, Payload,
    PollAnswer, Raft, Ready, Term,
};
use govfs_core::wal::Record;
use govfs_engine::log_store::{LogOptions, LogStore, SegmentedLog};

pub const GROUP: GroupId = 1;
pub const MEMBERS: [NodeId; 3] = [1, 2, 3];
/// The appointed leader (the president polls everyone at [`TERM`], then appoints it).
pub const LEADER: NodeId = 1;
pub const TERM: Term = 1;
/// Size of every proposed command.
pub const COMMAND_BYTES: usize = 64;
/// Virtual time per turn; the core never reads a clock.
const TURN_MICROS: Micros = 10;
/// Default for [`Options::compact_every`].
pub const DEFAULT_COMPACT_EVERY: u64 = 8192;
/// Turns without a single commit before the driver declares a stall.
const STALL_TURNS: u64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Persisting is a no-op; `persisted` is called at once.
    Memory,
    /// One [`SegmentedLog`] per member, one `sync` per Ready.
    Durable,
}

impl Storage {
    pub fn name(self) -> &'static str {
        match self {
            Storage::Memory => "memory",
            Storage::Durable => "durable",
        }
    }
}

impl std::fmt::Display for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    /// Concurrent proposers, each with one command outstanding.
    pub proposers: usize,
    pub storage: Storage,
    /// Parent of the temporary directory durable members log into; defaults
    /// to `$GOVFS_BENCH_DIR`, else the system temp dir (`$TMPDIR`).
    pub dir: Option<PathBuf>,
    /// Compact the members' in-memory Raft logs (`Raft::compact`, empty
    /// snapshot data) whenever every member has applied this many entries
    /// more than at the last compaction (0: never), as an engine keeps only a
    /// bounded tail in memory. Throughput depends on it: the log holds one
    /// heap allocation per entry per member (see the report's findings).
    pub compact_every: u64,
}

impl Options {
    pub fn new(proposers: usize, storage: Storage) -> Self {
        Options {
            proposers,
            storage,
            dir: std::env::var_os("GOVFS_BENCH_DIR").map(PathBuf::from),
            compact_every: DEFAULT_COMPACT_EVERY,
        }
    }
}

/// Counters over a stretch of turns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub turns: u64,
    /// Commands applied on the leader (committed entries).
    pub committed: u64,
    /// Leader Readies that carried entries (each is one leader sync when durable).
    pub leader_readies: u64,
    /// Entries in those Readies.
    pub leader_entries: u64,
    /// Syncs on all three members together.
    pub fsyncs: u64,
    /// Bytes those syncs wrote.
    pub synced_bytes: u64,
}

impl Stats {
    fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            turns: self.turns - earlier.turns,
            committed: self.committed - earlier.committed,
            leader_readies: self.leader_readies - earlier.leader_readies,
            leader_entries: self.leader_entries - earlier.leader_entries,
            fsyncs: self.fsyncs - earlier.fsyncs,
            synced_bytes: self.synced_bytes - earlier.synced_bytes,
        }
    }

    /// Mean entries per leader Ready that carried any.
    pub fn mean_batch(&self) -> f64 {
        if self.leader_readies == 0 {
            0.0
        } else {
            self.leader_entries as f64 / self.leader_readies as f64
        }
    }
}

/// Where a member's outputs go: the network, the proposers, the counters.
#[derive(Default)]
struct Shared {
    /// Messages sent this turn, delivered at its end.
    net: Vec<Message>,
    /// Proposers with nothing outstanding.
    idle: Vec<u32>,
    polls: Vec<PollAnswer>,
    stats: Stats,
}

struct Member {
    raft: Raft,
    log: Option<SegmentedLog>,
    dir: Option<PathBuf>,
    /// Reused buffer for one Ready's records.
    records: Vec<Record>,
    /// Per proposer: the sequence number of its last applied command.
    applied: Vec<u64>,
    applied_commands: u64,
    /// Order-sensitive digest of (index, proposer, sequence) of every applied command.
    digest: u64,
}

impl Member {
    fn handle(&mut self, rd: Ready, leader: bool, sh: &mut Shared) {
        let Ready {
            number,
            hard_state,
            snapshot,
            entries,
            messages,
            persisted_messages,
            poll_answers,
            committed,
            events: _,
        } = rd;
        // Appends may leave before the leader's own sync.
        sh.net.extend(messages);
        assert!(
            snapshot.is_none(),
            "no member falls behind a snapshot in this benchmark"
        );
        if leader && !entries.is_empty() {
            sh.stats.leader_readies += 1;
            sh.stats.leader_entries += entries.len() as u64;
        }
        if let Some(log) = &mut self.log {
            if hard_state.is_some() || !entries.is_empty() {
                self.records.extend(hard_state.map(Record::HardState));
                // The first entry voids everything at and after its index; so does its record.
                self.records.extend(entries.into_iter().map(Record::Entry));
                log.append(&self.records)
                    .expect("append to the segmented log");
                self.records.clear();
                let bytes = log.sync().expect("sync the segmented log");
                sh.stats.fsyncs += 1;
                sh.stats.synced_bytes += bytes as u64;
            }
        }
        self.raft.persisted(number);
        sh.net.extend(persisted_messages);
        sh.polls.extend(poll_answers);
        for e in committed {
            self.apply(e, leader, sh);
        }
    }

    fn apply(&mut self, e: Entry, leader: bool, sh: &mut Shared) {
        let Payload::Command(c) = &e.payload else {
            return;
        };
        let (p, seq) = decode_command(c);
        let last = &mut self.applied[p as usize];
        assert_eq!(
            *last + 1,
            seq,
            "member {} applied proposer {p}'s command {seq} after {}",
            self.raft.id(),
            *last
        );
        *last = seq;
        self.applied_commands += 1;
        self.digest = (self.digest ^ e.index ^ (u64::from(p) << 40) ^ seq.rotate_left(17))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        if leader {
            sh.idle.push(p);
            sh.stats.committed += 1;
        }
    }
}

/// `[proposer: u32 LE][seq: u64 LE]` padded with the low byte of `seq` to [`COMMAND_BYTES`].
pub fn command(proposer: u32, seq: u64) -> Vec<u8> {
    let mut c = vec![seq as u8; COMMAND_BYTES];
    c[..4].copy_from_slice(&proposer.to_le_bytes());
    c[4..12].copy_from_slice(&seq.to_le_bytes());
    c
}

fn decode_command(c: &[u8]) -> (u32, u64) {
    assert_eq!(c.len(), COMMAND_BYTES, "a command came back resized");
    let p = u32::from_le_bytes(c[..4].try_into().expect("4 bytes"));
    let seq = u64::from_le_bytes(c[4..12].try_into().expect("8 bytes"));
    assert_eq!(
        c[COMMAND_BYTES - 1],
        seq as u8,
        "a command's padding came back changed"
    );
    (p, seq)
}

/// The group, its proposers and (when durable) its temporary directory.
pub struct Cluster {
    opts: Options,
    /// `members[i]` has id `i + 1`; member 0 is the leader.
    members: Vec<Member>,
    shared: Shared,
    /// Messages being delivered (swapped with `shared.net` each turn).
    inbox: Vec<Message>,
    /// Per proposer: the sequence number of its last proposed command.
    proposed: Vec<u64>,
    total_proposed: u64,
    now: Micros,
    compacted_at: u64,
    _tmp: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Builds the group and appoints member 1 the way the president does: poll
    /// every member at term 1, then appoint the most up-to-date one (all are
    /// empty; member 1 it is). Returns once the appointment's config entry is
    /// applied everywhere, with the counters at zero.
    pub fn new(opts: Options) -> Self {
        assert!(opts.proposers > 0 && opts.proposers <= u32::MAX as usize);
        let tmp = match opts.storage {
            Storage::Memory => None,
            Storage::Durable => {
                let parent = opts.dir.clone().unwrap_or_else(std::env::temp_dir);
                std::fs::create_dir_all(&parent).expect("create the benchmark directory");
                let tmp = tempfile::Builder::new()
                    .prefix("govfs-consensus-")
                    .tempdir_in(&parent)
                    .expect("create a temporary directory");
                Some(tmp)
            }
        };
        let membership = Membership::new(MEMBERS.to_vec(), Vec::new());
        let now = 0;
        let members = MEMBERS
            .iter()
            .map(|&id| {
                let dir = tmp.as_ref().map(|t| t.path().join(format!("member-{id}")));
                let log = dir.as_deref().map(|d| {
                    let (log, replay) =
                        SegmentedLog::open(d, LogOptions::default()).expect("open a segmented log");
                    assert!(replay.entries.is_empty(), "a fresh directory");
                    log
                });
                let cfg = Config::new(id, GROUP, Mode::Appointed);
                Member {
                    raft: Raft::new(cfg, HardState::default(), membership.clone(), now),
                    log,
                    dir,
                    records: Vec::new(),
                    applied: vec![0; opts.proposers],
                    applied_commands: 0,
                    digest: 0,
                }
            })
            .collect();
        let mut cluster = Cluster {
            members,
            shared: Shared {
                idle: (0..opts.proposers as u32).rev().collect(),
                ..Shared::default()
            },
            inbox: Vec::new(),
            proposed: vec![0; opts.proposers],
            total_proposed: 0,
            now,
            compacted_at: 0,
            _tmp: tmp,
            opts,
        };

        // The president's poll: each member fences term 1 durably, then answers.
        for m in &mut cluster.members {
            m.raft.poll(now, TERM).expect("poll at a fresh term");
        }
        for _ in 0..3 {
            cluster.turn(0);
        }
        let answers = std::mem::take(&mut cluster.shared.polls);
        assert_eq!(
            answers.len(),
            MEMBERS.len(),
            "every member answers the poll once durable"
        );
        let best = answers
            .iter()
            .max_by_key(|a| (a.last_term, a.last_index, std::cmp::Reverse(a.from)))
            .expect("answers");
        assert_eq!(best.from, LEADER);
        cluster.members[0]
            .raft
            .appoint(now, TERM, membership)
            .expect("appoint member 1");
        let mut turns = 0;
        while cluster.members.iter().any(|m| m.raft.status().applied < 1) {
            cluster.turn(0);
            turns += 1;
            assert!(turns < STALL_TURNS, "the appointment never committed");
        }
        assert!(cluster.members[0].raft.is_leader());
        cluster.shared.stats = Stats::default();
        cluster
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats
    }

    /// Runs turns until the leader has applied `entries` more commands,
    /// proposing exactly that many. Returns the counters of those turns.
    pub fn run(&mut self, entries: u64) -> Stats {
        let start = self.shared.stats;
        let target = start.committed + entries;
        let limit = self.total_proposed + entries;
        let (mut last_committed, mut idle_turns) = (start.committed, 0);
        while self.shared.stats.committed < target {
            self.turn(limit);
            if self.shared.stats.committed == last_committed {
                idle_turns += 1;
                assert!(idle_turns < STALL_TURNS, "no commit in {STALL_TURNS} turns");
            } else {
                (last_committed, idle_turns) = (self.shared.stats.committed, 0);
            }
        }
        let run = self.shared.stats.since(&start);
        assert_eq!(
            run.committed, entries,
            "exactly the proposed entries commit"
        );
        run
    }

    /// Lets the followers catch up, then checks that every member applied every
    /// proposer's commands in order and the same ones, and that each durable
    /// log replays to its member's log. Panics otherwise. Returns the counters
    /// since [`Cluster::new`].
    pub fn finish(mut self) -> Stats {
        let mut turns = 0;
        while !self.shared.net.is_empty()
            || self
                .members
                .iter()
                .any(|m| m.applied_commands < self.total_proposed || m.raft.has_ready())
        {
            self.turn(self.total_proposed);
            turns += 1;
            assert!(turns < STALL_TURNS, "the followers never caught up");
        }
        let leader = &self.members[0];
        assert_eq!(self.shared.stats.committed, self.total_proposed);
        assert_eq!(
            self.shared.idle.len(),
            self.opts.proposers,
            "every proposer is idle at the end"
        );
        for m in &self.members {
            let id = m.raft.id();
            assert_eq!(
                m.applied_commands, self.total_proposed,
                "member {id} applied every command"
            );
            assert!(
                m.applied == self.proposed,
                "member {id} applied each proposer's last command"
            );
            assert_eq!(
                m.digest, leader.digest,
                "member {id} applied the same commands in the same order"
            );
            assert_eq!(m.raft.commit_index(), leader.raft.commit_index());
            assert_eq!(m.raft.log().last_index(), leader.raft.log().last_index());
        }
        let stats = self.shared.stats;
        for m in &mut self.members {
            let (Some(log), Some(dir)) = (m.log.take(), m.dir.as_deref()) else {
                continue;
            };
            drop(log);
            check_replay(dir, &m.raft);
        }
        stats
    }

    /// One turn; the leader proposes only while fewer than `limit` commands have been proposed.
    fn turn(&mut self, limit: u64) {
        self.now += TURN_MICROS;
        let now = self.now;
        let leader = &mut self.members[0].raft;
        while self.total_proposed < limit {
            let Some(p) = self.shared.idle.pop() else {
                break;
            };
            let seq = self.proposed[p as usize] + 1;
            self.proposed[p as usize] = seq;
            leader.propose(command(p, seq)).expect("member 1 leads");
            self.total_proposed += 1;
        }
        for (i, m) in self.members.iter_mut().enumerate() {
            m.raft.tick(now);
            if m.raft.has_ready() {
                let rd = m.raft.ready();
                m.handle(rd, i == 0, &mut self.shared);
            }
        }
        std::mem::swap(&mut self.shared.net, &mut self.inbox);
        for msg in self.inbox.drain(..) {
            let to = MEMBERS
                .iter()
                .position(|&id| id == msg.to)
                .expect("a member");
            self.members[to].raft.step(now, msg);
        }
        self.shared.stats.turns += 1;
        if self.opts.compact_every > 0 {
            self.maybe_compact();
        }
    }

    fn maybe_compact(&mut self) {
        let upto = self
            .members
            .iter()
            .map(|m| m.raft.status().applied)
            .min()
            .unwrap_or(0);
        if upto >= self.compacted_at + self.opts.compact_every {
            for m in &mut self.members {
                m.raft.compact(upto, Vec::new());
            }
            self.compacted_at = upto;
        }
    }
}

/// Reopens a durable member's log and checks it against the member's Raft.
fn check_replay(dir: &Path, raft: &Raft) {
    let (_log, replay) =
        SegmentedLog::open(dir, LogOptions::default()).expect("reopen the segmented log");
    let id = raft.id();
    assert_eq!(
        replay.hard_state,
        raft.hard_state(),
        "member {id}: durable hard state"
    );
    assert_eq!(
        replay.last_index(),
        raft.log().last_index(),
        "member {id}: durable log length"
    );
    let last = replay.entries.last().expect("entries were logged");
    if let Some(mine) = raft.log().get(last.index) {
        assert_eq!(last, mine, "member {id}: last durable entry");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_group_commits_and_checks_itself() {
        for p in [1, 7, 300] {
            let mut c = Cluster::new(Options::new(p, Storage::Memory));
            let run = c.run(2_000);
            assert_eq!(run.committed, 2_000);
            assert!(run.leader_readies > 0 && run.fsyncs == 0);
            let total = c.finish();
            assert_eq!(total.committed, 2_000);
        }
    }

    #[test]
    fn durable_group_syncs_and_replays() {
        let mut c = Cluster::new(Options::new(50, Storage::Durable));
        let run = c.run(500);
        assert!(run.fsyncs >= run.leader_readies);
        assert!(run.synced_bytes > 500 * COMMAND_BYTES as u64);
        c.finish();
    }

    #[test]
    #[should_panic(expected = "applied proposer 0's command 3 after 1")]
    fn out_of_order_apply_is_caught() {
        let mut c = Cluster::new(Options::new(1, Storage::Memory));
        c.run(1);
        let e = Entry {
            term: TERM,
            index: 99,
            payload: Payload::Command(command(0, 3)),
        };
        c.members[0].apply(e, true, &mut c.shared);
    }

    #[test]
    fn compaction_keeps_the_group_going() {
        let mut opts = Options::new(64, Storage::Memory);
        opts.compact_every = 1_000;
        let mut c = Cluster::new(opts);
        c.run(10_000);
        c.finish();
    }
}
