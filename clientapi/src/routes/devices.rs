//! `GET /devices`, `GET`/`PUT`/`DELETE /devices/{deviceId}`, `POST /delete_devices`.

use std::sync::Arc;

use axum::{Json, extract::State};
use common::{
    api::userapi::{
        self as api, DeleteDevices, DeleteDevicesRequest, DeviceSelection, QueryDevices, QueryDevicesRequest,
        UpdateDevice, UpdateDeviceRequest,
    },
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::api::client::device::{delete_device, delete_devices, get_device, get_devices, update_device};
use serde_json::{Value, json};

use crate::{
    App,
    uia::{self, Operation, UiaError},
};

/// What is unknown is left out, as the spec's schema says; ruma's `Device`
/// would write a null name.
fn to_device(d: api::Device) -> Value {
    let mut device = json!({ "device_id": d.device_id });
    if let Some(name) = d.display_name {
        device["display_name"] = json!(name);
    }
    if let Some(ip) = d.last_seen_ip {
        device["last_seen_ip"] = json!(ip);
    }
    if let Some(ts) = d.last_seen_ts {
        device["last_seen_ts"] = json!(ts);
    }
    device
}

async fn devices_of(app: &App, user_id: &ruma::UserId) -> Result<Vec<api::Device>, MatrixError> {
    Ok(app.rt.bus.call::<QueryDevices>(&QueryDevicesRequest { user_id: user_id.to_owned() }).await?)
}

pub async fn get_devices(
    State(app): State<Arc<App>>,
    request: Ruma<get_devices::v3::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    let devices: Vec<Value> = devices_of(&app, &user.user_id).await?.into_iter().map(to_device).collect();
    Ok(Json(json!({ "devices": devices })))
}

pub async fn get_device(
    State(app): State<Arc<App>>,
    request: Ruma<get_device::v3::Request>,
) -> Result<Json<Value>, MatrixError> {
    let user = request.require_user()?;
    let device = devices_of(&app, &user.user_id)
        .await?
        .into_iter()
        .find(|d| d.device_id == request.body.device_id)
        .ok_or_else(|| MatrixError::not_found("No such device"))?;
    Ok(Json(to_device(device)))
}

pub async fn update_device(
    State(app): State<Arc<App>>,
    request: Ruma<update_device::v3::Request>,
) -> Result<RumaResponse<update_device::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let update = UpdateDeviceRequest {
        user_id: user.user_id.clone(),
        device_id: request.body.device_id.clone(),
        display_name: request.body.display_name.clone(),
    };
    app.rt.bus.call::<UpdateDevice>(&update).await?;
    Ok(RumaResponse(update_device::v3::Response::new()))
}

pub async fn delete_device(
    State(app): State<Arc<App>>,
    request: Ruma<delete_device::v3::Request>,
) -> Result<RumaResponse<delete_device::v3::Response>, UiaError> {
    let user = request.require_user()?;
    let auth = request.body.auth.as_ref();
    let operation = Operation::delete_devices([&*request.body.device_id]);
    uia::authenticate(&app, &operation, &uia::password_flows(), auth, Some(&user.user_id)).await?;
    let devices = DeviceSelection::Only(vec![request.body.device_id.clone()]);
    app.rt.bus.call::<DeleteDevices>(&DeleteDevicesRequest { user_id: user.user_id.clone(), devices }).await?;
    Ok(RumaResponse(delete_device::v3::Response::new()))
}

pub async fn delete_devices(
    State(app): State<Arc<App>>,
    request: Ruma<delete_devices::v3::Request>,
) -> Result<RumaResponse<delete_devices::v3::Response>, UiaError> {
    let user = request.require_user()?;
    let auth = request.body.auth.as_ref();
    let operation = Operation::delete_devices(request.body.devices.iter().map(|d| &**d));
    uia::authenticate(&app, &operation, &uia::password_flows(), auth, Some(&user.user_id)).await?;
    let devices = DeviceSelection::Only(request.body.devices.clone());
    app.rt.bus.call::<DeleteDevices>(&DeleteDevicesRequest { user_id: user.user_id.clone(), devices }).await?;
    Ok(RumaResponse(delete_devices::v3::Response::new()))
}
