//! `POST /rooms/{roomId}/kick`.

use std::sync::Arc;

use axum::extract::State;
use common::http::{MatrixError, RumaResponse};
use ruma::api::client::membership::kick_user;

use crate::{
    App,
    membership::{self, NamingUser},
};

pub async fn kick_user(
    State(app): State<Arc<App>>,
    NamingUser(request): NamingUser<kick_user::v3::Request>,
) -> Result<RumaResponse<kick_user::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    membership::kick(&app, &user.user_id, &body.room_id, &body.user_id, body.reason.clone()).await?;
    Ok(RumaResponse(kick_user::v3::Response::new()))
}
