//! `POST /rooms/{roomId}/invite`, by user id. Invites by third-party id
//! need an identity server, which this server does not use.

use std::sync::Arc;

use axum::extract::State;
use common::http::{MatrixError, RumaResponse};
use http::StatusCode;
use ruma::api::{
    client::membership::invite_user::{self, v3::InvitationRecipient},
    error::ErrorKind,
};

use crate::{
    App,
    membership::{self, NamingUser},
};

pub async fn invite_user(
    State(app): State<Arc<App>>,
    NamingUser(request): NamingUser<invite_user::v3::Request>,
) -> Result<RumaResponse<invite_user::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let InvitationRecipient::UserId(recipient) = &request.body.recipient else {
        return Err(MatrixError::new(
            StatusCode::FORBIDDEN,
            ErrorKind::ThreepidDenied,
            "Invites by third-party identifier are not supported",
        ));
    };
    let room_id = &request.body.room_id;
    membership::invite(&app, &user.user_id, room_id, &recipient.user_id, recipient.reason.clone()).await?;
    Ok(RumaResponse(invite_user::v3::Response::new()))
}
