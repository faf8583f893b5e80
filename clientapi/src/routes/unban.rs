//! `POST /rooms/{roomId}/unban`.

use std::sync::Arc;

use axum::extract::State;
use common::http::{MatrixError, RumaResponse};
use ruma::api::client::membership::unban_user;

use crate::{
    App,
    membership::{self, NamingUser},
};

pub async fn unban_user(
    State(app): State<Arc<App>>,
    NamingUser(request): NamingUser<unban_user::v3::Request>,
) -> Result<RumaResponse<unban_user::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let body = &request.body;
    membership::unban(&app, &user.user_id, &body.room_id, &body.user_id, body.reason.clone()).await?;
    Ok(RumaResponse(unban_user::v3::Response::new()))
}
