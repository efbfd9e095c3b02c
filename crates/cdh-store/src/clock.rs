//! Where the store, and the server above it, take the time from: the system clock, or a
//! clock a test sets and moves, so that no test sleeps to make time pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::Millis;

/// A source of the current time, in milliseconds since the Unix epoch. Clones share one
/// manual clock.
#[derive(Clone, Default)]
pub struct Clock {
    fixed: Option<Arc<AtomicI64>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.fixed {
            None => f.write_str("Clock::System"),
            Some(t) => write!(f, "Clock::Manual({})", t.load(Ordering::Relaxed)),
        }
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { fixed: None }
    }

    /// A clock that stands at `at` until [`Clock::set`] or [`Clock::advance`] moves it.
    pub fn manual(at: Millis) -> Self {
        Self {
            fixed: Some(Arc::new(AtomicI64::new(at))),
        }
    }

    /// Moves a manual clock to `at` (no effect on the system clock).
    pub fn set(&self, at: Millis) {
        if let Some(t) = &self.fixed {
            t.store(at, Ordering::Relaxed);
        }
    }

    /// Moves a manual clock forward by `ms` (no effect on the system clock).
    pub fn advance(&self, ms: Millis) {
        if let Some(t) = &self.fixed {
            t.fetch_add(ms, Ordering::Relaxed);
        }
    }

    /// Now.
    pub fn now(&self) -> Millis {
        match &self.fixed {
            Some(t) => t.load(Ordering::Relaxed),
            None => system_now(),
        }
    }
}

/// The system clock's now, in milliseconds since the Unix epoch.
pub fn system_now() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::Clock;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = Clock::manual(1_000);
        let shared = clock.clone();
        assert_eq!(clock.now(), 1_000);
        shared.advance(5);
        assert_eq!(clock.now(), 1_005);
        clock.set(42);
        assert_eq!(shared.now(), 42);
    }

    #[test]
    fn the_system_clock_ignores_moves() {
        let clock = Clock::system();
        clock.set(1);
        assert!(clock.now() > 1_700_000_000_000);
    }
}
