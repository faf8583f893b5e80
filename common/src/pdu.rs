//! PDUs: room events as servers exchange them. [`Pdu`] reads one lazily
//! enough for ruma's authorisation rules and state resolution (it implements
//! their `Event` trait); [`EventBuilder`] makes, hashes and signs a new one.

use std::sync::Arc;

use anyhow::Context;
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId,
    OwnedUserId, RoomId, RoomVersionId, UserId,
    events::{StateEventType, TimelineEventType},
    room_version_rules::{EventIdFormatVersion, RoomIdFormatVersion, RoomVersionRules},
    state_res,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::keys::SigningKey;

/// The state events (all with an empty state key) an invitee or a knocking
/// user gets of a room before joining it: what a client shows of the room.
pub const STRIPPED_STATE_TYPES: [&str; 7] = [
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.canonical_alias",
    "m.room.encryption",
];

/// Largest PDU the spec allows, in bytes of canonical JSON.
pub const MAX_PDU_BYTES: usize = 65_536;

/// A parsed PDU. Cheap to clone: the JSON is shared.
#[derive(Clone, Debug)]
pub struct Pdu(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    event_id: OwnedEventId,
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    kind: TimelineEventType,
    content: Box<RawValue>,
    state_key: Option<String>,
    prev_events: Vec<OwnedEventId>,
    auth_events: Vec<OwnedEventId>,
    redacts: Option<OwnedEventId>,
    depth: u64,
    rejected: bool,
    json: Box<RawValue>,
}

/// Event references: ids (v3+) or `[id, hashes]` pairs (v1, v2).
#[derive(Deserialize)]
#[serde(untagged)]
enum Reference {
    Id(OwnedEventId),
    Pair(OwnedEventId, serde::de::IgnoredAny),
}

impl Reference {
    fn id(self) -> OwnedEventId {
        match self {
            Reference::Id(id) | Reference::Pair(id, _) => id,
        }
    }
}

#[derive(Deserialize)]
struct Fields {
    #[serde(default)]
    event_id: Option<OwnedEventId>,
    #[serde(default)]
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    #[serde(rename = "type")]
    kind: TimelineEventType,
    content: Box<RawValue>,
    #[serde(default)]
    state_key: Option<String>,
    #[serde(default)]
    prev_events: Vec<Reference>,
    #[serde(default)]
    auth_events: Vec<Reference>,
    #[serde(default)]
    redacts: Option<OwnedEventId>,
    #[serde(default)]
    depth: u64,
}

#[derive(Deserialize)]
struct RedactsInContent {
    #[serde(default)]
    redacts: Option<OwnedEventId>,
}

impl Pdu {
    /// Reads a PDU whose id is known (computed or looked up).
    pub fn parse(event_id: OwnedEventId, json: Box<RawValue>) -> anyhow::Result<Pdu> {
        let fields: Fields = serde_json::from_str(json.get()).context("not a PDU")?;
        let mut redacts = fields.redacts;
        // Since room version 11 `redacts` lives in the content.
        if redacts.is_none() && fields.kind == TimelineEventType::RoomRedaction {
            redacts = serde_json::from_str::<RedactsInContent>(fields.content.get()).ok().and_then(|c| c.redacts);
        }
        let _ = fields.event_id;
        Ok(Pdu(Arc::new(Inner {
            event_id,
            room_id: fields.room_id,
            sender: fields.sender,
            origin_server_ts: fields.origin_server_ts,
            kind: fields.kind,
            content: fields.content,
            state_key: fields.state_key,
            prev_events: fields.prev_events.into_iter().map(Reference::id).collect(),
            auth_events: fields.auth_events.into_iter().map(Reference::id).collect(),
            redacts,
            depth: fields.depth,
            rejected: false,
            json,
        })))
    }

    /// The same event marked as rejected, for the authorisation rules.
    pub fn into_rejected(self) -> Pdu {
        let inner = Arc::try_unwrap(self.0).unwrap_or_else(|shared| Inner {
            event_id: shared.event_id.clone(),
            room_id: shared.room_id.clone(),
            sender: shared.sender.clone(),
            origin_server_ts: shared.origin_server_ts,
            kind: shared.kind.clone(),
            content: shared.content.clone(),
            state_key: shared.state_key.clone(),
            prev_events: shared.prev_events.clone(),
            auth_events: shared.auth_events.clone(),
            redacts: shared.redacts.clone(),
            depth: shared.depth,
            rejected: shared.rejected,
            json: shared.json.clone(),
        });
        Pdu(Arc::new(Inner { rejected: true, ..inner }))
    }

    pub fn id(&self) -> &EventId {
        &self.0.event_id
    }

    pub fn owned_id(&self) -> OwnedEventId {
        self.0.event_id.clone()
    }

    pub fn kind(&self) -> &TimelineEventType {
        &self.0.kind
    }

    pub fn sender_id(&self) -> &UserId {
        &self.0.sender
    }

    pub fn key(&self) -> Option<&str> {
        self.0.state_key.as_deref()
    }

    /// `(type, state_key)` when the event is a state event.
    pub fn state_pair(&self) -> Option<(StateEventType, String)> {
        self.0.state_key.as_ref().map(|key| (self.0.kind.to_string().into(), key.clone()))
    }

    pub fn content_json(&self) -> &RawValue {
        &self.0.content
    }

    /// The content's field `name`, when it is a string (`membership`, …).
    pub fn content_str(&self, name: &str) -> Option<String> {
        let content: serde_json::Map<String, serde_json::Value> = serde_json::from_str(self.0.content.get()).ok()?;
        content.get(name)?.as_str().map(str::to_owned)
    }

    pub fn prev_ids(&self) -> &[OwnedEventId] {
        &self.0.prev_events
    }

    pub fn auth_ids(&self) -> &[OwnedEventId] {
        &self.0.auth_events
    }

    pub fn redacted_id(&self) -> Option<&EventId> {
        self.0.redacts.as_deref()
    }

    pub fn depth(&self) -> u64 {
        self.0.depth
    }

    pub fn ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.0.origin_server_ts
    }

    pub fn json(&self) -> &RawValue {
        &self.0.json
    }

    pub fn to_raw(&self) -> Box<RawValue> {
        self.0.json.clone()
    }
}

impl state_res::Event for Pdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &OwnedEventId {
        &self.0.event_id
    }

    fn room_id(&self) -> Option<&RoomId> {
        self.0.room_id.as_deref()
    }

    fn sender(&self) -> &UserId {
        &self.0.sender
    }

    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.0.origin_server_ts
    }

    fn event_type(&self) -> &TimelineEventType {
        &self.0.kind
    }

    fn content(&self) -> &RawValue {
        &self.0.content
    }

    fn state_key(&self) -> Option<&str> {
        self.0.state_key.as_deref()
    }

    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &OwnedEventId> + '_> {
        Box::new(self.0.prev_events.iter())
    }

    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &OwnedEventId> + '_> {
        Box::new(self.0.auth_events.iter())
    }

    fn redacts(&self) -> Option<&OwnedEventId> {
        self.0.redacts.as_ref()
    }

    fn rejected(&self) -> bool {
        self.0.rejected
    }
}

/// The room version's rules; errors for versions this server does not know.
pub fn rules(version: &RoomVersionId) -> anyhow::Result<RoomVersionRules> {
    version.rules().with_context(|| format!("unsupported room version {version}"))
}

/// The id an event's content determines (room versions 3 and later), or the
/// id it carries (versions 1 and 2).
pub fn event_id_of(object: &CanonicalJsonObject, version: &RoomVersionId) -> anyhow::Result<OwnedEventId> {
    let rules = rules(version)?;
    match rules.event_id_format {
        EventIdFormatVersion::V1 => match object.get("event_id") {
            Some(CanonicalJsonValue::String(id)) => Ok(id.as_str().try_into()?),
            _ => anyhow::bail!("the event has no event_id"),
        },
        _ => Ok(format!("${}", ruma::signatures::reference_hash(object, &rules)?).try_into()?),
    }
}

/// The room id a room version 12 create event determines.
pub fn room_id_of_create(create_event_id: &EventId) -> anyhow::Result<OwnedRoomId> {
    Ok(format!("!{}", create_event_id.as_str().trim_start_matches('$')).try_into()?)
}

/// An event larger than the spec allows ([`MAX_PDU_BYTES`]).
#[derive(Debug, thiserror::Error)]
#[error("the event is {size} bytes, more than {MAX_PDU_BYTES}")]
pub struct TooLarge {
    pub size: usize,
}

/// A new event, before it is placed in the room.
#[derive(Clone, Debug)]
pub struct EventBuilder {
    pub event_type: TimelineEventType,
    pub state_key: Option<String>,
    pub sender: OwnedUserId,
    pub content: serde_json::Value,
    /// For redactions: the event redacted (written where the room version puts it).
    pub redacts: Option<OwnedEventId>,
}

/// A built event: hashed, signed, its id computed.
pub struct BuiltEvent {
    pub event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    pub object: CanonicalJsonObject,
}

impl BuiltEvent {
    pub fn to_raw(&self) -> Box<RawValue> {
        serde_json::value::to_raw_value(&self.object).expect("canonical JSON serialises")
    }

    pub fn to_pdu(&self) -> Pdu {
        Pdu::parse(self.event_id.clone(), self.to_raw()).expect("a built event parses")
    }
}

impl EventBuilder {
    pub fn new(sender: &UserId, event_type: impl Into<TimelineEventType>, content: serde_json::Value) -> Self {
        Self { event_type: event_type.into(), state_key: None, sender: sender.to_owned(), content, redacts: None }
    }

    pub fn state(mut self, state_key: impl Into<String>) -> Self {
        self.state_key = Some(state_key.into());
        self
    }

    /// The `(type, state_key)` pairs whose current events authorise this one.
    pub fn auth_types(&self, version: &RoomVersionId) -> anyhow::Result<Vec<(StateEventType, String)>> {
        let rules = rules(version)?;
        let content = serde_json::value::to_raw_value(&self.content)?;
        state_res::auth_types_for_event(
            &self.event_type,
            &self.sender,
            self.state_key.as_deref(),
            &content,
            &rules.authorization,
        )
        .map_err(|e| anyhow::anyhow!(e))
    }

    /// Places the event after `prev_events`, authorised by `auth_events` (the
    /// current events for [`Self::auth_types`]), then hashes and signs it.
    /// `room_id` is ignored for a room version 12 create event, whose room id
    /// comes from its own hash.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        &self,
        version: &RoomVersionId,
        room_id: Option<&RoomId>,
        prev_events: &[OwnedEventId],
        auth_events: &[OwnedEventId],
        depth: u64,
        server_name: &str,
        key: &SigningKey,
    ) -> anyhow::Result<BuiltEvent> {
        let template = self.template(version, room_id, prev_events, auth_events, depth)?;
        finish(template, version, server_name, key)
    }

    /// The event as another server builds on it (`make_join`, `make_leave`,
    /// `make_knock`): placed in the room, neither hashed nor signed.
    pub fn template(
        &self,
        version: &RoomVersionId,
        room_id: Option<&RoomId>,
        prev_events: &[OwnedEventId],
        auth_events: &[OwnedEventId],
        depth: u64,
    ) -> anyhow::Result<CanonicalJsonObject> {
        let rules = rules(version)?;
        let is_v12_create =
            self.event_type == TimelineEventType::RoomCreate && rules.room_id_format == RoomIdFormatVersion::V2;
        let reference = |id: &OwnedEventId| -> serde_json::Value {
            match rules.event_id_format {
                // v1 and v2 reference `[id, {hashes}]`; the hashes are optional in practice.
                EventIdFormatVersion::V1 => serde_json::json!([id, {}]),
                _ => serde_json::json!(id),
            }
        };
        let mut event = serde_json::json!({
            "type": self.event_type,
            "sender": self.sender,
            "content": self.content,
            "origin_server_ts": MilliSecondsSinceUnixEpoch::now(),
            "depth": depth,
            "prev_events": prev_events.iter().map(reference).collect::<Vec<_>>(),
            "auth_events": auth_events.iter().map(reference).collect::<Vec<_>>(),
        });
        let map = event.as_object_mut().expect("an object");
        if let Some(state_key) = &self.state_key {
            map.insert("state_key".into(), state_key.clone().into());
        }
        if !is_v12_create {
            let room_id = room_id.context("the event needs a room id")?;
            map.insert("room_id".into(), room_id.as_str().into());
        }
        if let Some(redacts) = &self.redacts {
            if rules.redaction.keep_room_redaction_redacts {
                map["content"]
                    .as_object_mut()
                    .context("a redaction's content must be an object")?
                    .insert("redacts".into(), redacts.as_str().into());
            }
            // Servers of rooms before v11 read it at the top level; later
            // versions ignore it there, so it is written both ways.
            map.insert("redacts".into(), redacts.as_str().into());
        }
        serde_json::from_value(event).context("not canonical JSON")
    }
}

/// Adds this server's signature to an event another server built and
/// signed: a join to a restricted room that one of our users authorises.
/// Signatures cover the redacted event, so nothing else changes.
pub fn co_sign(
    object: &mut CanonicalJsonObject,
    version: &RoomVersionId,
    server_name: &str,
    key: &SigningKey,
) -> anyhow::Result<()> {
    let rules = rules(version)?;
    let mut redacted = ruma::canonical_json::redact(object.clone(), &rules.redaction, None)?;
    ruma::signatures::sign_json(server_name, key.pair(), &mut redacted)?;
    let signatures = redacted.remove("signatures").context("signing left no signatures")?;
    object.insert("signatures".into(), signatures);
    Ok(())
}

/// Hashes and signs an event placed in its room ([`EventBuilder::template`],
/// or a template another server gave), naming it in room versions 1 and 2.
pub fn finish(
    mut object: CanonicalJsonObject,
    version: &RoomVersionId,
    server_name: &str,
    key: &SigningKey,
) -> anyhow::Result<BuiltEvent> {
    let rules = rules(version)?;
    for field in ["event_id", "hashes", "signatures", "unsigned"] {
        object.remove(field);
    }
    if rules.event_id_format == EventIdFormatVersion::V1 {
        let id = format!("${}:{server_name}", crate::auth::random_id(18));
        object.insert("event_id".into(), CanonicalJsonValue::String(id));
    }
    ruma::signatures::hash_and_sign_event(server_name, key.pair(), &mut object, &rules.redaction)?;
    let event_id = event_id_of(&object, version)?;
    let is_v12_create = matches!(object.get("type"), Some(CanonicalJsonValue::String(t)) if t == "m.room.create")
        && rules.room_id_format == RoomIdFormatVersion::V2;
    let room_id = if is_v12_create {
        room_id_of_create(&event_id)?
    } else {
        match object.get("room_id") {
            Some(CanonicalJsonValue::String(id)) => OwnedRoomId::try_from(id.as_str())?,
            _ => anyhow::bail!("the event needs a room id"),
        }
    };
    let size = serde_json::to_vec(&object)?.len();
    if size > MAX_PDU_BYTES {
        return Err(TooLarge { size }.into());
    }
    Ok(BuiltEvent { event_id, room_id, object })
}

/// The id of a room version 12 room's create event, which its room id names.
pub fn create_event_id_of(room_id: &RoomId) -> anyhow::Result<OwnedEventId> {
    Ok(format!("${}", room_id.as_str().trim_start_matches('!')).try_into()?)
}

/// The fields of a PDU a client sees.
const CLIENT_FIELDS: &[&str] =
    &["content", "event_id", "origin_server_ts", "room_id", "sender", "state_key", "type", "unsigned", "redacts"];

/// An event in the client-server format: the PDU without what only servers
/// need (hashes, signatures, auth and prev events, depth), with its id (since
/// room version 3 computed, not carried) and room id (a version 12 create
/// event carries none).
pub fn client_format(
    event_id: &EventId,
    room_id: &RoomId,
    json: &RawValue,
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let pdu: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json.get()).context("a PDU is not an object")?;
    let mut out: serde_json::Map<String, serde_json::Value> =
        pdu.into_iter().filter(|(key, _)| CLIENT_FIELDS.contains(&key.as_str())).collect();
    out.insert("event_id".into(), event_id.as_str().into());
    out.insert("room_id".into(), room_id.as_str().into());
    Ok(out)
}

/// A PDU as another server sent it: its id computed for the room version,
/// at most [`MAX_PDU_BYTES`], with the fields the authorisation rules read.
pub fn received(json: &RawValue, version: &RoomVersionId) -> anyhow::Result<Pdu> {
    if json.get().len() > MAX_PDU_BYTES {
        return Err(TooLarge { size: json.get().len() }.into());
    }
    let object: CanonicalJsonObject = serde_json::from_str(json.get()).context("the event is not canonical JSON")?;
    let event_id = event_id_of(&object, version)?;
    Pdu::parse(event_id, json.to_owned())
}

/// `events` reordered so that each comes after those of its auth events that
/// are among them: the order in which a server can check and store them.
/// Ties keep depth order, so prev events tend to come first too.
pub fn auth_order(mut events: Vec<Pdu>) -> Vec<Pdu> {
    use std::collections::{HashMap, HashSet};
    events.sort_by_key(Pdu::depth);
    let by_id: HashMap<OwnedEventId, usize> = events.iter().enumerate().map(|(i, e)| (e.owned_id(), i)).collect();
    let (mut placed, mut visiting) = (HashSet::new(), HashSet::new());
    let mut order = Vec::with_capacity(events.len());
    for start in 0..events.len() {
        // Depth-first, iteratively: an auth chain can be thousands deep.
        let mut stack = vec![(start, false)];
        while let Some((i, expanded)) = stack.pop() {
            if expanded {
                placed.insert(i);
                order.push(i);
                continue;
            }
            // A cycle (only a forged chain has one) is cut where it closes.
            if placed.contains(&i) || !visiting.insert(i) {
                continue;
            }
            stack.push((i, true));
            for auth in events[i].auth_ids() {
                if let Some(&j) = by_id.get(auth)
                    && !placed.contains(&j)
                {
                    stack.push((j, false));
                }
            }
        }
    }
    let mut slots: Vec<Option<Pdu>> = events.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}
