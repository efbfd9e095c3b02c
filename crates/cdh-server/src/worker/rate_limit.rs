//! Sliding-window limits kept in memory: import requests (15 a minute per organization).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

use cdh_store::model::{HubId, Millis, OrganizationId};

/// Import requests allowed per organization per minute.
pub const IMPORT_REQUESTS_PER_MINUTE: usize = 15;

/// Counts events per key over the last `window_ms`. Kept in memory: a restart forgets the
/// counts, which errs on the side of letting a caller in.
#[derive(Debug)]
pub struct SlidingWindow<K> {
    limit: usize,
    window_ms: Millis,
    seen: Mutex<HashMap<K, VecDeque<Millis>>>,
}

/// The per-organization limit on import requests.
pub type RateLimiter = SlidingWindow<(HubId, OrganizationId)>;

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new(IMPORT_REQUESTS_PER_MINUTE, 60_000)
    }
}

impl<K: Hash + Eq> SlidingWindow<K> {
    /// At most `limit` events per key in any `window_ms`.
    pub fn new(limit: usize, window_ms: Millis) -> Self {
        Self {
            limit,
            window_ms,
            seen: Mutex::default(),
        }
    }

    /// Counts an event at `now`, or refuses it with the seconds to wait before the oldest
    /// counted event leaves the window (the `Retry-After` value, at least 1).
    pub fn check(&self, key: K, now: Millis) -> Result<(), u64> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let times = seen.entry(key).or_default();
        self.expire(times, now);
        if let Some(wait) = self.wait(times, now) {
            return Err(wait);
        }
        times.push_back(now);
        Ok(())
    }

    fn expire(&self, times: &mut VecDeque<Millis>, now: Millis) {
        while times.front().is_some_and(|t| *t <= now - self.window_ms) {
            times.pop_front();
        }
    }

    fn wait(&self, times: &VecDeque<Millis>, now: Millis) -> Option<u64> {
        if times.len() < self.limit {
            return None;
        }
        let oldest = times.front().copied().unwrap_or(now);
        let wait_ms = u64::try_from(oldest + self.window_ms - now)
            .unwrap_or(1)
            .max(1);
        Some(wait_ms.div_ceil(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixteenth_request_in_a_minute_waits_for_the_oldest_to_leave() {
        let limiter = RateLimiter::default();
        for i in 0..15 {
            assert_eq!(
                limiter.check((HubId(1), OrganizationId(1)), 1_000 + i * 1_000),
                Ok(())
            );
        }
        // The oldest was at 1 s; it leaves the window at 61 s.
        assert_eq!(
            limiter.check((HubId(1), OrganizationId(1)), 20_500),
            Err(41)
        );
        // Another organization has its own count.
        assert_eq!(limiter.check((HubId(1), OrganizationId(2)), 20_500), Ok(()));
        assert_eq!(limiter.check((HubId(1), OrganizationId(1)), 61_000), Ok(()));
        assert_eq!(limiter.check((HubId(1), OrganizationId(1)), 61_001), Err(1));
    }
}
