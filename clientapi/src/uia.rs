//! User-interactive authentication. Sessions live in `clientapi_uia_sessions`
//! so that a client may send each stage to a different clientapi instance.

use std::collections::BTreeSet;

use axum::response::{IntoResponse, Response};
use common::{
    api::userapi::{Authenticate, AuthenticateRequest},
    auth::random_id,
    bus::{RemoteErrorKind, RpcError},
    http::MatrixError,
    storage::now_ms,
};
use http::StatusCode;
use ruma::{
    DeviceId, UserId,
    api::client::uiaa::{AuthData, AuthType, UserIdentifier},
};
use serde_json::{Value, json};

use crate::App;

/// How long a client has to finish the stages.
const SESSION_LIFETIME_MS: i64 = 30 * 60 * 1000;

/// Why a request needing UIA is not going ahead: the 401 that tells the
/// client what to do next, or a plain error.
pub enum UiaError {
    Challenge(Value),
    Matrix(MatrixError),
}

impl IntoResponse for UiaError {
    fn into_response(self) -> Response {
        match self {
            UiaError::Challenge(body) => (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response(),
            UiaError::Matrix(e) => e.into_response(),
        }
    }
}

impl From<MatrixError> for UiaError {
    fn from(e: MatrixError) -> Self {
        UiaError::Matrix(e)
    }
}

impl From<RpcError> for UiaError {
    fn from(e: RpcError) -> Self {
        UiaError::Matrix(e.into())
    }
}

impl From<anyhow::Error> for UiaError {
    fn from(e: anyhow::Error) -> Self {
        UiaError::Matrix(e.into())
    }
}

impl From<sqlx::Error> for UiaError {
    fn from(e: sqlx::Error) -> Self {
        UiaError::Matrix(anyhow::Error::from(e).into())
    }
}

/// What is being authorised: the kind of request and the body's fields that
/// decide what it does. A session started for one operation completes that
/// operation only, so a password typed to delete device A cannot delete B.
pub struct Operation {
    kind: &'static str,
    /// The meaningful fields, canonically encoded.
    detail: String,
}

impl Operation {
    pub fn register() -> Self {
        Self { kind: "register", detail: String::new() }
    }

    /// The new password itself is not bound: it would have to be stored, and
    /// the password stage completes the change at once.
    pub fn change_password(logout_devices: bool) -> Self {
        Self { kind: "change_password", detail: json!([logout_devices]).to_string() }
    }

    pub fn deactivate(erase: bool) -> Self {
        Self { kind: "deactivate", detail: json!([erase]).to_string() }
    }

    /// Deleting the same devices in any order, through either endpoint, is one operation.
    pub fn delete_devices<'a>(devices: impl IntoIterator<Item = &'a DeviceId>) -> Self {
        let devices: BTreeSet<&str> = devices.into_iter().map(DeviceId::as_str).collect();
        Self { kind: "delete_devices", detail: json!(devices).to_string() }
    }

    pub fn login_token() -> Self {
        Self { kind: "login_token", detail: String::new() }
    }
}

/// The password stage alone: what every endpoint acting on an existing account asks.
pub fn password_flows() -> Vec<Vec<AuthType>> {
    vec![vec![AuthType::Password]]
}

struct Session {
    id: String,
    completed: Vec<String>,
}

/// Returns once `auth` completes one of `flows`; until then, the 401 that
/// says what is left. `user` is who must authenticate (the token's owner),
/// `None` for registration.
pub async fn authenticate(
    app: &App,
    operation: &Operation,
    flows: &[Vec<AuthType>],
    auth: Option<&AuthData>,
    user: Option<&UserId>,
) -> Result<(), UiaError> {
    let Some(auth) = auth else {
        let session = new_session(app, operation, user).await?;
        return Err(challenge(flows, &session, None));
    };
    let mut session = match auth.session() {
        Some(id) => load_session(app, operation, user, id).await?,
        None => new_session(app, operation, user).await?,
    };
    let stage = auth.auth_type();
    let offered = stage.as_ref().is_some_and(|s| flows.iter().any(|flow| flow.contains(s)));
    if !offered {
        let error = MatrixError::forbidden("This authentication stage is not offered here");
        return Err(challenge(flows, &session, Some(error)));
    }
    if let Err(error) = check_stage(app, auth, user).await? {
        return Err(challenge(flows, &session, Some(error)));
    }
    let stage = stage.expect("offered stages have a type").to_string();
    if !session.completed.contains(&stage) {
        session.completed.push(stage);
    }
    let done = flows.iter().any(|flow| flow.iter().all(|s| session.completed.contains(&s.to_string())));
    if done {
        sqlx::query("DELETE FROM clientapi_uia_sessions WHERE session_id = $1")
            .bind(&session.id)
            .execute(app.db.pool())
            .await?;
        return Ok(());
    }
    sqlx::query("UPDATE clientapi_uia_sessions SET completed = $1 WHERE session_id = $2")
        .bind(serde_json::to_string(&session.completed).map_err(anyhow::Error::from)?)
        .bind(&session.id)
        .execute(app.db.pool())
        .await?;
    Err(challenge(flows, &session, None))
}

/// Checks one stage: `Ok(Err(..))` when the client got it wrong.
async fn check_stage(app: &App, auth: &AuthData, user: Option<&UserId>) -> Result<Result<(), MatrixError>, UiaError> {
    Ok(match auth {
        AuthData::Dummy(_) => Ok(()),
        AuthData::RegistrationToken(stage) => {
            if app.rt.config.clientapi.registration.tokens.iter().any(|t| t == &stage.token) {
                Ok(())
            } else {
                Err(MatrixError::forbidden("Invalid registration token"))
            }
        }
        AuthData::Password(stage) => {
            let UserIdentifier::Matrix(id) = &stage.identifier else {
                return Ok(Err(MatrixError::forbidden("Only user identifiers (m.id.user) are supported")));
            };
            app.check_login_rate(&id.user)?;
            let request = AuthenticateRequest { user: id.user.clone(), password: stage.password.clone() };
            match app.rt.bus.call::<Authenticate>(&request).await {
                Ok(found) if user.is_none_or(|u| u == found.user_id) => Ok(()),
                // Not a stage to try again: someone else's password never authorises this.
                Ok(_) => return Err(MatrixError::forbidden("These are another user's credentials").into()),
                Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::Forbidden => {
                    Err(MatrixError::forbidden("Invalid username or password"))
                }
                Err(e) => return Err(e.into()),
            }
        }
        _ => Err(MatrixError::forbidden("This authentication stage is not supported")),
    })
}

fn challenge(flows: &[Vec<AuthType>], session: &Session, error: Option<MatrixError>) -> UiaError {
    let flows: Vec<Value> =
        flows.iter().map(|flow| json!({"stages": flow.iter().map(|s| s.to_string()).collect::<Vec<_>>()})).collect();
    let mut body = json!({
        "flows": flows,
        "params": {},
        "session": session.id,
        "completed": session.completed,
    });
    if let Some(error) = error {
        let (errcode, message) = error.parts();
        body["errcode"] = json!(errcode);
        body["error"] = json!(message);
    }
    UiaError::Challenge(body)
}

async fn new_session(app: &App, operation: &Operation, user: Option<&UserId>) -> Result<Session, UiaError> {
    let now = now_ms();
    sqlx::query("DELETE FROM clientapi_uia_sessions WHERE created_ts < $1")
        .bind(now - SESSION_LIFETIME_MS)
        .execute(app.db.pool())
        .await?;
    let id = random_id(24);
    sqlx::query(
        "INSERT INTO clientapi_uia_sessions (session_id, purpose, detail, user_id, completed, created_ts)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(operation.kind)
    .bind(&operation.detail)
    .bind(user.map(|u| u.as_str()))
    .bind("[]")
    .bind(now)
    .execute(app.db.pool())
    .await?;
    Ok(Session { id, completed: Vec::new() })
}

/// The session named by the client, if it was started by the same user for
/// the same operation. A session for another operation is refused without
/// being touched, so it can still complete the operation it was made for.
async fn load_session(app: &App, operation: &Operation, user: Option<&UserId>, id: &str) -> Result<Session, UiaError> {
    let row: Option<(String, String, Option<String>, String, i64)> = sqlx::query_as(
        "SELECT purpose, detail, user_id, completed, created_ts FROM clientapi_uia_sessions WHERE session_id = $1",
    )
    .bind(id)
    .fetch_optional(app.db.pool())
    .await?;
    let Some((kind, detail, stored_user, completed, created_ts)) = row else {
        return Err(MatrixError::invalid_param("Unknown or expired authentication session").into());
    };
    if created_ts < now_ms() - SESSION_LIFETIME_MS {
        return Err(MatrixError::invalid_param("Unknown or expired authentication session").into());
    }
    if stored_user.as_deref() != user.map(|u| u.as_str()) {
        return Err(MatrixError::forbidden("This authentication session belongs to another user").into());
    }
    if kind != operation.kind || detail != operation.detail {
        return Err(
            MatrixError::forbidden("The requested operation has changed during the authentication session").into()
        );
    }
    let completed = serde_json::from_str(&completed).map_err(anyhow::Error::from)?;
    Ok(Session { id: id.to_owned(), completed })
}
