//! `PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}`: takes a knock
//! the asking server signed and answers the stripped state a knocker sees.

use axum::extract::State;
use common::{
    api::roomserver::{QueryCurrentState, QueryCurrentStateRequest, StateFilter},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::api::federation::membership::{
    RawStrippedState,
    create_knock_event::v1::{Request, Response},
};

use crate::{App, membership};

pub async fn send_knock(State(app): State<App>, request: Ruma<Request>) -> Result<RumaResponse<Response>, MatrixError> {
    let origin = request.origin()?;
    let body = &request.body;
    membership::accept(&app, &body.room_id, &body.event_id, &body.pdu, origin, "knock").await?;
    let filter = common::pdu::STRIPPED_STATE_TYPES
        .iter()
        .map(|kind| StateFilter { event_type: (*kind).into(), state_key: Some(String::new()) })
        .collect();
    let request = QueryCurrentStateRequest { room_id: body.room_id.clone(), filter: Some(filter) };
    let state = app.rt.bus.call::<QueryCurrentState>(&request).await?.state;
    // Full PDUs, as the spec asks since v1.16: the knocker can check them.
    let stripped = state.into_iter().map(|event| RawStrippedState::Pdu(event.event)).collect();
    Ok(RumaResponse(Response::new(stripped)))
}
