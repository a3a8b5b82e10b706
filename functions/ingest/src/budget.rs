//! How much of the invocation is left, and whether that is enough to start
//! another file. Lambda kills an invocation at its deadline: a file cut off
//! there is rolled back and every message of the batch comes back, done or
//! not. So the handler starts a file only while a reserve of time remains,
//! and hands the ones it did not start back as batch item failures.

use std::time::{Duration, SystemTime};

use order_pipeline::config::{positive_setting, ConfigError};

/// The setting for the reserve, in seconds.
pub const RESERVE_SETTING: &str = "INGEST_TIME_RESERVE_SECS";

/// A fifth of the function's 300 s timeout (infra/template.yaml): about what
/// a 3M-order file takes on the benchmark machine (README, "Benchmarks").
pub const DEFAULT_RESERVE: Duration = Duration::from_secs(60);

/// The reserve from [`RESERVE_SETTING`], or [`DEFAULT_RESERVE`].
pub fn reserve_from_env() -> Result<Duration, ConfigError> {
    reserve_from(std::env::var(RESERVE_SETTING).ok())
}

fn reserve_from(setting: Option<String>) -> Result<Duration, ConfigError> {
    let default = DEFAULT_RESERVE.as_secs();
    positive_setting(RESERVE_SETTING, "seconds", setting, default).map(Duration::from_secs)
}

/// Where the time comes from: the system clock, or a test's.
pub trait Clock: Sync {
    fn now(&self) -> SystemTime;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The time one invocation has for its files.
pub struct TimeBudget<'c> {
    limit: Option<Limit<'c>>,
    started: bool,
    exhausted: bool,
}

struct Limit<'c> {
    deadline: SystemTime,
    reserve: Duration,
    clock: &'c dyn Clock,
}

impl TimeBudget<'static> {
    /// No deadline: every file starts (local tools and tests).
    pub fn unlimited() -> Self {
        Self {
            limit: None,
            started: false,
            exhausted: false,
        }
    }
}

impl<'c> TimeBudget<'c> {
    /// Files start while at least `reserve` is left before `deadline`.
    pub fn until(deadline: SystemTime, reserve: Duration, clock: &'c dyn Clock) -> Self {
        Self {
            limit: Some(Limit {
                deadline,
                reserve,
                clock,
            }),
            started: false,
            exhausted: false,
        }
    }

    /// The budget of an invocation whose runtime named `deadline`. Lambda's
    /// deadline is always ahead when an invocation starts; one that is not
    /// (`cargo lambda watch` sends no real one) sets no limit.
    pub fn for_invocation(deadline: SystemTime, reserve: Duration, clock: &'c dyn Clock) -> Self {
        if deadline <= clock.now() {
            tracing::debug!("the runtime named no deadline ahead; no time budget");
            return Self {
                limit: None,
                started: false,
                exhausted: false,
            };
        }
        Self::until(deadline, reserve, clock)
    }

    /// Whether another file may start. The first always does: refusing it
    /// would make no progress at all, however long the invocation (only a
    /// reserve above the timeout gets there). Each later one reads the
    /// clock once. Once refused, every later file of the invocation is
    /// refused too, so they keep their order.
    pub fn may_start(&mut self) -> bool {
        if self.exhausted {
            return false;
        }
        if !self.started {
            self.started = true;
            return true;
        }
        let Some(limit) = &self.limit else {
            return true;
        };
        let remaining = limit
            .deadline
            .duration_since(limit.clock.now())
            .unwrap_or_default();
        if remaining < limit.reserve {
            tracing::warn!(
                remaining_ms = remaining.as_millis() as u64,
                reserve_ms = limit.reserve.as_millis() as u64,
                "too little time left to start another file; the rest go back to be retried"
            );
            self.exhausted = true;
        }
        !self.exhausted
    }

    /// True once a file was refused: nothing more starts in this invocation.
    pub fn exhausted(&self) -> bool {
        self.exhausted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    struct Fixed(SystemTime);
    impl Clock for Fixed {
        fn now(&self) -> SystemTime {
            self.0
        }
    }

    #[test]
    fn a_deadline_already_passed_at_the_start_sets_no_limit() {
        // `cargo lambda watch` names no deadline ahead: every file starts.
        let now = Fixed(UNIX_EPOCH + Duration::from_secs(1_000));
        let reserve = Duration::from_secs(60);
        let mut local = TimeBudget::for_invocation(UNIX_EPOCH, reserve, &now);
        assert!((0..3).all(|_| local.may_start()));
        // A real deadline closer than the reserve still stops the second file.
        let soon = UNIX_EPOCH + Duration::from_secs(1_030);
        let mut lambda = TimeBudget::for_invocation(soon, reserve, &now);
        assert!(lambda.may_start());
        assert!(!lambda.may_start());
    }

    #[test]
    fn the_reserve_is_whole_seconds_with_a_default() {
        assert_eq!(reserve_from(None).unwrap(), DEFAULT_RESERVE);
        assert_eq!(
            reserve_from(Some("90".into())).unwrap(),
            Duration::from_secs(90)
        );
        let error = reserve_from(Some("1.5".into())).unwrap_err().to_string();
        assert!(
            error.contains("INGEST_TIME_RESERVE_SECS=\"1.5\" is invalid"),
            "{error}"
        );
    }
}
