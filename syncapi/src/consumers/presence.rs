//! `OutputPresenceEvent`: wakes the syncs of those who see the user.

use std::sync::Arc;

use common::{api::syncapi::OutputPresenceEvent, bus::HandlerError};

use crate::App;

pub async fn handle(app: Arc<App>, msg: OutputPresenceEvent) -> Result<(), HandlerError> {
    let mut users = vec![msg.user_id.to_string()];
    for room in app.store.rooms_with_membership(&msg.user_id, "join").await? {
        users.extend(app.store.members(&room, "join").await?);
    }
    app.wake_local(users).await;
    Ok(())
}
