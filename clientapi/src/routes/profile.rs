//! `GET /profile/{userId}` and `GET`/`PUT`/`DELETE /profile/{userId}/{keyName}`
//! (displayname, avatar_url, and the extended fields of spec v1.16).

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::userapi::{QueryProfile, QueryProfileRequest, SetProfileField, SetProfileFieldRequest, TokenOwner},
    federation,
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::{
    UserId,
    api::{
        client::profile::{delete_profile_field, get_profile, get_profile_field, set_profile_field},
        federation::query::get_profile_information,
    },
    profile::{ProfileFieldName, ProfileFieldValue},
};
use serde_json::{Map, Value};

use crate::{App, own_account};

/// A user's profile: ours from userapi, another server's users' from their
/// server (federation `query/profile`).
async fn profile_of(app: &App, user_id: &UserId) -> Result<Map<String, Value>, MatrixError> {
    if user_id.server_name() != app.rt.config.global.server_name {
        let ask = get_profile_information::v1::Request::new(user_id.to_owned());
        let profile = federation::request(&app.rt.bus, user_id.server_name(), ask).await?;
        return Ok(profile.iter().map(|(field, value)| (field.clone(), value.clone())).collect());
    }
    Ok(app.rt.bus.call::<QueryProfile>(&QueryProfileRequest { user_id: user_id.to_owned() }).await?)
}

pub async fn get_profile(
    State(app): State<Arc<App>>,
    request: Ruma<get_profile::v3::Request>,
) -> Result<RumaResponse<get_profile::v3::Response>, MatrixError> {
    let profile = profile_of(&app, &request.body.user_id).await?;
    Ok(RumaResponse(profile.into_iter().collect()))
}

pub async fn get_profile_field(
    State(app): State<Arc<App>>,
    request: Ruma<get_profile_field::v3::Request>,
) -> Result<RumaResponse<get_profile_field::v3::Response>, MatrixError> {
    let field = request.body.field.as_str();
    check_key(field)?;
    let value = profile_of(&app, &request.body.user_id)
        .await?
        .remove(field)
        .ok_or_else(|| MatrixError::not_found("The user has no such profile field"))?;
    let value = ProfileFieldValue::new(field, value).map_err(MatrixError::internal)?;
    let mut response = get_profile_field::v3::Response::default();
    response.value = Some(value);
    Ok(RumaResponse(response))
}

/// A key outside the spec's grammar (`avatar_url`, `displayname`, `m.tz`, or
/// a namespaced name such as `org.example.colour`) is refused, whatever the
/// method, so nothing is stored under a name no client can ask for.
fn check_key(key: &str) -> Result<(), MatrixError> {
    let segment = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let known = matches!(key, "avatar_url" | "displayname" | "m.tz");
    let namespaced = key.contains('.') && key.split('.').all(segment);
    if key.len() > MAX_KEY_BYTES || !(known || namespaced) {
        return Err(MatrixError::invalid_param(format!(
            "{key:?} is not a profile key: avatar_url, displayname, m.tz or a namespaced name like org.example.field"
        )));
    }
    Ok(())
}

/// Synapse's bound, so that a key never outgrows an index.
const MAX_KEY_BYTES: usize = 255;

/// Checks that the caller may change `user_id`'s `field`.
fn check_own(caller: Option<&TokenOwner>, user_id: &UserId, field: &ProfileFieldName) -> Result<(), MatrixError> {
    let user = own_account(caller, user_id)?;
    if user.is_guest && *field != ProfileFieldName::DisplayName {
        return Err(MatrixError::guest_access_forbidden());
    }
    Ok(())
}

async fn set(app: &App, user_id: &UserId, field: &ProfileFieldName, value: Option<Value>) -> Result<(), MatrixError> {
    let request = SetProfileFieldRequest { user_id: user_id.to_owned(), field: field.as_str().to_owned(), value };
    app.rt.bus.call::<SetProfileField>(&request).await?;
    Ok(())
}

pub async fn set_profile_field(
    State(app): State<Arc<App>>,
    request: Ruma<set_profile_field::v3::Request>,
) -> Result<RumaResponse<set_profile_field::v3::Response>, MatrixError> {
    let value = &request.body.value;
    let field = value.field_name();
    check_key(field.as_str())?;
    check_own(request.user.as_ref(), &request.body.user_id, &field)?;
    if let ProfileFieldValue::AvatarUrl(url) = value
        && !url.as_str().is_empty()
        && url.validate().is_err()
    {
        return Err(MatrixError::invalid_param("avatar_url must be an mxc:// URI"));
    }
    // An empty string clears the field, as clients use it.
    let value = match value.value().into_owned() {
        Value::String(s) if s.is_empty() => None,
        other => Some(other),
    };
    set(&app, &request.body.user_id, &field, value).await?;
    Ok(RumaResponse(set_profile_field::v3::Response::new()))
}

pub async fn delete_profile_field(
    State(app): State<Arc<App>>,
    request: Ruma<delete_profile_field::v3::Request>,
) -> Result<RumaResponse<delete_profile_field::v3::Response>, MatrixError> {
    let field = &request.body.field;
    check_key(field.as_str())?;
    check_own(request.user.as_ref(), &request.body.user_id, field)?;
    set(&app, &request.body.user_id, field, None).await?;
    Ok(RumaResponse(delete_profile_field::v3::Response::new()))
}
