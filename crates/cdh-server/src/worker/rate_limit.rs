//! A sliding-window request limit per organization (imports: 15 requests a minute).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use cdh_store::model::{HubId, Millis, OrganizationId};

/// Requests allowed per window.
pub const IMPORT_REQUESTS_PER_MINUTE: usize = 15;

/// The window the limit counts over.
const WINDOW_MS: Millis = 60_000;

/// Counts each organization's requests over the last minute. Kept in memory: a restart
/// forgets the counts, which errs on the side of letting a caller in.
#[derive(Debug, Default)]
pub struct RateLimiter {
    seen: Mutex<HashMap<(HubId, OrganizationId), VecDeque<Millis>>>,
}

impl RateLimiter {
    /// Counts a request made at `now`, or refuses it with the seconds to wait before the
    /// oldest counted request leaves the window (the `Retry-After` value, at least 1).
    pub fn check(&self, hub: HubId, org: OrganizationId, now: Millis) -> Result<(), u64> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let times = seen.entry((hub, org)).or_default();
        while times.front().is_some_and(|t| *t <= now - WINDOW_MS) {
            times.pop_front();
        }
        if times.len() >= IMPORT_REQUESTS_PER_MINUTE {
            let oldest = times.front().copied().unwrap_or(now);
            let wait_ms = u64::try_from(oldest + WINDOW_MS - now).unwrap_or(1).max(1);
            return Err(wait_ms.div_ceil(1000));
        }
        times.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixteenth_request_in_a_minute_waits_for_the_oldest_to_leave() {
        let limiter = RateLimiter::default();
        for i in 0..15 {
            assert_eq!(limiter.check(1, 1, 1_000 + i * 1_000), Ok(()));
        }
        // The oldest was at 1 s; it leaves the window at 61 s.
        assert_eq!(limiter.check(1, 1, 20_500), Err(41));
        // Another organization has its own count.
        assert_eq!(limiter.check(1, 2, 20_500), Ok(()));
        assert_eq!(limiter.check(1, 1, 61_000), Ok(()));
        assert_eq!(limiter.check(1, 1, 61_001), Err(1));
    }
}
