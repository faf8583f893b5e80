//! `OutputPresenceEvent`: wakes the syncs of those who see the user.

use std::sync::Arc;

use common::{api::syncapi::OutputPresenceEvent, bus::HandlerError};

use crate::App;

pub async fn handle(app: Arc<App>, msg: OutputPresenceEvent) -> Result<(), HandlerError> {
    let mut users = app.store.room_mates(&msg.user_id).await?;
    users.push(msg.user_id.to_string());
    app.wake_local(users).await;
    Ok(())
}
