//! Lease durations without synchronized clocks.
//!
//! A lease is granted for a duration `d`, never until an absolute time. Every
//! node measures it on its own monotonic clock, and clocks may run at any rate
//! within `1 ± ρ` of real time ([`Drift`]). Two rules keep the holder's belief
//! inside the granter's:
//!
//! * The **holder** starts counting when it *sends* the request (before the
//!   granter can have granted) and believes the lease for `d·(1-ρ)` of its own
//!   clock. Its clock runs at least `1-ρ`, so that is at most `d` of real time.
//! * The **granter** starts counting when it *grants* (after the request was
//!   sent) and honours the lease for `d·(1+ρ)` of its own clock, plus one tick
//!   for the clock's granularity. Its clock runs at most `1+ρ`, so that is at
//!   least `d` of real time.
//!
//! So in real time the holder's interval `[send, send + ≤d)` ends no later
//! than the granter's `[grant, grant + ≥d)`, whatever the message delays: a
//! granter that waits for its own deadline knows every holder has stopped.
//! The same two rules serve every other timed promise in this module: a node
//! that fences *itself* after H counts H by the holder rule; a node that waits
//! for *another* to be fenced counts by the granter rule.

use serde::{Deserialize, Serialize};

use crate::raft::Micros;

/// The largest clock-rate error any node may have, in parts per million.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    ppm: u32,
}

impl Drift {
    /// At most 10% (`100_000` ppm): beyond that the margins dwarf the leases.
    pub const MAX_PPM: u32 = 100_000;

    pub fn from_ppm(ppm: u32) -> Drift {
        assert!(ppm <= Self::MAX_PPM, "clock drift {ppm} ppm is beyond 10%");
        Drift { ppm }
    }

    pub fn ppm(&self) -> u32 {
        self.ppm
    }

    /// `ceil(d·ρ)`.
    fn margin(&self, d: Micros) -> Micros {
        let m = (u128::from(d) * u128::from(self.ppm)).div_ceil(1_000_000);
        // ρ ≤ 10%, so the margin is below d and fits.
        debug_assert!(m <= u128::from(d));
        m as Micros
    }

    /// How long, on its own clock, a holder (or a node fencing itself) may
    /// count a duration `d`: `d·(1-ρ)`, rounded down.
    pub fn holder_span(&self, d: Micros) -> Micros {
        d - self.margin(d)
    }

    /// How long, on its own clock, a granter (or a node waiting for another
    /// to be fenced) must count a duration `d`: `d·(1+ρ)` rounded up, plus one
    /// microsecond for the clock's tick.
    pub fn granter_span(&self, d: Micros) -> Micros {
        d.saturating_add(self.margin(d)).saturating_add(1)
    }

    /// The holder believes the lease while its clock reads less than this.
    pub fn holder_deadline(&self, sent_at: Micros, d: Micros) -> Micros {
        sent_at.saturating_add(self.holder_span(d))
    }

    /// The granter honours the lease while its clock reads less than this.
    pub fn granter_deadline(&self, granted_at: Micros, d: Micros) -> Micros {
        granted_at.saturating_add(self.granter_span(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_span_never_exceeds_granter_span() {
        for ppm in [0, 1, 10_000, Drift::MAX_PPM] {
            let drift = Drift::from_ppm(ppm);
            for d in [0, 1, 7, 99, 1_000_000, u64::MAX / 2] {
                assert!(drift.holder_span(d) <= d);
                assert!(drift.granter_span(d) > d || d == u64::MAX);
            }
        }
    }

    #[test]
    fn one_percent() {
        let drift = Drift::from_ppm(10_000);
        assert_eq!(drift.holder_span(1_000_000), 990_000);
        assert_eq!(drift.granter_span(1_000_000), 1_010_001);
        assert_eq!(drift.holder_span(150), 148, "1.5 rounds the margin up");
    }

    /// Real time from `sent` (holder) and `granted >= sent` (granter) with
    /// the slowest holder clock and the fastest granter clock: the holder's
    /// belief still ends first.
    #[test]
    fn extreme_rates_keep_the_holder_inside() {
        let drift = Drift::from_ppm(10_000);
        let d = 2_000_000u64;
        let slow = 0.99f64;
        let fast = 1.01f64;
        let holder_real_end = drift.holder_span(d) as f64 / slow;
        let granter_real_end = drift.granter_span(d) as f64 / fast;
        assert!(holder_real_end <= d as f64 && d as f64 <= granter_real_end);
    }

    #[test]
    #[should_panic(expected = "beyond 10%")]
    fn absurd_drift_is_refused() {
        Drift::from_ppm(200_000);
    }
}
