//! When to try again: a failed delivery (exponential back-off with jitter,
//! capped, and a maximum age after which a temporary failure is final), and
//! a peer that went away (capped back-off).

/// First retry after a minute, doubling up to an hour.
const FIRST_DELAY: i64 = 60;
const MAX_DELAY: i64 = 3_600;

/// The time of the next attempt after `attempts` failed ones. `jitter` in
/// [0, 1) spreads retries by up to a fifth of the delay, so that many rows
/// failing together do not all come back in the same second.
pub fn next_attempt(now: i64, attempts: i64, jitter: f64) -> i64 {
    let exponent = attempts.clamp(1, 30) - 1;
    let delay = FIRST_DELAY.saturating_mul(1_i64 << exponent).min(MAX_DELAY);
    let spread = (delay as f64 * 0.2 * jitter.clamp(0.0, 1.0)) as i64;
    now + delay + spread
}

/// Whether a row first queued at `created_at` has been retried long enough.
pub fn gives_up(created_at: i64, now: i64, max_age_seconds: i64) -> bool {
    now - created_at >= max_age_seconds
}

/// Capped exponential back-off for reconnecting to a peer: `start`,
/// doubling up to `max`, until `reset` after the peer worked again.
#[derive(Debug, Clone)]
pub struct Backoff {
    start: std::time::Duration,
    max: std::time::Duration,
    current: std::time::Duration,
}

impl Backoff {
    pub fn new(start: std::time::Duration, max: std::time::Duration) -> Self {
        Backoff {
            start,
            max,
            current: start,
        }
    }

    /// The delay before the next attempt; the one after is twice as long.
    pub fn next_delay(&mut self) -> std::time::Duration {
        let delay = self.current;
        self.current = (self.current * 2).min(self.max);
        delay
    }

    pub fn reset(&mut self) {
        self.current = self.start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_until_reset() {
        use std::time::Duration;
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let delays: Vec<u64> = (0..5).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 5, 5]);
        backoff.reset();
        assert_eq!(backoff.next_delay().as_secs(), 1);
    }

    #[test]
    fn delays_double_and_are_capped() {
        assert_eq!(next_attempt(0, 1, 0.0), 60);
        assert_eq!(next_attempt(0, 2, 0.0), 120);
        assert_eq!(next_attempt(0, 3, 0.0), 240);
        assert_eq!(next_attempt(0, 7, 0.0), 3_600);
        assert_eq!(next_attempt(0, 1_000, 0.0), 3_600);
        assert_eq!(next_attempt(0, 0, 0.0), 60);
    }

    #[test]
    fn jitter_adds_at_most_a_fifth() {
        assert_eq!(next_attempt(100, 1, 0.5), 100 + 60 + 6);
        assert!(next_attempt(0, 7, 0.999) < 3_600 + 720);
    }

    #[test]
    fn temporary_failures_end_after_the_maximum_age() {
        assert!(!gives_up(1_000, 1_000 + 3_599, 3_600));
        assert!(gives_up(1_000, 1_000 + 3_600, 3_600));
    }
}
