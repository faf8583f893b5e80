//! `GET`/`PUT /user/{userId}/account_data/{type}` and
//! `GET`/`PUT /user/{userId}/rooms/{roomId}/account_data/{type}`.

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::userapi::{QueryAccountData, QueryAccountDataRequest, SetAccountData, SetAccountDataRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use http::StatusCode;
use ruma::{
    OwnedRoomId, UserId,
    api::client::config::{
        get_global_account_data, get_room_account_data, set_global_account_data, set_room_account_data,
    },
    serde::Raw,
};
use serde_json::value::RawValue;

use crate::{App, own_account};

/// Account data the server keeps itself; clients change it through other endpoints.
const SERVER_MANAGED: &[&str] = &["m.fully_read", "m.push_rules"];

async fn get(
    app: &App,
    user_id: &UserId,
    room_id: Option<OwnedRoomId>,
    data_type: String,
) -> Result<Box<RawValue>, MatrixError> {
    let request = QueryAccountDataRequest { user_id: user_id.to_owned(), room_id, data_type };
    Ok(app.rt.bus.call::<QueryAccountData>(&request).await?)
}

async fn set(
    app: &App,
    user_id: &UserId,
    room_id: Option<OwnedRoomId>,
    data_type: String,
    content: Box<RawValue>,
) -> Result<(), MatrixError> {
    if SERVER_MANAGED.contains(&data_type.as_str()) {
        return Err(MatrixError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ruma::api::error::ErrorKind::BadJson,
            format!("{data_type} is managed by the server and cannot be set here"),
        ));
    }
    if !content.get().trim_start().starts_with('{') {
        return Err(MatrixError::bad_json("Account data must be a JSON object"));
    }
    let request = SetAccountDataRequest { user_id: user_id.to_owned(), room_id, data_type, content };
    app.rt.bus.call::<SetAccountData>(&request).await?;
    Ok(())
}

pub async fn get_global(
    State(app): State<Arc<App>>,
    request: Ruma<get_global_account_data::v3::Request>,
) -> Result<RumaResponse<get_global_account_data::v3::Response>, MatrixError> {
    own_account(request.user.as_ref(), &request.body.user_id)?;
    let content = get(&app, &request.body.user_id, None, request.body.event_type.to_string()).await?;
    Ok(RumaResponse(get_global_account_data::v3::Response::new(Raw::from_json(content))))
}

pub async fn set_global(
    State(app): State<Arc<App>>,
    request: Ruma<set_global_account_data::v3::Request>,
) -> Result<RumaResponse<set_global_account_data::v3::Response>, MatrixError> {
    own_account(request.user.as_ref(), &request.body.user_id)?;
    let content = request.body.data.json().to_owned();
    set(&app, &request.body.user_id, None, request.body.event_type.to_string(), content).await?;
    Ok(RumaResponse(set_global_account_data::v3::Response::new()))
}

pub async fn get_room(
    State(app): State<Arc<App>>,
    request: Ruma<get_room_account_data::v3::Request>,
) -> Result<RumaResponse<get_room_account_data::v3::Response>, MatrixError> {
    own_account(request.user.as_ref(), &request.body.user_id)?;
    let room = Some(request.body.room_id.clone());
    let content = get(&app, &request.body.user_id, room, request.body.event_type.to_string()).await?;
    Ok(RumaResponse(get_room_account_data::v3::Response::new(Raw::from_json(content))))
}

pub async fn set_room(
    State(app): State<Arc<App>>,
    request: Ruma<set_room_account_data::v3::Request>,
) -> Result<RumaResponse<set_room_account_data::v3::Response>, MatrixError> {
    own_account(request.user.as_ref(), &request.body.user_id)?;
    let content = request.body.data.json().to_owned();
    let room = Some(request.body.room_id.clone());
    set(&app, &request.body.user_id, room, request.body.event_type.to_string(), content).await?;
    Ok(RumaResponse(set_room_account_data::v3::Response::new()))
}
