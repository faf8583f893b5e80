//! The client-server API, `/_matrix/client/*`, except what syncapi serves.
//! Handlers live in `routes/`, one module per path; accounts and sessions
//! are userapi's, asked over RPC.

mod consumers;
mod membership;
mod remote_membership;
mod room_access;
mod rooms;
mod routes;
mod uia;

use std::{net::IpAddr, sync::Arc};

use ruma::UserId;

use common::{
    Runtime, Service,
    api::userapi::TokenOwner,
    http::{MatrixError, RateLimiter},
    storage::{Db, Migration, Outbox},
};

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "uia sessions and registration nonces",
        sql: include_str!("migrations/0001_sessions.sql"),
    },
    Migration { version: 2, name: "client transaction ids", sql: include_str!("migrations/0002_transactions.sql") },
    Migration { version: 3, name: "content reports", sql: include_str!("migrations/0003_reports.sql") },
    Migration {
        version: 4,
        name: "send-to-device transaction ids",
        sql: include_str!("migrations/0004_to_device_txns.sql"),
    },
    Migration { version: 5, name: "uia operations", sql: include_str!("migrations/0005_uia_operations.sql") },
    Migration {
        version: 6,
        name: "events of transactions",
        sql: include_str!("migrations/0006_transaction_events.sql"),
    },
];

/// What every handler works with.
pub struct App {
    pub rt: Runtime,
    pub db: Db,
    /// Login attempts per account, whatever the address.
    login_limiter: Option<RateLimiter<String>>,
    /// What must be published once a change commits (send-to-device messages).
    outbox: Outbox,
}

impl App {
    /// Counts a login attempt for `account` (a localpart or a user id, one
    /// bucket for both spellings); 429 when it has had too many.
    fn check_login_rate(&self, account: &str) -> Result<(), MatrixError> {
        let Some(limiter) = &self.login_limiter else { return Ok(()) };
        let localpart = account.trim().trim_start_matches('@').split(':').next().unwrap_or_default();
        limiter.take(localpart.to_lowercase()).map_err(MatrixError::limit_exceeded)
    }
}

/// The caller, who must be `user_id`: accounts are only ever changed by their owner.
fn own_account<'a>(caller: Option<&'a TokenOwner>, user_id: &UserId) -> Result<&'a TokenOwner, MatrixError> {
    let caller = caller.ok_or_else(MatrixError::missing_token)?;
    if caller.user_id != user_id {
        return Err(MatrixError::forbidden("You may only act on your own account"));
    }
    Ok(caller)
}

/// Publishes what a committed change queued. The change stands either way:
/// what cannot be published now, the outbox relay publishes later.
async fn publish_now(outbox: &Outbox) {
    if let Err(e) = outbox.flush().await {
        tracing::warn!(error = format!("{e:#}"), "cannot publish yet; the outbox relay will");
    }
}

/// The client address as userapi records it.
fn ip_string(ip: Option<IpAddr>) -> Option<String> {
    ip.map(|ip| ip.to_string())
}

pub async fn run(rt: Runtime) -> anyhow::Result<Service> {
    let db = rt.database("clientapi", MIGRATIONS).await?;
    let limits = &rt.config.global.rate_limits;
    let login_limiter = RateLimiter::new(limits.enabled, limits.account_per_second, limits.account_burst);
    let outbox = Outbox::new(db.clone(), rt.bus.clone(), "clientapi");
    rt.spawn("clientapi outbox relay", {
        let (outbox, shutdown) = (outbox.clone(), rt.shutdown.clone());
        async move {
            outbox.relay(shutdown).await;
            Ok(())
        }
    });
    let app = Arc::new(App { rt, db: db.clone(), login_limiter, outbox });
    consumers::start(&app);
    let expiring = app.clone();
    app.rt.spawn("clientapi transaction expiry", async move { rooms::expire_transactions(expiring).await });
    Ok(Service { name: "clientapi", client_routes: routes::router(app), federation_routes: axum::Router::new(), db })
}
