//! Who may do what in a room, from its current power levels and creators.

use common::api::roomserver::{QueryCurrentState, QueryCurrentStateRequest, StateFilter};
use ruma::{
    OwnedUserId, RoomId,
    events::{
        StateEventType,
        room::power_levels::{RoomPowerLevels, RoomPowerLevelsEventContent, RoomPowerLevelsSource},
    },
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
    let mut creators = Vec::new();
    let mut source = RoomPowerLevelsSource::None;
    for event in response.state {
        let pdu = parse_stored(event.event_id, event.event)?;
        let content: serde_json::Value = serde_json::from_str(pdu.content_json().get()).unwrap_or_default();
        match pdu.state_pair().map(|(kind, _)| kind) {
            Some(StateEventType::RoomCreate) => {
                let creator = if rules.authorization.use_room_create_sender {
                    Some(pdu.sender_id().to_owned())
                } else {
                    content["creator"].as_str().and_then(|c| OwnedUserId::try_from(c).ok())
                };
                creators.extend(creator);
                if rules.authorization.additional_room_creators {
                    let additional = content["additional_creators"].as_array().into_iter().flatten();
                    creators.extend(additional.filter_map(|c| OwnedUserId::try_from(c.as_str()?).ok()));
                }
            }
            Some(StateEventType::RoomPowerLevels) => {
                if let Ok(levels) = serde_json::from_value::<RoomPowerLevelsEventContent>(content) {
                    source = RoomPowerLevelsSource::Original(levels);
                }
            }
            _ => {}
        }
    }
    Ok((RoomPowerLevels::new(source, &rules.authorization, creators.clone()), creators))
}
