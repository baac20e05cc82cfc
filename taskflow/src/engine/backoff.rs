//! Back-off between automatic retries of a step.

use std::time::Duration;

/// How long to wait before the n-th automatic retry of a step.
///
/// The default is the reference framework's: Fibonacci seconds (1, 2, 3, 5, 8, ... for retries 1, 2, 3, ...), capped
/// at one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a back-off does nothing until passed to `EngineBuilder::backoff`"]
pub struct Backoff {
    kind: Kind,
    unit: Duration,
    cap: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fibonacci,
    Fixed,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::fibonacci(Duration::from_secs(1))
    }
}

impl Backoff {
    /// Fibonacci multiples of `unit`: 1, 2, 3, 5, 8, 13, ... units.
    pub fn fibonacci(unit: Duration) -> Self {
        Self {
            kind: Kind::Fibonacci,
            unit,
            cap: Duration::from_secs(3600),
        }
    }

    /// The same delay before every retry.
    pub fn fixed(delay: Duration) -> Self {
        Self {
            kind: Kind::Fixed,
            unit: delay,
            cap: Duration::MAX,
        }
    }

    /// Never wait longer than `cap`.
    pub fn with_cap(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    /// The delay before a retry, given how many retries ran before it (0 for the first retry).
    pub fn delay(&self, retries_before: u32) -> Duration {
        let delay = match self.kind {
            Kind::Fixed => self.unit,
            Kind::Fibonacci => {
                let (mut a, mut b) = (1u32, 2u32);
                for _ in 0..retries_before {
                    if self.unit.saturating_mul(a) >= self.cap {
                        break;
                    }
                    (a, b) = (b, a.saturating_add(b));
                }
                self.unit.saturating_mul(a)
            }
        };
        delay.min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fibonacci_matches_the_reference_table() {
        let b = Backoff::default();
        let secs: Vec<u64> = (0..=10).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144]);
        assert_eq!(
            b.with_cap(Duration::from_secs(10)).delay(9),
            Duration::from_secs(10)
        );
        assert_eq!(
            Backoff::fixed(Duration::from_millis(5)).delay(7),
            Duration::from_millis(5)
        );
        assert_eq!(
            Backoff::default().delay(u32::MAX),
            Duration::from_secs(3600)
        );
    }
}
