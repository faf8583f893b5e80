//! Who may do what in a room, from its current power levels and creators.

use common::api::roomserver::{QueryCurrentState, QueryCurrentStateRequest, StateFilter};
use ruma::{
    OwnedUserId, RoomId,
    events::{StateEventType, room::power_levels::RoomPowerLevels},
};

use super::{MatrixError, parse_stored, version_rules};
use crate::App;

/// The room's current power levels, and its creators (who have unlimited
/// power from room version 12).
pub(crate) async fn power_levels(
    app: &App,
    room_id: &RoomId,
) -> Result<(RoomPowerLevels, Vec<OwnedUserId>), MatrixError> {
    let filter = [StateEventType::RoomCreate, StateEventType::RoomPowerLevels]
        .into_iter()
        .map(|event_type| StateFilter { event_type, state_key: Some(String::new()) })
        .collect();
    let request = QueryCurrentStateRequest { room_id: room_id.to_owned(), filter: Some(filter) };
    let response = app.rt.bus.call::<QueryCurrentState>(&request).await?;
    let rules = version_rules(&response.room_version)?;
    let (mut create, mut levels) = (None, None);
    for event in response.state {
        let pdu = parse_stored(event.event_id, event.event)?;
        match pdu.state_pair().map(|(kind, _)| kind) {
            Some(StateEventType::RoomCreate) => create = Some(pdu),
            Some(StateEventType::RoomPowerLevels) => levels = Some(pdu),
            _ => {}
        }
    }
    Ok(common::power_levels::from_events(create.as_ref(), levels.as_ref(), &rules.authorization))
}
