use crate::config::Config;
use crate::keycache::KeyVerifier;
use keyplane_core::ports::{AuditStore, KeyStore, OrgStore, ProjectStore, ServiceAccountStore};
use std::sync::Arc;

/// What every handler may reach: configuration, the storage ports and the key verifier.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub orgs: Arc<dyn OrgStore>,
    pub projects: Arc<dyn ProjectStore>,
    pub keys: Arc<dyn KeyStore>,
    pub service_accounts: Arc<dyn ServiceAccountStore>,
    pub audit: Arc<dyn AuditStore>,
    pub verifier: Arc<KeyVerifier>,
}
