//! Event filters (`FilterDefinition`, `RoomEventFilter`) as the spec defines
//! them: `*` wildcards in types, senders and rooms, `contains_url`.

use ruma::api::client::filter::{Filter, RoomEventFilter, UrlFilter};

/// Whether `value` matches a filter type pattern (`*` matches any run of characters).
fn type_matches(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, rest)) => {
            value.starts_with(prefix)
                && (0..=value.len() - prefix.len())
                    .any(|i| value.is_char_boundary(prefix.len() + i) && type_matches(rest, &value[prefix.len() + i..]))
        }
    }
}

pub fn types_allow(types: &Option<Vec<String>>, not_types: &[String], event_type: &str) -> bool {
    !not_types.iter().any(|p| type_matches(p, event_type))
        && types.as_ref().is_none_or(|t| t.iter().any(|p| type_matches(p, event_type)))
}

fn senders_allow(senders: &Option<Vec<ruma::OwnedUserId>>, not_senders: &[ruma::OwnedUserId], sender: &str) -> bool {
    !not_senders.iter().any(|s| s.as_str() == sender)
        && senders.as_ref().is_none_or(|s| s.iter().any(|s| s.as_str() == sender))
}

/// An event as far as a filter looks at it.
pub struct Candidate<'a> {
    pub event_type: &'a str,
    pub sender: &'a str,
    pub room_id: &'a str,
    /// The event's JSON, for `contains_url`.
    pub json: &'a str,
}

pub fn room_event_allows(filter: &RoomEventFilter, event: &Candidate<'_>) -> bool {
    if !types_allow(&filter.types, &filter.not_types, event.event_type)
        || !senders_allow(&filter.senders, &filter.not_senders, event.sender)
        || !room_allows(&filter.rooms, &filter.not_rooms, event.room_id)
    {
        return false;
    }
    match &filter.url_filter {
        None => true,
        Some(wanted) => {
            let has_url = serde_json::from_str::<serde_json::Value>(event.json)
                .ok()
                .is_some_and(|v| v["content"].get("url").is_some());
            match wanted {
                UrlFilter::EventsWithUrl => has_url,
                UrlFilter::EventsWithoutUrl => !has_url,
            }
        }
    }
}

pub fn room_allows(rooms: &Option<Vec<ruma::OwnedRoomId>>, not_rooms: &[ruma::OwnedRoomId], room_id: &str) -> bool {
    !not_rooms.iter().any(|r| r.as_str() == room_id)
        && rooms.as_ref().is_none_or(|r| r.iter().any(|r| r.as_str() == room_id))
}

/// For presence and global account data.
pub fn allows(filter: &Filter, event_type: &str, sender: &str) -> bool {
    types_allow(&filter.types, &filter.not_types, event_type)
        && senders_allow(&filter.senders, &filter.not_senders, sender)
}

#[cfg(test)]
mod tests {
    use super::type_matches;

    #[test]
    fn wildcards_match_runs_of_characters() {
        assert!(type_matches("m.room.*", "m.room.message"));
        assert!(type_matches("*", "anything"));
        assert!(type_matches("m.*.message", "m.room.message"));
        assert!(!type_matches("m.room.*", "m.call.invite"));
        assert!(type_matches("m.room.message", "m.room.message"));
        assert!(!type_matches("m.room.message", "m.room.messages"));
    }
}
