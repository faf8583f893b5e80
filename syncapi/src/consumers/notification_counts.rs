//! `OutputNotificationData`: a user's unread counts in a room, for /sync.

use std::sync::Arc;

use common::{api::userapi::OutputNotificationData, bus::HandlerError};

use crate::{
    App,
    storage::{Counts, Kind},
};

pub async fn handle(app: Arc<App>, msg: OutputNotificationData) -> Result<(), HandlerError> {
    let counts = Counts {
        notification_count: msg.notification_count as i64,
        highlight_count: msg.highlight_count as i64,
        threads: serde_json::to_string(&msg.threads).map_err(anyhow::Error::from)?,
    };
    let mut tx = app.store.db.begin_write().await.map_err(anyhow::Error::from)?;
    let pos = app.store.next_position(&mut tx, Kind::Notifications).await?;
    let user = msg.user_id.as_str();
    if !app.store.set_notification_counts(&mut tx, pos, user, msg.room_id.as_str(), &counts, msg.stream_pos).await? {
        // Older than what is stored: a redelivery.
        return Ok(());
    }
    tx.commit().await.map_err(anyhow::Error::from)?;
    app.wake_local(vec![user.to_owned()]).await;
    Ok(())
}
