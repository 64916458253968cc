//! The actix-session store backed by the `sessions` table, so that sessions end server-side:
//! logout, deactivation and password change delete rows, and a replayed cookie finds nothing.

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use base64::Engine as _;
use chrono::TimeDelta;

use super::tokens::digest;
use crate::db::{now, Db};
use crate::models::sessions;

/// The session-state key under which actix-identity keeps the user id (our internal id).
pub const IDENTITY_KEY: &str = "actix_identity.user_id";

type SessionState = HashMap<String, String>;

#[derive(Clone)]
pub struct DbSessionStore {
    db: Db,
}

impl DbSessionStore {
    pub fn new(db: Db) -> Self {
        DbSessionStore { db }
    }
}

fn new_session_key() -> Result<SessionKey, anyhow::Error> {
    let bytes: [u8; 32] = rand::random();
    SessionKey::try_from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
        .map_err(|e| anyhow::anyhow!("session key: {e}"))
}

/// The user a session state belongs to (the identity value is a JSON string of the id).
fn user_of(state: &SessionState) -> Option<i64> {
    let raw = state.get(IDENTITY_KEY)?;
    serde_json::from_str::<String>(raw).ok()?.parse().ok()
}

fn expiry(ttl: &Duration) -> chrono::NaiveDateTime {
    now() + TimeDelta::seconds(ttl.whole_seconds().max(1))
}

impl SessionStore for DbSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let key_hash = digest(session_key.as_ref());
        let state = self
            .db
            .query(move |conn| sessions::load_session(conn, &key_hash, now()))
            .await
            .map_err(|e| LoadError::Other(anyhow::anyhow!("{e}")))?;
        match state {
            None => Ok(None),
            Some(json) => serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| LoadError::Deserialization(e.into())),
        }
    }

    async fn save(
        &self,
        session_state: SessionState,
        ttl: &Duration,
    ) -> Result<SessionKey, SaveError> {
        let key = new_session_key().map_err(SaveError::Other)?;
        let json = serde_json::to_string(&session_state)
            .map_err(|e| SaveError::Serialization(e.into()))?;
        let key_hash = digest(key.as_ref());
        let user_id = user_of(&session_state);
        let expires_at = expiry(ttl);
        self.db
            .run(move |conn| {
                let at = now();
                sessions::purge_expired_sessions(conn, at)?;
                Ok::<_, crate::db::DbError>(sessions::insert_session(
                    conn, &key_hash, user_id, &json, at, expires_at,
                )?)
            })
            .await
            .map_err(|e| SaveError::Other(anyhow::anyhow!("{e}")))?;
        Ok(key)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: SessionState,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let json = serde_json::to_string(&session_state)
            .map_err(|e| UpdateError::Serialization(e.into()))?;
        let key_hash = digest(session_key.as_ref());
        let expires_at = expiry(ttl);
        let updated = self
            .db
            .query(move |conn| {
                sessions::update_session(conn, &key_hash, Some(&json), now(), expires_at)
            })
            .await
            .map_err(|e| UpdateError::Other(anyhow::anyhow!("{e}")))?;
        if updated {
            Ok(session_key)
        } else {
            // The session was ended server-side while this request ran: never bring it back.
            // The client gets a fresh key that names no stored state.
            new_session_key().map_err(UpdateError::Other)
        }
    }

    async fn update_ttl(
        &self,
        session_key: &SessionKey,
        ttl: &Duration,
    ) -> Result<(), anyhow::Error> {
        let key_hash = digest(session_key.as_ref());
        let expires_at = expiry(ttl);
        self.db
            .query(move |conn| sessions::update_session(conn, &key_hash, None, now(), expires_at))
            .await
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        let key_hash = digest(session_key.as_ref());
        self.db
            .query(move |conn| sessions::delete_session(conn, &key_hash))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}
