//! The state every handler receives as `web::Data<AppState>`.

use std::sync::Arc;

use crate::audit::AuditLog;
use crate::config::Settings;
use crate::db::Db;
use crate::pseudonym::PseudonymKey;
use crate::storage::Storage;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub storage: Storage,
    pub settings: Arc<Settings>,
    pub audit: AuditLog,
    /// The pseudonym key (subject ids); [`crate::startup::prepare`] checks it against the
    /// fingerprint the database records.
    pub pseudonym_key: Arc<PseudonymKey>,
}

impl AppState {
    /// Opens the database pool and the object store named by the settings.
    pub fn open(settings: Settings) -> anyhow::Result<Self> {
        let db = Db::connect_with(
            &settings.database_url.0,
            settings.db_pool_size,
            std::time::Duration::from_millis(settings.db_busy_timeout_ms),
        )?;
        let storage = Storage::from_url(&settings.storage_url)?;
        let pseudonym_key = Arc::new(settings.resolve_pseudonym_key()?);
        let audit = AuditLog::start(db.clone());
        Ok(AppState {
            db,
            storage,
            settings: Arc::new(settings),
            audit,
            pseudonym_key,
        })
    }
}
