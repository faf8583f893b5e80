//! `OutputSendToDeviceEvent`: messages for one device, or every device of a user.

use std::sync::Arc;

use common::{
    api::{
        syncapi::OutputSendToDeviceEvent,
        userapi::{QueryDevices, QueryDevicesRequest},
    },
    bus::HandlerError,
};

use crate::{App, storage::Kind};

pub async fn handle(app: Arc<App>, msg: OutputSendToDeviceEvent) -> Result<(), HandlerError> {
    let devices: Vec<String> = match &msg.device_id {
        Some(device) => vec![device.to_string()],
        None => {
            let request = QueryDevicesRequest { user_id: msg.user_id.clone() };
            let devices = app.rt.bus.call::<QueryDevices>(&request).await.map_err(anyhow::Error::from)?;
            devices.into_iter().map(|d| d.device_id.to_string()).collect()
        }
    };
    let mut tx = app.store.db.begin_write().await.map_err(anyhow::Error::from)?;
    for device in &devices {
        let pos = app.store.next_position(&mut tx, Kind::ToDevice).await?;
        app.store
            .insert_to_device(
                &mut tx,
                pos,
                msg.user_id.as_str(),
                device,
                msg.sender.as_str(),
                &msg.event_type,
                msg.content.get(),
                &msg.message_id,
            )
            .await?;
    }
    tx.commit().await.map_err(anyhow::Error::from)?;
    app.wake_local(vec![msg.user_id.to_string()]).await;
    Ok(())
}
