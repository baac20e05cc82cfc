//! Small time helpers shared by the engine and the builders.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// Whole seconds of a duration, rounded up (documents store second-resolution timeouts), saturating.
pub(crate) fn whole_seconds(duration: Duration) -> u32 {
    let secs = duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0));
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// How long from now until `at` (zero when past).
pub(crate) fn until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

/// Milliseconds between two times (zero when negative).
pub(crate) fn millis_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_milliseconds()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::whole_seconds;
    use std::time::Duration;

    #[test]
    fn whole_seconds_round_up_and_saturate() {
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(3)), 3);
        assert_eq!(whole_seconds(Duration::MAX), u32::MAX);
        assert_eq!(whole_seconds(Duration::new(u64::MAX, 1)), u32::MAX);
    }
}
