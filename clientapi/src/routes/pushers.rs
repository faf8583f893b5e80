//! `GET /pushers` and `POST /pushers/set`; userapi keeps the pushers.

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::userapi::{QueryPushers, QueryPushersRequest, SetPusher, SetPusherRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use http::StatusCode;
use ruma::api::{
    client::push::{Pusher, get_pushers, set_pusher},
    error::ErrorKind,
};
use serde_json::{Map, Value};

use crate::App;

const NOTIFY_PATH: &str = "/_matrix/push/v1/notify";

pub async fn get_pushers(
    State(app): State<Arc<App>>,
    request: Ruma<get_pushers::v3::Request>,
) -> Result<RumaResponse<get_pushers::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let stored = app.rt.bus.call::<QueryPushers>(&QueryPushersRequest { user_id: user.user_id.clone() }).await?;
    let pushers = stored
        .into_iter()
        .map(serde_json::from_value::<Pusher>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(MatrixError::internal)?;
    Ok(RumaResponse(get_pushers::v3::Response::new(pushers)))
}

pub async fn set_pusher(
    State(app): State<Arc<App>>,
    request: Ruma<set_pusher::v3::Request>,
) -> Result<RumaResponse<set_pusher::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    // ruma has parsed the body; the checks below are the spec's, made on the
    // JSON as sent so that custom `data` keys reach the push gateway intact.
    let body: Map<String, Value> = serde_json::from_slice(&request.raw_body)
        .map_err(|_| MatrixError::not_json("Request body is not a JSON object"))?;
    validate(&body)?;
    let request = SetPusherRequest {
        user_id: user.user_id.clone(),
        device_id: user.device_id.clone(),
        pusher: Value::Object(body),
    };
    app.rt.bus.call::<SetPusher>(&request).await?;
    Ok(RumaResponse(set_pusher::v3::Response::new()))
}

fn missing(name: &str) -> MatrixError {
    MatrixError::new(StatusCode::BAD_REQUEST, ErrorKind::MissingParam, format!("Pusher field {name} is required"))
}

fn string<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, MatrixError> {
    match body.get(name) {
        None | Some(Value::Null) => Err(missing(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(MatrixError::bad_json(format!("Pusher field {name} must be a string"))),
    }
}

fn validate(body: &Map<String, Value>) -> Result<(), MatrixError> {
    let app_id = string(body, "app_id")?;
    if app_id.is_empty() || app_id.chars().count() > 64 {
        return Err(MatrixError::invalid_param("app_id must be 1 to 64 characters long"));
    }
    let pushkey = string(body, "pushkey")?;
    if pushkey.is_empty() || pushkey.len() > 512 {
        return Err(MatrixError::invalid_param("pushkey must be 1 to 512 bytes long"));
    }
    let kind = match body.get("kind") {
        None => return Err(missing("kind")),
        Some(Value::Null) => return Ok(()),
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(MatrixError::bad_json("kind must be a string or null")),
    };
    for name in ["app_display_name", "device_display_name", "lang"] {
        string(body, name)?;
    }
    match body.get("profile_tag") {
        None | Some(Value::String(_)) => {}
        Some(_) => return Err(MatrixError::bad_json("profile_tag must be a string")),
    }
    match body.get("append") {
        None | Some(Value::Bool(_)) => {}
        Some(_) => return Err(MatrixError::bad_json("append must be a boolean")),
    }
    let data = match body.get("data") {
        None | Some(Value::Null) => return Err(missing("data")),
        Some(Value::Object(data)) => data,
        Some(_) => return Err(MatrixError::bad_json("data must be an object")),
    };
    match kind {
        "http" => {
            let url = string(data, "url").map_err(|_| missing("data.url"))?;
            if !notify_url(url) {
                return Err(MatrixError::invalid_param(format!(
                    "data.url must be an http(s) URL with the path {NOTIFY_PATH}"
                )));
            }
            match data.get("format") {
                None | Some(Value::Null) => Ok(()),
                Some(Value::String(format)) if format == "event_id_only" => Ok(()),
                Some(_) => Err(MatrixError::invalid_param("data.format can only be event_id_only")),
            }
        }
        "email" => Err(MatrixError::invalid_param("This server sends no email: email pushers are not supported")),
        other => Err(MatrixError::invalid_param(format!("Unknown pusher kind {other}"))),
    }
}

/// Whether `url` is an absolute http(s) URL whose path is the push gateway's
/// notify endpoint. Plain http is accepted for gateways on private networks.
fn notify_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) else {
        return false;
    };
    let Some(slash) = rest.find('/') else {
        return false;
    };
    let (authority, path_and_more) = rest.split_at(slash);
    let path = path_and_more.split(['?', '#']).next().unwrap_or_default();
    !authority.is_empty() && !authority.contains(['?', '#', ' ']) && path == NOTIFY_PATH
}
