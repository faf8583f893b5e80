//! `POST /rooms/{roomId}/ban`.

use std::sync::Arc;

use axum::extract::State;
use common::http::{MatrixError, RumaResponse};
use ruma::api::client::membership::ban_user;

use crate::{
    App,
    membership::{self, NamingUser},
};

pub async fn ban_user(
    State(app): State<Arc<App>>,
    NamingUser(request): NamingUser<ban_user::v3::Request>,
) -> Result<RumaResponse<ban_user::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    membership::ban(&app, &user.user_id, &body.room_id, &body.user_id, body.reason.clone()).await?;
    Ok(RumaResponse(ban_user::v3::Response::new()))
}
