use crate::config::Config;
use crate::gateway::Gateway;
use crate::keycache::KeyVerifier;
use keyplane_core::ports::{
    AlertStore, AuditStore, KeyStore, OrgStore, PeopleStore, PolicyStore, ProjectStore,
    ServiceAccountStore, SessionStore, UsageStore,
};
use std::sync::Arc;

/// What every handler may reach. One `Arc`, so the per-request clones axum makes of the state
/// (one per middleware and handler) are a single atomic increment.
pub type AppState = Arc<Services>;

/// Configuration, the storage ports, the key verifier and the gateway's in-memory state.
pub struct Services {
    pub config: Arc<Config>,
    pub orgs: Arc<dyn OrgStore>,
    pub projects: Arc<dyn ProjectStore>,
    pub keys: Arc<dyn KeyStore>,
    pub service_accounts: Arc<dyn ServiceAccountStore>,
    pub audit: Arc<dyn AuditStore>,
    pub people: Arc<dyn PeopleStore>,
    pub policies: Arc<dyn PolicyStore>,
    pub usage: Arc<dyn UsageStore>,
    pub alerts: Arc<dyn AlertStore>,
    pub sessions: Arc<dyn SessionStore>,
    /// Failed dashboard sign-ins per address and account.
    pub login_throttle: crate::dashboard::throttle::LoginThrottle,
    pub verifier: Arc<KeyVerifier>,
    pub gateway: Arc<Gateway>,
    /// Cache invalidation, here and on every other instance.
    pub changes: Arc<crate::changes::Changes>,
}

impl Services {
    /// Applies a change to the caches of this instance at once and publishes it to the others.
    pub fn changed(&self, change: crate::changes::Change) {
        self.changes.apply(change);
    }
}
