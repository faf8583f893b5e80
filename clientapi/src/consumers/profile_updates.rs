//! `OutputProfileUpdate`: a user's new display name or avatar goes into their
//! member event in every room they are joined to. One durable consumer shared
//! by every clientapi instance, so that each update is handled once, in order.

use std::sync::Arc;

use common::{
    api::{
        roomserver::{QueryRoomsForUser, QueryRoomsForUserRequest},
        userapi::OutputProfileUpdate,
    },
    bus::{ConsumerSpec, HandlerError, consume},
};

use crate::{App, membership};

pub fn start(app: &Arc<App>) {
    let spec = ConsumerSpec::ordered("clientapi_profile_updates");
    let (bus, shutdown) = (app.rt.bus.clone(), app.rt.shutdown.clone());
    let handler_app = app.clone();
    app.rt.spawn("clientapi profile updates", async move {
        consume(&bus, spec, shutdown, |update, _| handle(&handler_app, update)).await
    });
}

/// Rooms already showing the new profile are skipped, so a redelivered
/// update only finishes what the first delivery left undone.
async fn handle(app: &App, update: OutputProfileUpdate) -> Result<(), HandlerError> {
    let request = QueryRoomsForUserRequest { user_id: update.user_id.clone(), memberships: vec!["join".into()] };
    let rooms = app.rt.bus.call::<QueryRoomsForUser>(&request).await.map_err(anyhow::Error::from)?;
    let mut unfinished = 0;
    for room_id in rooms.room_ids {
        let refreshed = membership::refresh_profile(
            app,
            &update.user_id,
            &room_id,
            update.displayname.as_deref(),
            update.avatar_url.as_deref(),
        )
        .await;
        match refreshed {
            Ok(()) => {}
            // The room refuses the event (the user may no longer be
            // allowed to send it): trying again would not help.
            Err(e) if e.status().is_client_error() => {
                tracing::warn!(user = %update.user_id, room = %room_id, error = ?e, "cannot update a member event");
            }
            Err(e) => {
                tracing::warn!(user = %update.user_id, room = %room_id, error = ?e, "member event update failed; will retry");
                unfinished += 1;
            }
        }
    }
    if unfinished > 0 {
        return Err(HandlerError::Retry(anyhow::anyhow!("{unfinished} rooms still show the old profile")));
    }
    Ok(())
}
