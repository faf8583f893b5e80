//! `POST /logout` and `POST /logout/all`: the devices go, with their tokens.

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::userapi::{DeleteDevices, DeleteDevicesRequest, DeviceSelection},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::api::client::session::{logout, logout_all};

use crate::App;

pub async fn logout(
    State(app): State<Arc<App>>,
    request: Ruma<logout::v3::Request>,
) -> Result<RumaResponse<logout::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let devices = DeviceSelection::Only(vec![user.device_id.clone()]);
    app.rt.bus.call::<DeleteDevices>(&DeleteDevicesRequest { user_id: user.user_id.clone(), devices }).await?;
    Ok(RumaResponse(logout::v3::Response::new()))
}

pub async fn logout_all(
    State(app): State<Arc<App>>,
    request: Ruma<logout_all::v3::Request>,
) -> Result<RumaResponse<logout_all::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let devices = DeviceSelection::All { except: None };
    app.rt.bus.call::<DeleteDevices>(&DeleteDevicesRequest { user_id: user.user_id.clone(), devices }).await?;
    Ok(RumaResponse(logout_all::v3::Response::new()))
}
