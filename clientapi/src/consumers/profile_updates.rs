//! `OutputProfileUpdate`: a user's new display name or avatar goes into their
//! member event in every room they are joined to. One durable consumer shared
//! by every clientapi instance, so that each update is handled once, in order.

use std::sync::Arc;

use common::{
    api::{
        roomserver::{QueryRoomsForUser, QueryRoomsForUserRequest},
        userapi::{OutputProfileUpdate, QueryProfile, QueryProfileRequest},
    },
    bus::{ConsumerSpec, HandlerError, RemoteErrorKind, RpcError, consume},
};
use serde_json::Value;

use crate::{App, membership};

pub fn start(app: &Arc<App>) {
    let spec = ConsumerSpec::ordered("clientapi_profile_updates");
    let (bus, shutdown) = (app.rt.bus.clone(), app.rt.shutdown.clone());
    let handler_app = app.clone();
    app.rt.spawn("clientapi profile updates", async move {
        consume(&bus, spec, shutdown, |update, _| handle(&handler_app, update)).await
    });
}

/// The rooms get the profile as it is now, not as the update says: a replay
/// of old updates (a new consumer reading the stream from its start) then
/// changes nothing, and rooms already showing it are skipped, so a
/// redelivered update only finishes what the first delivery left undone.
async fn handle(app: &App, update: OutputProfileUpdate) -> Result<(), HandlerError> {
    let user_id = &update.user_id;
    let profile = match app.rt.bus.call::<QueryProfile>(&QueryProfileRequest { user_id: user_id.clone() }).await {
        Ok(profile) => profile,
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(HandlerError::Retry(e.into())),
    };
    let text = |field: &str| profile.get(field).and_then(Value::as_str);
    let request = QueryRoomsForUserRequest { user_id: user_id.clone(), memberships: vec!["join".into()] };
    let rooms = app.rt.bus.call::<QueryRoomsForUser>(&request).await.map_err(anyhow::Error::from)?;
    let mut unfinished = 0;
    for room_id in rooms.room_ids {
        match membership::refresh_profile(app, user_id, &room_id, text("displayname"), text("avatar_url")).await {
            Ok(()) => {}
            // The room refuses the event (the user may no longer be
            // allowed to send it): trying again would not help.
            Err(e) if e.status().is_client_error() => {
                tracing::warn!(user = %user_id, room = %room_id, error = ?e, "cannot update a member event");
            }
            Err(e) => {
                tracing::warn!(user = %user_id, room = %room_id, error = ?e, "member event update failed; will retry");
                unfinished += 1;
            }
        }
    }
    if unfinished > 0 {
        return Err(HandlerError::Retry(anyhow::anyhow!("{unfinished} rooms still show an old profile")));
    }
    Ok(())
}
