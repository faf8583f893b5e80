//! Who may do what in a room: the power levels its create and power-levels
//! events give, and its creators (who have unlimited power from room
//! version 12).

use ruma::{
    OwnedUserId,
    events::room::power_levels::{RoomPowerLevels, RoomPowerLevelsEventContent, RoomPowerLevelsSource},
    room_version_rules::AuthorizationRules,
};

use crate::pdu::Pdu;

pub fn from_events(
    create: Option<&Pdu>,
    power_levels: Option<&Pdu>,
    rules: &AuthorizationRules,
) -> (RoomPowerLevels, Vec<OwnedUserId>) {
    let mut creators = Vec::new();
    if let Some(create) = create {
        let content: serde_json::Value = serde_json::from_str(create.content_json().get()).unwrap_or_default();
        let creator = if rules.use_room_create_sender {
            Some(create.sender_id().to_owned())
        } else {
            content["creator"].as_str().and_then(|c| OwnedUserId::try_from(c).ok())
        };
        creators.extend(creator);
        if rules.additional_room_creators {
            let additional = content["additional_creators"].as_array().into_iter().flatten();
            creators.extend(additional.filter_map(|c| OwnedUserId::try_from(c.as_str()?).ok()));
        }
    }
    let source = power_levels
        .and_then(|event| serde_json::from_str::<RoomPowerLevelsEventContent>(event.content_json().get()).ok())
        .map_or(RoomPowerLevelsSource::None, RoomPowerLevelsSource::Original);
    (RoomPowerLevels::new(source, rules, creators.clone()), creators)
}
