//! Each component's schema migrations, recorded in `<component>_migrations`.
//!
//! Instances of a component may start together: each migration runs in a
//! transaction that first claims its version row, so exactly one of them
//! applies it and the others see it applied.

use std::time::Duration;

use anyhow::Context;
use sqlx::{AssertSqlSafe, Executor};

use super::{Db, Dialect, now_ms};

/// One schema change. In `sql`, statements are separated by `;` at the end of
/// a line, and `{autoinc}` / `{bytes}` stand for the dialect's auto-increment
/// key and binary column types.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every component gets an outbox (see `outbox.rs`) as its migration 0.
const OUTBOX: &str = "CREATE TABLE {component}_outbox (
    id {autoinc},
    subject TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_ts BIGINT NOT NULL
);";

impl Db {
    /// Brings the component's tables up to date.
    pub async fn migrate(&self, component: &str, migrations: &[Migration]) -> anyhow::Result<()> {
        let mut all = vec![(0, "outbox".to_owned(), OUTBOX.replace("{component}", component))];
        for m in migrations {
            anyhow::ensure!(m.version > 0, "{component} migration versions start at 1");
            all.push((m.version, m.name.to_owned(), m.sql.to_owned()));
        }
        let mut attempt = 0;
        loop {
            match self.migrate_once(component, &all).await {
                Ok(()) => return Ok(()),
                // Another instance migrating at the same moment: look again.
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(component, error = %e, "migration raced; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => return Err(e.context(format!("cannot migrate {component}'s tables"))),
            }
        }
    }

    async fn migrate_once(&self, component: &str, all: &[(i64, String, String)]) -> anyhow::Result<()> {
        let table = format!("{component}_migrations");
        self.pool
            .execute(AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS {table} (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ts BIGINT NOT NULL)"
            )))
            .await?;
        let applied: Vec<i64> =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT version FROM {table}"))).fetch_all(&self.pool).await?;
        for (version, name, sql) in all {
            if applied.contains(version) {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            sqlx::query(AssertSqlSafe(format!("INSERT INTO {table} (version, name, applied_ts) VALUES ($1, $2, $3)")))
                .bind(*version)
                .bind(name.as_str())
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            for statement in self.dialect.expand(sql).split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
                let statement = statement.trim_end_matches(';').to_owned();
                tx.execute(AssertSqlSafe(statement.clone()))
                    .await
                    .with_context(|| format!("{component} migration {version} ({name}) failed at: {statement}"))?;
            }
            tx.commit().await?;
            tracing::info!(component, version, name = name.as_str(), "applied migration");
        }
        Ok(())
    }
}

impl Dialect {
    fn expand(self, sql: &str) -> String {
        let (autoinc, bytes) = match self {
            Dialect::Postgres => ("BIGSERIAL PRIMARY KEY", "BYTEA"),
            Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"),
        };
        format!("{}\n", sql.replace("{autoinc}", autoinc).replace("{bytes}", bytes))
    }
}
