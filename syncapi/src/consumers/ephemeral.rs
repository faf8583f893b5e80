//! Receipts and typing notifications, from clientapi (and later federation).

use std::sync::Arc;

use common::{
    api::syncapi::{OutputReceiptEvent, OutputTypingEvent},
    bus::HandlerError,
};

use crate::{
    App,
    storage::{Kind, MAIN_THREAD},
};

pub async fn receipt(app: Arc<App>, msg: OutputReceiptEvent) -> Result<(), HandlerError> {
    let mut tx = app.store.db.begin_write().await.map_err(anyhow::Error::from)?;
    let pos = app.store.next_position(&mut tx, Kind::Receipts).await?;
    // Unthreaded receipts and those for the "main" thread are different receipts.
    let thread = msg.thread_id.as_deref().unwrap_or(MAIN_THREAD);
    let changed = app
        .store
        .upsert_receipt(
            &mut tx,
            pos,
            msg.room_id.as_str(),
            msg.user_id.as_str(),
            &msg.receipt_type,
            thread,
            msg.event_id.as_str(),
            msg.ts as i64,
        )
        .await?;
    if !changed {
        return Ok(());
    }
    tx.commit().await.map_err(anyhow::Error::from)?;
    let members = app.store.members(msg.room_id.as_str(), "join").await?;
    app.wake_local(members).await;
    Ok(())
}

pub async fn typing(app: Arc<App>, msg: OutputTypingEvent) -> Result<(), HandlerError> {
    let mut tx = app.store.db.begin_write().await.map_err(anyhow::Error::from)?;
    let pos = app.store.next_position(&mut tx, Kind::Typing).await?;
    let expires = msg.typing.then_some(msg.expires_ts as i64);
    app.store.set_typing(&mut tx, pos, msg.room_id.as_str(), msg.user_id.as_str(), expires).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    let members = app.store.members(msg.room_id.as_str(), "join").await?;
    app.wake_local(members).await;
    Ok(())
}

/// Typing that lapses without a "stopped" message still stops: once a second
/// the lapsed entries are ended, and the rooms' members woken.
pub async fn expire_typing(app: Arc<App>) -> anyhow::Result<()> {
    let shutdown = app.rt.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
        match app.store.expire_typing(common::storage::now_ms()).await {
            Ok(rooms) => {
                for room in rooms {
                    match app.store.members(&room, "join").await {
                        Ok(members) => app.wake_local(members).await,
                        Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot wake after typing lapsed"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot end lapsed typing"),
        }
    }
}
