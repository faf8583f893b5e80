//! `federationsender_server_keys`: other servers' public keys, one row per
//! key, each with the times it answers for — a current key up to its
//! `valid_until_ts` (inclusive; at most seven days after it was fetched), an
//! old one strictly before its `expired_ts`.
//! `federationsender_server_key_responses`: each server's latest key
//! response as it signed it, which our notary endpoints serve.

use std::collections::HashMap;

use common::storage::{Db, now_ms};
use sqlx::AssertSqlSafe;

/// However long a server says its keys hold, they are trusted for at most
/// this long after they were fetched (the spec's bound for room versions 5+).
pub const MAX_KEY_VALIDITY_MS: i64 = 7 * 24 * 3600 * 1000;

#[derive(Clone, Debug)]
pub struct StoredKey {
    pub key_id: String,
    /// Unpadded base64.
    pub public_key: String,
    pub valid_until_ts: i64,
    /// Set for a key the server lists in `old_verify_keys`.
    pub expired_ts: Option<i64>,
}

impl StoredKey {
    /// Whether the key verifies what was signed at `ts`.
    pub fn valid_at(&self, ts: i64) -> bool {
        match self.expired_ts {
            Some(expired) => ts < expired,
            None => ts <= self.valid_until_ts,
        }
    }
}

/// A key response checked to be signed by its server.
#[derive(Clone, Debug)]
pub struct SignedKeys {
    pub server_name: String,
    /// `verify_keys`: key id → public key.
    pub current: Vec<(String, String)>,
    /// `old_verify_keys`: key id → public key, expired_ts.
    pub old: Vec<(String, String, i64)>,
    /// As the server said.
    pub valid_until_ts: i64,
    /// The whole response, signatures included.
    pub response: String,
}

#[derive(Clone, Debug)]
pub struct KeyResponse {
    pub response: String,
    pub valid_until_ts: i64,
    pub fetched_ts: i64,
}

#[derive(Clone)]
pub struct ServerKeys {
    db: Db,
}

impl ServerKeys {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn keys_of(&self, server: &str) -> Result<Vec<StoredKey>, sqlx::Error> {
        let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT key_id, public_key, valid_until_ts, expired_ts FROM federationsender_server_keys
             WHERE server_name = $1",
        )
        .bind(server)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(key_id, public_key, valid_until_ts, expired_ts)| StoredKey {
                key_id,
                public_key,
                valid_until_ts,
                expired_ts,
            })
            .collect())
    }

    /// The latest responses of `servers` that we have, by server.
    pub async fn responses_of(&self, servers: &[&str]) -> Result<HashMap<String, KeyResponse>, sqlx::Error> {
        let mut found = HashMap::new();
        for chunk in servers.chunks(100) {
            let placeholders = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT server_name, response, valid_until_ts, fetched_ts FROM federationsender_server_key_responses
                 WHERE server_name IN ({placeholders})"
            );
            let mut query = sqlx::query_as::<_, (String, String, i64, i64)>(AssertSqlSafe(sql));
            for server in chunk {
                query = query.bind(*server);
            }
            for (server, response, valid_until_ts, fetched_ts) in query.fetch_all(self.db.pool()).await? {
                found.insert(server, KeyResponse { response, valid_until_ts, fetched_ts });
            }
        }
        Ok(found)
    }

    /// Records a checked response: its keys, and the response itself unless
    /// the one we have holds longer.
    pub async fn save(&self, keys: &SignedKeys) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let valid_until = keys.valid_until_ts.min(now + MAX_KEY_VALIDITY_MS);
        let mut tx = self.db.begin_write().await?;
        for (key_id, public_key) in &keys.current {
            // A key once listed as expired stays expired, whatever an older
            // response relayed by a notary says.
            sqlx::query(
                "INSERT INTO federationsender_server_keys
                     (server_name, key_id, public_key, valid_until_ts, expired_ts, fetched_ts)
                 VALUES ($1, $2, $3, $4, NULL, $5)
                 ON CONFLICT (server_name, key_id) DO UPDATE SET public_key = excluded.public_key,
                     valid_until_ts = excluded.valid_until_ts, fetched_ts = excluded.fetched_ts",
            )
            .bind(&keys.server_name)
            .bind(key_id)
            .bind(public_key)
            .bind(valid_until)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for (key_id, public_key, expired_ts) in &keys.old {
            sqlx::query(
                "INSERT INTO federationsender_server_keys
                     (server_name, key_id, public_key, valid_until_ts, expired_ts, fetched_ts)
                 VALUES ($1, $2, $3, $4, $4, $5)
                 ON CONFLICT (server_name, key_id) DO UPDATE SET public_key = excluded.public_key,
                     valid_until_ts = excluded.valid_until_ts, expired_ts = excluded.expired_ts,
                     fetched_ts = excluded.fetched_ts",
            )
            .bind(&keys.server_name)
            .bind(key_id)
            .bind(public_key)
            .bind(*expired_ts)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO federationsender_server_key_responses (server_name, response, valid_until_ts, fetched_ts)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (server_name) DO UPDATE SET response = excluded.response,
                 valid_until_ts = excluded.valid_until_ts, fetched_ts = excluded.fetched_ts
             WHERE excluded.valid_until_ts >= federationsender_server_key_responses.valid_until_ts",
        )
        .bind(&keys.server_name)
        .bind(&keys.response)
        .bind(keys.valid_until_ts)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }
}
