//! `OutputClientData`: which of a user's account data changed.

use std::sync::Arc;

use common::{api::userapi::OutputClientData, bus::HandlerError};

use crate::{App, storage::Kind};

pub async fn handle(app: Arc<App>, msg: OutputClientData) -> Result<(), HandlerError> {
    let mut tx = app.store.db.begin_write().await.map_err(anyhow::Error::from)?;
    let pos = app.store.next_position(&mut tx, Kind::AccountData).await?;
    let room = msg.room_id.as_ref().map(|r| r.as_str()).unwrap_or_default();
    app.store.account_data_changed(&mut tx, pos, msg.user_id.as_str(), room, &msg.data_type).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    app.wake_local(vec![msg.user_id.to_string()]).await;
    Ok(())
}
