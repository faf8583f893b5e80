//! `GET` and `PUT /presence/{userId}/status`.

use std::sync::Arc;

use axum::{Router, extract::State};
use common::{
    Runtime,
    api::userapi::{QueryProfile, QueryProfileRequest},
    http::{MatrixError, Ruma, RumaResponse, RumaRouter},
    storage::{Db, now_ms},
};
use ruma::{
    UserId,
    api::client::presence::{get_presence, set_presence},
    presence::PresenceState,
};

use super::{Presence, storage, store_and_publish};

/// The longest status message, in bytes. The spec sets none; this keeps
/// every presence event small.
const MAX_STATUS_MSG_BYTES: usize = 1024;

/// What the presence handlers work with.
pub struct PresenceApp {
    rt: Runtime,
    db: Db,
}

/// The presence endpoints, for syncapi's client router.
pub fn routes(rt: Runtime, db: Db) -> Router {
    Router::new()
        .ruma_guest::<get_presence::v3::Request, _, _>(get_status)
        .ruma_guest::<set_presence::v3::Request, _, _>(set_status)
        .with_state(Arc::new(PresenceApp { rt, db }))
}

/// 404 unless `user_id` is one of our accounts.
async fn require_local_user(app: &PresenceApp, user_id: &UserId) -> Result<(), MatrixError> {
    if user_id.server_name() != app.rt.config.global.server_name {
        // Remote presence arrives over federation, which comes later.
        return Err(MatrixError::not_found("Presence of other servers' users is not available yet"));
    }
    app.rt.bus.call::<QueryProfile>(&QueryProfileRequest { user_id: user_id.to_owned() }).await?;
    Ok(())
}

async fn get_status(
    State(app): State<Arc<PresenceApp>>,
    request: Ruma<get_presence::v3::Request>,
) -> Result<RumaResponse<get_presence::v3::Response>, MatrixError> {
    request.require_user()?;
    let user_id = &request.body.user_id;
    let Some(presence) = storage::get(&app.db, user_id).await? else {
        require_local_user(&app, user_id).await?;
        // An account that never said anything is offline.
        return Ok(RumaResponse(get_presence::v3::Response::new(PresenceState::Offline)));
    };
    let mut response = get_presence::v3::Response::new(presence.presence);
    response.status_msg = presence.status_msg;
    response.currently_active = Some(presence.currently_active);
    if presence.last_active_ts > 0 {
        let ago = (now_ms() - presence.last_active_ts).max(0) as u64;
        response.last_active_ago = Some(std::time::Duration::from_millis(ago));
    }
    Ok(RumaResponse(response))
}

async fn set_status(
    State(app): State<Arc<PresenceApp>>,
    request: Ruma<set_presence::v3::Request>,
) -> Result<RumaResponse<set_presence::v3::Response>, MatrixError> {
    let caller = request.require_user()?;
    let set_presence::v3::Request { user_id, presence, status_msg, .. } = request.body.clone();
    if caller.user_id != user_id {
        return Err(MatrixError::forbidden("You may only set your own presence"));
    }
    if !matches!(presence, PresenceState::Online | PresenceState::Offline | PresenceState::Unavailable) {
        return Err(MatrixError::invalid_param("presence must be online, offline or unavailable"));
    }
    if status_msg.as_ref().is_some_and(|msg| msg.len() > MAX_STATUS_MSG_BYTES) {
        return Err(MatrixError::invalid_param(format!("status_msg must be at most {MAX_STATUS_MSG_BYTES} bytes")));
    }
    let currently_active = presence == PresenceState::Online;
    let update = Presence { user_id, presence, status_msg, last_active_ts: now_ms(), currently_active, pos: 0 };
    store_and_publish(&app.db, &app.rt.bus, &update).await?;
    Ok(RumaResponse(set_presence::v3::Response::new()))
}
