//! `POST /refresh`: new tokens for a device that logged in with `refresh_token`.

use std::{sync::Arc, time::Duration};

use axum::extract::State;
use common::{
    api::userapi::{RefreshSession, RefreshSessionRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::api::client::session::refresh_token;

use crate::App;

pub async fn refresh(
    State(app): State<Arc<App>>,
    request: Ruma<refresh_token::v3::Request>,
) -> Result<RumaResponse<refresh_token::v3::Response>, MatrixError> {
    let refresh = RefreshSessionRequest { refresh_token: request.body.refresh_token };
    let session = app.rt.bus.call::<RefreshSession>(&refresh).await?;
    let mut response = refresh_token::v3::Response::new(session.access_token);
    response.refresh_token = session.refresh_token;
    response.expires_in_ms = session.expires_in_ms.map(Duration::from_millis);
    Ok(RumaResponse(response))
}
