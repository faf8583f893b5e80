//! `GET /capabilities`.

use std::sync::Arc;

use axum::{Json, extract::State};
use common::{
    api::roomserver::SUPPORTED_ROOM_VERSIONS,
    http::{MatrixError, Ruma},
};
use ruma::api::client::discovery::get_capabilities;
use serde_json::{Map, Value, json};

use crate::App;

pub async fn get_capabilities(
    State(app): State<Arc<App>>,
    _: Ruma<get_capabilities::v3::Request>,
) -> Result<Json<Value>, MatrixError> {
    let available: Map<String, Value> =
        SUPPORTED_ROOM_VERSIONS.iter().map(|v| ((*v).to_owned(), json!("stable"))).collect();
    Ok(Json(json!({
        "capabilities": {
            "m.change_password": {"enabled": true},
            "m.room_versions": {
                "default": app.rt.config.roomserver.default_room_version,
                "available": available,
            },
            "m.set_displayname": {"enabled": true},
            "m.set_avatar_url": {"enabled": true},
            "m.3pid_changes": {"enabled": false},
            "m.get_login_token": {"enabled": true},
            "m.profile_fields": {"enabled": true},
        }
    })))
}
