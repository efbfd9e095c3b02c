//! The state every handler gets: the store, the configuration, the operator key, the clock,
//! the task worker's handle and the metrics.

use std::sync::Arc;

use cdh_store::AnyStore;
use std::collections::HashMap;
use std::sync::Mutex;

use cdh_store::model::{ChannelId, HubId, Millis, OrganizationId};

pub use cdh_store::Clock;

use crate::Config;
use crate::auth::OperatorKey;
use crate::error::ApiResult;
use crate::metrics::Metrics;
use crate::worker::Worker;

/// Shared by all requests; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: AnyStore,
    /// How the server was started.
    pub config: Arc<Config>,
    /// The hash of the operator's token.
    pub operator: Arc<OperatorKey>,
    /// What time it is (tests may move it).
    pub clock: Clock,
    /// Runs tasks (apply, import, export) and webhook deliveries.
    pub worker: Worker,
    /// Request counts and latencies for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Which organization each channel belongs to (channels never move, so this never goes stale).
    pub channel_orgs: Arc<Mutex<HashMap<(HubId, ChannelId), OrganizationId>>>,
    /// The key console session and CSRF cookies are signed with.
    pub console_key: axum_extra::extract::cookie::Key,
    /// Failed console sign-ins per account and address, and the password-check slots.
    pub sign_in_guard: Arc<crate::console::guard::SignInGuard>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Now, in milliseconds since the Unix epoch, by the state's clock.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// The organization a channel belongs to (cached: every access check asks it).
    pub async fn channel_org(&self, hub: HubId, channel: ChannelId) -> ApiResult<OrganizationId> {
        let cached = self
            .channel_orgs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(hub, channel))
            .copied();
        if let Some(org) = cached {
            return Ok(org);
        }
        let org = self.store.get_channel(hub, channel).await?.organization_id;
        self.channel_orgs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((hub, channel), org);
        Ok(org)
    }
}
