//! `GET /_matrix/federation/v1/query/profile?user_id=&field=`: a local
//! user's profile, or one field of it.

use axum::extract::State;
use common::{
    api::userapi::{QueryProfile, QueryProfileRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::api::federation::query::get_profile_information::v1::{Request, Response};

use crate::App;

pub async fn query_profile(
    State(app): State<App>,
    request: Ruma<Request>,
) -> Result<RumaResponse<Response>, MatrixError> {
    let body = request.body;
    if body.user_id.server_name() != app.rt.config.global.server_name {
        return Err(MatrixError::invalid_param("The user is not on this server"));
    }
    let fields = app.rt.bus.call::<QueryProfile>(&QueryProfileRequest { user_id: body.user_id }).await?;
    let wanted = body.field.as_ref().map(|field| field.as_str().to_owned());
    let profile: ruma::profile::UserProfile = fields
        .into_iter()
        .filter(|(name, value)| !value.is_null() && wanted.as_ref().is_none_or(|wanted| wanted == name))
        .collect();
    Ok(RumaResponse(Response::from(profile)))
}
