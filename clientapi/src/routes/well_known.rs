//! `GET /.well-known/matrix/client` and `/.well-known/matrix/server`: served
//! only when the config names what to delegate to.

use std::sync::Arc;

use crate::App;
use axum::extract::State;
use common::http::{MatrixError, Ruma, RumaResponse};
use ruma::api::{
    client::discovery::discover_homeserver, federation::discovery::discover_homeserver as discover_server,
};

pub async fn client(
    State(app): State<Arc<App>>,
    _: Ruma<discover_homeserver::Request>,
) -> Result<RumaResponse<discover_homeserver::Response>, MatrixError> {
    let base_url = app
        .rt
        .config
        .global
        .public_base_url
        .clone()
        .ok_or_else(|| MatrixError::not_found("No client well-known is configured"))?;
    Ok(RumaResponse(discover_homeserver::Response::new(discover_homeserver::HomeserverInfo::new(base_url))))
}

pub async fn server(
    State(app): State<Arc<App>>,
    _: Ruma<discover_server::Request>,
) -> Result<RumaResponse<discover_server::Response>, MatrixError> {
    let delegated = app
        .rt
        .config
        .global
        .well_known_server
        .as_deref()
        .ok_or_else(|| MatrixError::not_found("No server well-known is configured"))?;
    let server = delegated.try_into().map_err(|_| MatrixError::internal("global.well_known_server is invalid"))?;
    Ok(RumaResponse(discover_server::Response::new(server)))
}
