//! `userapi_accounts`: who has an account, their password hash, and whether
//! they are a guest, an admin, or deactivated. A deactivated account keeps
//! its row, so that its user id is never given to someone else.

use common::{
    api::userapi::{
        AuthenticateRequest, Authenticated, CheckRegistrationRequest, CreateAccountRequest, CreatedAccount,
        DeactivateRequest, DeviceSelection, SetPasswordRequest, UpgradeGuestRequest,
    },
    bus::{RemoteError, RemoteErrorKind},
    config::Config,
    storage::{Db, Migration, now_ms},
};
use ruma::{OwnedUserId, UserId};

use crate::{State, credentials, profiles, sessions};

/// Whether the user exists and is not deactivated.
pub(crate) async fn ensure_active(db: &Db, user_id: &UserId) -> Result<(), RemoteError> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT deactivated FROM userapi_accounts WHERE user_id = $1")
        .bind(user_id.as_str())
        .fetch_optional(db.pool())
        .await?;
    match row {
        None => Err(RemoteError::new(RemoteErrorKind::NotFound, "No such user")),
        Some((0,)) => Ok(()),
        Some(_) => Err(RemoteError::new(RemoteErrorKind::UserDeactivated, "The account is deactivated")),
    }
}

pub(crate) async fn exists(db: &Db, user_id: &UserId) -> Result<bool, RemoteError> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM userapi_accounts WHERE user_id = $1")
        .bind(user_id.as_str())
        .fetch_optional(db.pool())
        .await?;
    Ok(row.is_some())
}

pub(crate) async fn check_registration(state: State, request: CheckRegistrationRequest) -> Result<(), RemoteError> {
    if let Some(localpart) = &request.localpart {
        let user_id = credentials::new_user_id(localpart, &state.config.global.server_name)?;
        if exists(&state.db, &user_id).await? {
            return Err(RemoteError::new(RemoteErrorKind::UserInUse, "The username is taken"));
        }
    }
    if let Some(password) = &request.password {
        credentials::check_policy(password, &state.config.userapi.password_policy)?;
    }
    Ok(())
}

pub(crate) async fn create_account(state: State, request: CreateAccountRequest) -> Result<CreatedAccount, RemoteError> {
    create(&state.db, &state.config, request).await
}

/// `homeserver create-account`: the same as registering, straight into the
/// database, so that it works whether or not the server is running.
pub async fn create_account_offline(
    config: &Config,
    localpart: &str,
    password: &str,
    admin: bool,
) -> anyhow::Result<Result<OwnedUserId, RemoteError>> {
    let url = config.component_database("userapi").ok_or_else(|| anyhow::anyhow!("userapi has no database"))?;
    let db = Db::connect(url).await?;
    db.migrate("userapi", crate::MIGRATIONS as &[Migration]).await?;
    let request = CreateAccountRequest {
        localpart: Some(localpart.to_owned()),
        password: Some(password.to_owned()),
        guest: false,
        admin,
        display_name: None,
        session: None,
    };
    Ok(create(&db, config, request).await.map(|created| created.user_id))
}

async fn create(db: &Db, config: &Config, request: CreateAccountRequest) -> Result<CreatedAccount, RemoteError> {
    let server_name = &config.global.server_name;
    let user_id = match (&request.localpart, request.guest) {
        (Some(localpart), false) => credentials::new_user_id(localpart, server_name)?,
        // Guests get numeric ids, which registration refuses to others.
        (_, true) => UserId::parse(format!("@{}:{server_name}", rand::random_range(1_000_000_000u64..u64::MAX / 2)))
            .map_err(anyhow::Error::from)?,
        (None, false) => UserId::parse(format!("@u{}:{server_name}", common::auth::random_id(12).to_lowercase()))
            .map_err(anyhow::Error::from)?,
    };
    let password_hash = match &request.password {
        Some(password) => {
            credentials::check_policy(password, &config.userapi.password_policy)?;
            Some(credentials::hash(password.clone(), &config.userapi.password_hashing).await?)
        }
        None => None,
    };
    let mut tx = db.begin_read_write().await?;
    let inserted = sqlx::query(
        "INSERT INTO userapi_accounts (user_id, password_hash, is_guest, is_admin, deactivated, created_ts)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(user_id.as_str())
    .bind(&password_hash)
    .bind(i64::from(request.guest))
    .bind(i64::from(request.admin))
    .bind(0i64)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(RemoteError::new(RemoteErrorKind::UserInUse, "The username is taken"));
    }
    let display_name = request.display_name.clone().unwrap_or_else(|| user_id.localpart().to_owned());
    profiles::insert_initial(&mut tx, &user_id, &display_name).await?;
    let session = match &request.session {
        Some(new) => Some(sessions::log_in(&mut tx, &user_id, new, &config.userapi).await?.0),
        None => None,
    };
    tx.commit().await?;
    Ok(CreatedAccount { user_id, session })
}

pub(crate) async fn upgrade_guest(state: State, request: UpgradeGuestRequest) -> Result<CreatedAccount, RemoteError> {
    let config = &state.config.userapi;
    credentials::check_policy(&request.password, &config.password_policy)?;
    let hash = credentials::hash(request.password, &config.password_hashing).await?;
    let mut tx = state.db.begin_read_write().await?;
    let upgraded = sqlx::query(
        "UPDATE userapi_accounts SET password_hash = $1, is_guest = 0 WHERE user_id = $2 AND is_guest = 1 AND deactivated = 0",
    )
    .bind(&hash)
    .bind(request.user_id.as_str())
    .execute(&mut *tx)
    .await?;
    if upgraded.rows_affected() == 0 {
        return Err(RemoteError::new(RemoteErrorKind::Forbidden, "This is not a guest account"));
    }
    // The guest's own tokens stay valid, but caches hold them as a guest's.
    let cached: Vec<(String,)> = sqlx::query_as("SELECT access_token_hash FROM userapi_devices WHERE user_id = $1")
        .bind(request.user_id.as_str())
        .fetch_all(&mut *tx)
        .await?;
    let session = match &request.session {
        Some(new) => Some(sessions::log_in(&mut tx, &request.user_id, new, config).await?.0),
        None => None,
    };
    tx.commit().await?;
    sessions::announce_revoked(&state.bus, cached.into_iter().map(|(h,)| h).collect()).await;
    Ok(CreatedAccount { user_id: request.user_id, session })
}

pub(crate) async fn authenticate(state: State, request: AuthenticateRequest) -> Result<Authenticated, RemoteError> {
    let forbidden = || RemoteError::new(RemoteErrorKind::Forbidden, "Invalid username or password");
    let user_id = credentials::login_user_id(&request.user, &state.config.global.server_name);
    let row: Option<(Option<String>, i64)> = match &user_id {
        Some(user_id) => {
            sqlx::query_as("SELECT password_hash, deactivated FROM userapi_accounts WHERE user_id = $1")
                .bind(user_id.as_str())
                .fetch_optional(state.db.pool())
                .await?
        }
        None => None,
    };
    if row.as_ref().is_some_and(|(_, deactivated)| *deactivated != 0) {
        return Err(RemoteError::new(RemoteErrorKind::UserDeactivated, "The account is deactivated"));
    }
    let stored = row.and_then(|(hash, _)| hash);
    let matches = credentials::verify(request.password, stored, &state.config.userapi.password_hashing).await?;
    match (matches, user_id) {
        (true, Some(user_id)) => Ok(Authenticated { user_id }),
        _ => Err(forbidden()),
    }
}

pub(crate) async fn set_password(state: State, request: SetPasswordRequest) -> Result<(), RemoteError> {
    credentials::check_policy(&request.password, &state.config.userapi.password_policy)?;
    ensure_active(&state.db, &request.user_id).await?;
    let hash = credentials::hash(request.password, &state.config.userapi.password_hashing).await?;
    let mut tx = state.db.begin_read_write().await?;
    sqlx::query("UPDATE userapi_accounts SET password_hash = $1 WHERE user_id = $2")
        .bind(&hash)
        .bind(request.user_id.as_str())
        .execute(&mut *tx)
        .await?;
    let revoked = if request.logout_devices {
        let selection = DeviceSelection::All { except: request.except_device };
        sessions::delete_devices_in(&mut tx, &request.user_id, &selection).await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    sessions::announce_revoked(&state.bus, revoked).await;
    Ok(())
}

pub(crate) async fn deactivate(state: State, request: DeactivateRequest) -> Result<(), RemoteError> {
    let mut tx = state.db.begin_read_write().await?;
    sqlx::query("UPDATE userapi_accounts SET deactivated = $1, password_hash = NULL WHERE user_id = $2")
        .bind(1i64)
        .bind(request.user_id.as_str())
        .execute(&mut *tx)
        .await?;
    let revoked =
        sessions::delete_devices_in(&mut tx, &request.user_id, &DeviceSelection::All { except: None }).await?;
    // A pusher whose device is already gone must not outlive the account either.
    crate::pushers::delete_all(&mut tx, &request.user_id).await?;
    sqlx::query("DELETE FROM userapi_login_tokens WHERE user_id = $1")
        .bind(request.user_id.as_str())
        .execute(&mut *tx)
        .await?;
    if request.erase {
        profiles::erase(&mut tx, &state.outbox, &request.user_id).await?;
    }
    tx.commit().await?;
    sessions::announce_revoked(&state.bus, revoked).await;
    crate::publish_now(&state.outbox).await;
    Ok(())
}
