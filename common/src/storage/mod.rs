//! Databases: one query path (sqlx's Any driver, `$N` parameters, JSON as
//! TEXT, timestamps as BIGINT) that runs on both Postgres and SQLite.

mod migrate;
mod outbox;

use std::time::Duration;

use anyhow::Context;
use sqlx::{AnyPool, Executor, any::AnyPoolOptions};

pub use migrate::Migration;
pub use outbox::{Outbox, Written};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    dialect: Dialect,
}

impl Db {
    /// Opens the database; a SQLite file (and its directory) is created if missing.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let (dialect, url) = if url.starts_with("sqlite:") {
            let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
            let path = path.split('?').next().unwrap_or_default();
            if let Some(dir) = std::path::Path::new(path).parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let url = if url.contains('?') { url.to_owned() } else { format!("{url}?mode=rwc") };
            (Dialect::Sqlite, url)
        } else {
            (Dialect::Postgres, url.to_owned())
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if dialect == Dialect::Sqlite { 4 } else { 10 })
            .acquire_timeout(Duration::from_secs(10))
            // A ping before every checkout is a round trip per query; a
            // broken connection fails its query, which is retried anyway.
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // WAL lets readers and one writer work at once, across
                        // processes too; writers queue instead of failing.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("cannot open database {}", redact(&url)))?;
        Ok(Db { pool, dialect })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that will write: the one place that decides how write
    /// transactions begin. On SQLite they stay deferred: `BEGIN IMMEDIATE`
    /// (which would make writers queue under `busy_timeout` instead of
    /// meeting "database is locked" when they read first) stalled the
    /// roomserver under concurrent sends in CI, and is left for a closer look.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        self.pool.begin().await
    }

    /// A transaction that reads what it then writes. On SQLite it takes the
    /// write lock at once (`BEGIN IMMEDIATE`): begun deferred, it would fail
    /// with "database is locked" at its first write whenever another writer
    /// committed after its first read, and a request would answer 500. While
    /// it is open, use nothing but it: a write through another connection
    /// would wait on its lock, and a wait for the pool could wait on writers
    /// queued behind it.
    pub async fn begin_read_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.pool.begin().await,
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Whether the database answers, for /health.
    pub async fn is_reachable(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Milliseconds since the Unix epoch, the way timestamps are stored.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(super::redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact("sqlite:///x/y.db"), "sqlite:///x/y.db");
    }
}
