//! Accounts, devices, tokens, profiles, account data, filters; later push,
//! the user directory and E2EE keys. Other components ask over RPC (the
//! contract is `common::api::userapi`); changes go out through the outbox.

mod account_data;
mod accounts;
mod credentials;
mod filters;
mod profiles;
mod push;
mod pushers;
mod sessions;

use std::{future::Future, sync::Arc};

use common::{
    Runtime, Service,
    api::userapi as api,
    bus::{Bus, RemoteError, Rpc, serve},
    config::Config,
    storage::{Db, Migration, Outbox},
};

pub use accounts::create_account_offline;

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "accounts", sql: include_str!("migrations/0001_accounts.sql") },
    Migration { version: 2, name: "pushers", sql: include_str!("migrations/0002_pushers.sql") },
    Migration { version: 3, name: "notifications", sql: include_str!("migrations/0003_notifications.sql") },
];

/// What every RPC handler works with.
#[derive(Clone)]
struct State {
    db: Db,
    config: Arc<Config>,
    bus: Bus,
    outbox: Outbox,
}

pub async fn run(rt: Runtime) -> anyhow::Result<Service> {
    let db = rt.database("userapi", MIGRATIONS).await?;
    let outbox = Outbox::new(db.clone(), rt.bus.clone(), "userapi");
    rt.spawn("userapi outbox relay", {
        let (outbox, shutdown) = (outbox.clone(), rt.shutdown.clone());
        async move {
            outbox.relay(shutdown).await;
            Ok(())
        }
    });
    let state = State { db: db.clone(), config: rt.config.clone(), bus: rt.bus.clone(), outbox };

    answer::<api::QueryAccessToken, _, _>(&rt, &state, sessions::query_access_token);
    answer::<api::CreateSession, _, _>(&rt, &state, sessions::create_session);
    answer::<api::RefreshSession, _, _>(&rt, &state, sessions::refresh_session);
    answer::<api::CreateLoginToken, _, _>(&rt, &state, sessions::create_login_token);
    answer::<api::ConsumeLoginToken, _, _>(&rt, &state, sessions::consume_login_token);
    answer::<api::DeleteDevices, _, _>(&rt, &state, sessions::delete_devices);
    answer::<api::QueryDevices, _, _>(&rt, &state, sessions::query_devices);
    answer::<api::UpdateDevice, _, _>(&rt, &state, sessions::update_device);
    answer::<api::CheckRegistration, _, _>(&rt, &state, accounts::check_registration);
    answer::<api::CreateAccount, _, _>(&rt, &state, accounts::create_account);
    answer::<api::UpgradeGuest, _, _>(&rt, &state, accounts::upgrade_guest);
    answer::<api::Authenticate, _, _>(&rt, &state, accounts::authenticate);
    answer::<api::SetPassword, _, _>(&rt, &state, accounts::set_password);
    answer::<api::Deactivate, _, _>(&rt, &state, accounts::deactivate);
    answer::<api::QueryProfile, _, _>(&rt, &state, profiles::query_profile);
    answer::<api::SetProfileField, _, _>(&rt, &state, profiles::set_profile_field);
    answer::<api::QueryAccountData, _, _>(&rt, &state, account_data::query_account_data);
    answer::<api::SetAccountData, _, _>(&rt, &state, account_data::set_account_data);
    answer::<api::CreateFilter, _, _>(&rt, &state, filters::create_filter);
    answer::<api::QueryFilter, _, _>(&rt, &state, filters::query_filter);
    answer::<api::QueryPushers, _, _>(&rt, &state, pushers::query_pushers);
    answer::<api::SetPusher, _, _>(&rt, &state, pushers::set_pusher);
    answer::<api::QueryNotifications, _, _>(&rt, &state, push::query_notifications);
    push::start(&rt, &state)?;

    Ok(Service { name: "userapi", client_routes: axum::Router::new(), federation_routes: axum::Router::new(), db })
}

/// Publishes what a committed change queued. The change stands either way:
/// what cannot be published now, the outbox relay publishes later.
async fn publish_now(outbox: &Outbox) {
    if let Err(e) = outbox.flush().await {
        tracing::warn!(error = format!("{e:#}"), "cannot publish yet; the outbox relay will");
    }
}

/// Answers RPC method `R` with `handler` in this instance.
fn answer<R, H, F>(rt: &Runtime, state: &State, handler: H)
where
    R: Rpc + 'static,
    H: Fn(State, R::Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<R::Response, RemoteError>> + Send + 'static,
{
    let state = state.clone();
    rt.spawn(
        R::METHOD,
        serve::<R, _, _>(rt.bus.clone(), rt.shutdown.clone(), move |request| handler(state.clone(), request)),
    );
}
