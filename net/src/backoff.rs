//! Reconnection delays: exponential growth up to a cap, with jitter so that
//! nodes which lost the same peer at the same moment do not all redial it in
//! lockstep. Sans-IO: no clock and no random source; the caller passes
//! entropy in, so the simulator's seed decides every delay.

use std::time::Duration;

/// Delay before the next reconnection attempt.
///
/// Attempt `n` (from 0) has a ceiling of `min(cap, base * 2^n)` and a delay
/// drawn uniformly from `[ceiling / 2, ceiling]` ("equal jitter"): the lower
/// half keeps a floor, so a flapping peer is never redialed in a hot loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// # Panics
    /// If `base` is zero or `cap` is below `base`: a configuration bug.
    pub fn new(base: Duration, cap: Duration) -> Self {
        assert!(!base.is_zero(), "backoff base must be positive");
        assert!(cap >= base, "backoff cap {cap:?} is below base {base:?}");
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    pub fn base(&self) -> Duration {
        self.base
    }

    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// Failed attempts since the last [`reset`](Self::reset).
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The largest delay the next [`next_delay`](Self::next_delay) can return.
    pub fn ceiling(&self) -> Duration {
        // Doubling stops at 2^31 * base, past any sane cap; the shift
        // cannot overflow and the product saturates.
        let factor = 1u32 << self.attempt.min(31);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Records a failed attempt and returns how long to wait before the next
    /// one. `entropy` is any random u64, e.g. from the simulator's RNG.
    pub fn next_delay(&mut self, entropy: u64) -> Duration {
        let ceiling = self.ceiling();
        let ceiling_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let floor = ceiling_nanos / 2;
        let span = ceiling_nanos - floor;
        // Scales entropy onto 0..=span without the bias of a modulo.
        let offset = ((u128::from(entropy) * (u128::from(span) + 1)) >> 64) as u64;
        self.attempt = self.attempt.saturating_add(1);
        let delay = Duration::from_nanos(floor + offset);
        debug_assert!(delay <= ceiling && delay <= self.cap);
        delay
    }

    /// The connection succeeded: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn grows_doubling_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(100 * MS, 1000 * MS);
        let ceilings: Vec<_> = (0..6)
            .map(|_| {
                let ceiling = backoff.ceiling();
                backoff.next_delay(u64::MAX);
                ceiling
            })
            .collect();
        assert_eq!(
            ceilings,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
        assert_eq!(backoff.attempts(), 6);
        backoff.reset();
        assert_eq!(backoff.attempts(), 0);
        assert_eq!(backoff.ceiling(), 100 * MS);
    }

    #[test]
    fn jitter_spans_the_upper_half() {
        let mut backoff = Backoff::new(100 * MS, 1000 * MS);
        assert_eq!(backoff.next_delay(0), 50 * MS);
        backoff.reset();
        assert_eq!(backoff.next_delay(u64::MAX), 100 * MS);
        backoff.reset();
        let middle = backoff.next_delay(1 << 63);
        assert!(middle > 70 * MS && middle < 80 * MS, "{middle:?}");
    }

    #[test]
    fn huge_attempt_counts_saturate() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::MAX);
        for _ in 0..200 {
            backoff.next_delay(u64::MAX);
        }
        assert!(backoff.ceiling() >= Duration::from_secs(1 << 31));
        assert!(backoff.next_delay(u64::MAX) > Duration::ZERO);
    }

    proptest! {
        #[test]
        fn delay_is_within_half_ceiling_and_cap(
            base_ms in 1u64..10_000,
            extra_ms in 0u64..100_000,
            entropies in proptest::collection::vec(any::<u64>(), 1..80),
        ) {
            let base = Duration::from_millis(base_ms);
            let cap = base + Duration::from_millis(extra_ms);
            let mut backoff = Backoff::new(base, cap);
            let mut last_ceiling = Duration::ZERO;
            for entropy in entropies {
                let ceiling = backoff.ceiling();
                prop_assert!(ceiling >= last_ceiling, "ceilings never shrink");
                let delay = backoff.next_delay(entropy);
                prop_assert!(delay <= ceiling && delay <= cap);
                prop_assert!(delay >= ceiling / 2);
                last_ceiling = ceiling;
            }
        }
    }
}
