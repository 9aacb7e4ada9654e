//! Timing and bounds of the lease protocol, and the deliberate bugs the
//! simulator turns on to prove its checker works.

use super::clock::Drift;
use crate::raft::Micros;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Largest clock-rate error of any node.
    pub drift: Drift,
    /// H: a clerk without a round trip with its minister (or a minister
    /// without one with a majority) within H stops granting.
    pub serve_timeout: Micros,
    /// Longest read lease a clerk grants (capped, never above H: the 2H rule
    /// needs it).
    pub max_read_duration: Micros,
    /// Longest write lease the minister grants (capped).
    pub max_write_duration: Micros,
    /// The minister sends every clerk a batch at least this often (it carries
    /// the round-trip echo and resends unacknowledged lock operations).
    pub heartbeat: Micros,
    /// How long a clerk lock stays after its last write lease ends (hot files).
    pub linger: Micros,
    /// A write request that waits this long has the conflicting write leases revoked.
    pub revoke_after: Micros,
    pub max_leases: usize,
    pub max_leases_per_session: usize,
    /// Locks on the clerks (held, pending or lingering).
    pub max_locks: usize,
    /// Idle locks kept for hot files; the oldest is unlocked beyond this.
    pub max_lingering: usize,
    pub max_queued_writes: usize,
    /// Lock operations (and awaited lock ids) per batch message.
    pub max_ops_per_batch: usize,
    /// Lock operations the minister keeps for resending; a clerk further
    /// behind gets the whole table instead.
    pub max_stream: usize,
    pub faults: LeaseFaults,
}

impl LeaseConfig {
    /// Defaults for H.
    pub fn new(serve_timeout: Micros) -> LeaseConfig {
        LeaseConfig {
            drift: Drift::from_ppm(10_000),
            serve_timeout,
            max_read_duration: serve_timeout,
            max_write_duration: 2 * serve_timeout,
            heartbeat: (serve_timeout / 5).max(1),
            linger: serve_timeout,
            revoke_after: serve_timeout,
            max_leases: 1 << 16,
            max_leases_per_session: 256,
            max_locks: 4096,
            max_lingering: 256,
            max_queued_writes: 4096,
            max_ops_per_batch: 512,
            max_stream: 8192,
            faults: LeaseFaults::default(),
        }
    }

    pub fn validate(&self) {
        assert!(self.serve_timeout > 0 && self.heartbeat > 0);
        assert!(
            self.heartbeat < self.drift.holder_span(self.serve_timeout),
            "heartbeats must come well within H"
        );
        assert!(
            self.max_read_duration > 0 && self.max_read_duration <= self.serve_timeout,
            "read leases must not outlast H, or 2H does not fence a clerk"
        );
        assert!(self.max_write_duration > 0);
        assert!(self.max_leases_per_session > 0 && self.max_leases >= self.max_leases_per_session);
        assert!(self.max_locks > 0 && self.max_lingering < self.max_locks);
        assert!(self.max_queued_writes > 0 && self.max_ops_per_batch > 0);
        assert!(self.max_stream >= self.max_ops_per_batch);
    }
}

/// Deliberate bugs, all off by default; the simulator turns one on to see
/// its checker catch it.
#[derive(Clone, Copy, Debug, Default)]
pub struct LeaseFaults {
    /// Clerk: accept lock batches from any term (thesis problem 1 unfixed).
    pub clerk_ignores_term: bool,
    /// Minister: treat a silent clerk as fenced at once instead of after 2H.
    pub minister_skips_fence_wait: bool,
    /// Clerk: serve at once after a restart instead of waiting out its old leases.
    pub clerk_skips_restart_wait: bool,
}
