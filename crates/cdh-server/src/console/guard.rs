//! What stands between an anonymous client and the console's password checks: failures are
//! counted per account *and* client address, in a map of bounded size, and answered with a
//! back-off that grows with each failure (so a guesser slows down while the real user,
//! from their own address, is never locked out); argon2 verifications, which take ~19 MiB
//! and tens of milliseconds each, run a few at a time, and a sign-in that finds every slot
//! taken for a second gets a busy answer instead of a queue that grows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use cdh_store::model::{HubId, Millis, OrganizationId};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Failures an account may have from one address before each try must wait.
pub const FREE_FAILURES: u32 = 5;
/// The longest wait between tries, in seconds.
pub const MAX_BACKOFF_SECS: u64 = 300;
/// A count with no failure for this long is forgotten.
pub const FORGET_AFTER_MS: Millis = 15 * 60_000;
/// Accounts-and-addresses tracked at most (the oldest go first).
pub const MAX_TRACKED: usize = 10_000;
/// Password verifications running at once.
pub const MAX_VERIFICATIONS: usize = 2;
/// How long a sign-in waits for a verification slot before the busy answer.
pub const VERIFICATION_WAIT: Duration = Duration::from_secs(1);

/// Who is trying to sign in as whom.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attempt {
    /// The organization's hub.
    pub hub: HubId,
    /// The organization.
    pub org: OrganizationId,
    /// The normalised email (its shape and length checked before it gets here).
    pub email: String,
    /// The client's address.
    pub client: IpAddr,
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Millis,
}

impl Failures {
    /// When the next try may come: right away for the first failures, then after a wait
    /// that doubles with each failure, up to [`MAX_BACKOFF_SECS`].
    fn next_try(self) -> Millis {
        if self.count < FREE_FAILURES {
            return self.last;
        }
        let secs = 1u64
            .checked_shl(self.count - FREE_FAILURES)
            .unwrap_or(u64::MAX)
            .min(MAX_BACKOFF_SECS);
        self.last + i64::try_from(secs * 1000).unwrap_or(Millis::MAX / 2)
    }
}

/// The console's sign-in guard (one per server).
#[derive(Debug)]
pub struct SignInGuard {
    failures: Mutex<HashMap<Attempt, Failures>>,
    verifications: Semaphore,
}

impl Default for SignInGuard {
    fn default() -> Self {
        Self {
            failures: Mutex::default(),
            verifications: Semaphore::new(MAX_VERIFICATIONS),
        }
    }
}

impl SignInGuard {
    /// The seconds this client must wait before trying this account again, if any.
    pub fn wait(&self, attempt: &Attempt, now: Millis) -> Option<u64> {
        let failures = self.lock();
        let f = failures.get(attempt)?;
        let ms = f.next_try() - now;
        (ms > 0).then(|| u64::try_from(ms).unwrap_or(1).div_ceil(1000))
    }

    /// Counts a failed try.
    pub fn failed(&self, attempt: Attempt, now: Millis) {
        let mut failures = self.lock();
        if !failures.contains_key(&attempt) && failures.len() >= MAX_TRACKED {
            failures.retain(|_, f| f.last > now - FORGET_AFTER_MS);
            if failures.len() >= MAX_TRACKED
                && let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| k.clone())
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(attempt).or_insert(Failures {
            count: 0,
            last: now,
        });
        if entry.last <= now - FORGET_AFTER_MS {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    /// Forgets the failures of a try that succeeded.
    pub fn succeeded(&self, attempt: &Attempt) {
        self.lock().remove(attempt);
    }

    /// Accounts-and-addresses tracked now.
    pub fn n_tracked(&self) -> usize {
        self.lock().len()
    }

    /// A slot to verify a password in, or `None` when every slot stayed taken for
    /// [`VERIFICATION_WAIT`].
    pub async fn verification_slot(&self) -> Option<SemaphorePermit<'_>> {
        tokio::time::timeout(VERIFICATION_WAIT, self.verifications.acquire())
            .await
            .ok()?
            .ok()
    }

    /// Takes every verification slot (tests use it to see the busy answer).
    pub async fn take_all_slots(&self) -> SemaphorePermit<'_> {
        let n = u32::try_from(MAX_VERIFICATIONS).unwrap_or(u32::MAX);
        self.verifications
            .acquire_many(n)
            .await
            .expect("the semaphore is never closed")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Attempt, Failures>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(email: &str, client: [u8; 4]) -> Attempt {
        Attempt {
            hub: HubId(1),
            org: OrganizationId(1),
            email: email.into(),
            client: IpAddr::from(client),
        }
    }

    #[test]
    fn failures_back_off_per_account_and_address() {
        let guard = SignInGuard::default();
        let ann = attempt("ann@example.com", [10, 0, 0, 1]);
        for i in 0..FREE_FAILURES {
            assert_eq!(guard.wait(&ann, i64::from(i)), None);
            guard.failed(ann.clone(), i64::from(i));
        }
        // The sixth failure waits 1 s, then 2 s, 4 s, ...
        assert_eq!(guard.wait(&ann, 4), Some(1));
        guard.failed(ann.clone(), 1_004);
        assert_eq!(guard.wait(&ann, 1_005), Some(2));
        assert_eq!(guard.wait(&ann, 3_004), None);
        // The same account from another address, and another account, are not slowed.
        assert_eq!(
            guard.wait(&attempt("ann@example.com", [10, 0, 0, 2]), 5),
            None
        );
        assert_eq!(
            guard.wait(&attempt("bea@example.com", [10, 0, 0, 1]), 5),
            None
        );
        // The wait never passes the cap, however many failures.
        for i in 0..64 {
            guard.failed(ann.clone(), 10_000 + i);
        }
        assert_eq!(guard.wait(&ann, 10_063), Some(MAX_BACKOFF_SECS));
        guard.succeeded(&ann);
        assert_eq!(guard.wait(&ann, 10_064), None);
    }

    #[test]
    fn the_map_never_grows_past_its_bound() {
        let guard = SignInGuard::default();
        for i in 0..(MAX_TRACKED + 50) {
            let n = u32::try_from(i).unwrap();
            guard.failed(attempt("ann@example.com", n.to_be_bytes()), i64::from(n));
        }
        assert_eq!(guard.n_tracked(), MAX_TRACKED);
        // The newest are kept.
        let newest = u32::try_from(MAX_TRACKED + 49).unwrap();
        guard.failed(attempt("ann@example.com", newest.to_be_bytes()), 1 << 40);
        assert_eq!(guard.n_tracked(), MAX_TRACKED);
    }
}
