//! `PUT /rooms/{roomId}/typing/{userId}`: typing notifications, published on
//! `OutputTypingEvent` for syncapi (and federation) to pass on.

use std::{sync::Arc, time::Duration};

use axum::extract::State;
use common::{
    api::syncapi::OutputTypingEvent,
    http::{MatrixError, Ruma, RumaResponse},
    storage::now_ms,
};
use ruma::api::client::typing::create_typing_event::{self, v3::Typing};

use crate::{App, own_account, room_access};

/// The longest a client may claim to keep typing without saying so again.
const MAX_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn create_typing_event(
    State(app): State<Arc<App>>,
    request: Ruma<create_typing_event::v3::Request>,
) -> Result<RumaResponse<create_typing_event::v3::Response>, MatrixError> {
    let create_typing_event::v3::Request { room_id, user_id, state, .. } = request.body;
    own_account(request.user.as_ref(), &user_id)?;
    room_access::require_joined(&app, &room_id, &user_id).await?;
    let now = u64::try_from(now_ms()).unwrap_or_default();
    let (typing, expires_ts) = match state {
        Typing::Yes(info) => (true, now + info.timeout.min(MAX_TIMEOUT).as_millis() as u64),
        Typing::No => (false, now),
    };
    app.rt.bus.publish(&OutputTypingEvent { room_id, user_id, typing, expires_ts }).await?;
    Ok(RumaResponse(create_typing_event::v3::Response::new()))
}
