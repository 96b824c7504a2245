//! The one reader of the wall clock. Everything else is given `now` (Unix
//! seconds), so `--now` replays any instant.

#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Fixed(i64),
}

impl Clock {
    /// `--now` in RFC 3339; fails with the value and what was expected.
    pub fn parse_fixed(value: &str) -> Result<Clock, String> {
        chrono::DateTime::parse_from_rfc3339(value)
            .map(|t| Clock::Fixed(t.timestamp()))
            .map_err(|e| {
                format!("--now {value:?} is not an RFC 3339 time like 2026-11-27T10:00:00Z ({e})")
            })
    }

    pub fn now(&self) -> i64 {
        match self {
            Clock::Fixed(t) => *t,
            #[allow(clippy::disallowed_methods)] // The one reader of the clock.
            Clock::System => chrono::Utc::now().timestamp(),
        }
    }
}
