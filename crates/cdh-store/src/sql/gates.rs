//! Per-hub gates that let an apply finish while a hub is written to without pause.
//!
//! An apply plans from a snapshot and swaps only if no contact of its realm was written
//! since (`Dialect::REALM_WRITTEN`); otherwise it plans again. Under a steady stream of
//! upserts every try can lose that race, so the last try closes the hub's gate: contact
//! writes of the hub wait at the gate (they hold it open, shared, while they run) until the
//! try ends. The gate is per process: writers in another process are still checked by the
//! swap, they are just not held off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::model::HubId;

/// The gates of every hub the store has written to.
#[derive(Debug, Default)]
pub(crate) struct ApplyGates {
    gates: Mutex<HashMap<HubId, Arc<RwLock<()>>>>,
}

impl ApplyGates {
    /// Held by a contact write for as long as it runs: it waits while an apply's last try
    /// has the hub's gate closed.
    pub async fn enter(&self, hub: HubId) -> OwnedRwLockReadGuard<()> {
        self.gate(hub).read_owned().await
    }

    /// Closes the hub's gate once the writes under way have ended; it reopens when the guard
    /// is dropped.
    pub async fn close(&self, hub: HubId) -> OwnedRwLockWriteGuard<()> {
        self.gate(hub).write_owned().await
    }

    fn gate(&self, hub: HubId) -> Arc<RwLock<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(gates.entry(hub).or_default())
    }
}
