//! The roomserver's contracts: events in (`InputRoomEvent`), decisions out
//! (`OutputRoomEvent`), and the questions it answers.
//!
//! Events travel as the PDU JSON servers exchange (`Box<RawValue>`); read one
//! with [`crate::pdu::Pdu::parse`].

use ruma::{
    OwnedDeviceId, OwnedEventId, OwnedRoomAliasId, OwnedRoomId, OwnedServerName, OwnedTransactionId, OwnedUserId,
    RoomVersionId, events::StateEventType,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{
    bus::{Stream, StreamMessage},
    rpc_method,
};

/// How the roomserver should treat an input event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// A new event at the tip of the room: authorised against the state
    /// before it and the current state, and it moves the room forward.
    New,
    /// An event whose place in the room is not known (auth chains, state
    /// fetched from another server): checked against its auth events only,
    /// stored, and no effect on the room's state.
    Outlier,
    /// An old event filling history (backfill): authorised and stored with
    /// its state, but it moves neither the current state nor the extremities.
    Historical,
}

/// A local client's transaction, echoed back to its device in sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTransaction {
    pub device_id: OwnedDeviceId,
    pub txn_id: OwnedTransactionId,
}

/// An event for the roomserver to check and store. Published by clientapi
/// (local events) and federationreceiver (remote ones).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InputRoomEvent {
    pub kind: InputKind,
    pub room_id: OwnedRoomId,
    pub room_version: RoomVersionId,
    /// The id the publisher computed; the roomserver checks it against the event.
    pub event_id: OwnedEventId,
    /// The PDU as servers exchange it: hashed and signed.
    pub event: Box<RawValue>,
    /// The server that sent it to us (our own for local events). Events from
    /// elsewhere get their hashes and signatures checked.
    pub origin: OwnedServerName,
    /// For an event whose prev events are unknown here: the ids of the state
    /// before it (already stored, as outliers if need be), as another server
    /// told us. Without it the state comes from the prev events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_before: Option<Vec<OwnedEventId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<ClientTransaction>,
    /// For an outlier that invites a local user to a room not known here
    /// (federation `/invite`): the stripped state the inviting server sent,
    /// for the invitee to see the room by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_room_state: Option<Vec<Box<RawValue>>>,
    /// A core NATS subject on which the publisher waits for [`InputVerdict`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Non-zero for a copy published again because the first publisher died
    /// before it heard the verdict: the copy is not deduplicated away, and
    /// the roomserver answers it with the verdict the first one got.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resend: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl StreamMessage for InputRoomEvent {
    const STREAM: Stream = Stream::InputRoomEvent;

    fn msg_id(&self) -> String {
        // The same event may come first as an outlier (in a state or an auth
        // chain) and later in its place: a different input, not a duplicate.
        let kind = match self.kind {
            InputKind::New => "",
            InputKind::Outlier => "outlier:",
            InputKind::Historical => "historical:",
        };
        match self.resend {
            0 => format!("in:{kind}{}", self.event_id),
            n => format!("in:{kind}{}:{n}", self.event_id),
        }
    }

    fn routing_key(&self) -> Option<&str> {
        Some(self.room_id.as_str())
    }
}

/// What the roomserver decided about an input event. A duplicate of a stored
/// event gets the verdict the first copy got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum InputVerdict {
    Accepted {
        event_id: OwnedEventId,
    },
    /// Allowed by the state before it but not by the room's current state:
    /// stored, never served to clients, not built upon.
    SoftFailed {
        event_id: OwnedEventId,
        reason: String,
    },
    Rejected {
        event_id: OwnedEventId,
        reason: String,
        /// Stored as rejected: the authorisation rules refused it, which is
        /// its outcome. Otherwise it was never taken (bad signatures, not a
        /// valid event, nothing here to place it against).
        #[serde(default)]
        stored: bool,
    },
}

/// What the roomserver emits. Externally tagged: an internally tagged enum
/// cannot carry a `RawValue`. Every consumer keyed by event id stays
/// idempotent: the outbox can publish a message twice.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputRoomEvent {
    /// An accepted event that is not soft-failed (new or historical).
    NewRoomEvent(NewRoomEvent),
    /// A local user was invited (the invite is also a `NewRoomEvent` when the
    /// room is known here).
    NewInviteEvent(NewInviteEvent),
    /// A local user's invite no longer stands (joined, rejected, revoked).
    RetireInviteEvent(RetireInviteEvent),
    /// An event was redacted: serve `redacted_event_id` pruned from now on.
    RedactedEvent(RedactedEvent),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewRoomEvent {
    pub event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    pub room_version: RoomVersionId,
    pub event: Box<RawValue>,
    /// `Historical` events (backfill) change neither the current state nor
    /// the extremities: `adds`/`removes` are empty for them.
    pub kind: InputKind,
    /// State event ids that enter the room's current state with this event
    /// (the event itself when it is state and wins, and whatever a state
    /// resolution brought in).
    pub adds_state_event_ids: Vec<OwnedEventId>,
    /// State event ids that leave the current state.
    pub removes_state_event_ids: Vec<OwnedEventId>,
    /// The room's forward extremities after this event.
    pub latest_event_ids: Vec<OwnedEventId>,
    /// Position of the event in the roomserver's order for the room: strictly
    /// increasing for each room's new events.
    pub stream_ordering: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<ClientTransaction>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewInviteEvent {
    pub event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    pub room_version: RoomVersionId,
    pub target_user_id: OwnedUserId,
    pub event: Box<RawValue>,
    /// Stripped state for the invitee (`invite_state`): create, join rules,
    /// name, avatar, canonical alias, encryption, the inviter's member event.
    pub invite_room_state: Vec<Box<RawValue>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RetireInviteEvent {
    /// The invite that no longer stands.
    pub invite_event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    pub target_user_id: OwnedUserId,
    /// The member event that replaced it.
    pub retired_by_event_id: OwnedEventId,
    pub membership: String,
    /// That event, when this server is not in the room: no other event of
    /// the room will ever tell readers how the invite ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside: Option<OutsideEvent>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutsideEvent {
    pub room_version: RoomVersionId,
    pub event: Box<RawValue>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RedactedEvent {
    pub room_id: OwnedRoomId,
    pub redacted_event_id: OwnedEventId,
    pub redaction_event_id: OwnedEventId,
    /// The `m.room.redaction` event.
    pub redaction_event: Box<RawValue>,
}

impl StreamMessage for OutputRoomEvent {
    const STREAM: Stream = Stream::OutputRoomEvent;

    fn msg_id(&self) -> String {
        match self {
            OutputRoomEvent::NewRoomEvent(e) => format!("new:{}", e.event_id),
            OutputRoomEvent::NewInviteEvent(e) => format!("invite:{}", e.event_id),
            OutputRoomEvent::RetireInviteEvent(e) => format!("retire:{}", e.invite_event_id),
            OutputRoomEvent::RedactedEvent(e) => format!("redacted:{}", e.redacted_event_id),
        }
    }
}

/// The room versions this server can join and create, all stable.
pub const SUPPORTED_ROOM_VERSIONS: &[&str] = &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"];

/// A state key: event type and state key.
pub type StateKey = (StateEventType, String);

/// An event as the roomserver stores it. `event` is pruned when it was redacted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredEvent {
    pub event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    pub event: Box<RawValue>,
    /// Redacted by an accepted redaction: `event` is already pruned.
    #[serde(default)]
    pub redacted: bool,
    /// Allowed by the state before it but not by the room's state when it
    /// arrived: kept for the room's graph, never shown to clients.
    #[serde(default)]
    pub soft_failed: bool,
}

rpc_method!(
    /// Events the roomserver has accepted (soft-failed ones included; rejected
    /// ones never), by id; unknown ids are left out. At most 1000 ids.
    QueryEvents: "roomserver"."query_events", retry = true, QueryEventsRequest => QueryEventsResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryEventsRequest {
    pub event_ids: Vec<OwnedEventId>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryEventsResponse {
    pub events: Vec<StoredEvent>,
}

rpc_method!(
    /// What a component needs to build the next event in a room: the room's
    /// version, its forward extremities and their depth, and the current state
    /// events for the requested keys (missing ones left out). NotFound when
    /// the room is unknown here.
    QueryLatestEventsAndState: "roomserver"."query_latest_events_and_state", retry = true,
    QueryLatestEventsAndStateRequest => QueryLatestEventsAndStateResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryLatestEventsAndStateRequest {
    pub room_id: OwnedRoomId,
    pub state_keys: Vec<StateKey>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryLatestEventsAndStateResponse {
    pub room_version: RoomVersionId,
    pub latest_event_ids: Vec<OwnedEventId>,
    /// The greatest depth among the latest events.
    pub depth: u64,
    pub state: Vec<StoredEvent>,
}

rpc_method!(
    /// The room's current state, all of it or only the given types/keys
    /// (`state_key: None` matches every key of the type). NotFound when the
    /// room is unknown here.
    QueryCurrentState: "roomserver"."query_current_state", retry = true,
    QueryCurrentStateRequest => QueryStateResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryCurrentStateRequest {
    pub room_id: OwnedRoomId,
    /// `None`: the whole state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Vec<StateFilter>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StateFilter {
    pub event_type: StateEventType,
    /// `None`: every state key of the type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_key: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryStateResponse {
    pub room_version: RoomVersionId,
    pub state: Vec<StoredEvent>,
}

rpc_method!(
    /// The room's state at an event: after it (`after: true`, what `/members?at=`
    /// and `/state` at an event mean) or before it (what federation's
    /// `/state_ids` means). NotFound when the event is unknown or an outlier.
    QueryStateAtEvent: "roomserver"."query_state_at_event", retry = true,
    QueryStateAtEventRequest => QueryStateResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryStateAtEventRequest {
    pub room_id: OwnedRoomId,
    pub event_id: OwnedEventId,
    pub after: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Vec<StateFilter>>,
}

rpc_method!(
    /// The full auth chain of the given events: every event their auth
    /// events lead to, one of the given events included when it is in the
    /// chain of another (as the state's events are in one another's).
    QueryAuthChain: "roomserver"."query_auth_chain", retry = true, QueryAuthChainRequest => QueryEventsResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryAuthChainRequest {
    pub event_ids: Vec<OwnedEventId>,
}

rpc_method!(
    /// A user's membership of a room in its current state.
    QueryMembership: "roomserver"."query_membership", retry = true, QueryMembershipRequest => QueryMembershipResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryMembershipRequest {
    pub room_id: OwnedRoomId,
    pub user_id: OwnedUserId,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryMembershipResponse {
    /// Whether the room is known here (has current state).
    pub room_exists: bool,
    /// `join`, `invite`, `leave`, `ban`, `knock`; `None` when never a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<String>,
    /// The user's current member event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<StoredEvent>,
    /// Whether the user left the room and forgot it.
    #[serde(default)]
    pub forgotten: bool,
}

rpc_method!(
    /// Who of this server's users may vouch for `user_id` joining a room
    /// whose join rules are `restricted` or `knock_restricted`
    /// (`join_authorised_via_users_server`), as the current state stands.
    QueryJoinAuthoriser: "roomserver"."query_join_authoriser", retry = true,
    QueryJoinAuthoriserRequest => JoinAuthoriser
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryJoinAuthoriserRequest {
    pub room_id: OwnedRoomId,
    pub user_id: OwnedUserId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinAuthoriser {
    /// The join rules (or the room version) restrict nothing.
    NotRestricted,
    /// A local joined member who may invite.
    User(OwnedUserId),
    /// The user is joined to none of the allowed rooms this server is in;
    /// `rooms_known` says whether it is in any of them.
    NotAllowed { rooms_known: bool },
    /// The user qualifies, but none of our members may invite.
    NoAuthoriser,
}

rpc_method!(
    /// The member events of the room's current state, by membership.
    QueryMembers: "roomserver"."query_members", retry = true, QueryMembersRequest => QueryStateResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryMembersRequest {
    pub room_id: OwnedRoomId,
    /// Only these memberships (`None`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memberships: Option<Vec<String>>,
    /// Only members on this server.
    #[serde(default)]
    pub local_only: bool,
}

rpc_method!(
    /// The servers with a member joined to the room in its current state (the
    /// servers a room's events go to, and may be read by). NotFound when the
    /// room is unknown here.
    QueryJoinedServers: "roomserver"."query_joined_servers", retry = true,
    QueryJoinedServersRequest => QueryJoinedServersResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryJoinedServersRequest {
    pub room_id: OwnedRoomId,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryJoinedServersResponse {
    pub servers: Vec<OwnedServerName>,
}

rpc_method!(
    /// The rooms where a user's current membership is one of `memberships`,
    /// forgotten rooms left out.
    QueryRoomsForUser: "roomserver"."query_rooms_for_user", retry = true,
    QueryRoomsForUserRequest => QueryRoomsForUserResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryRoomsForUserRequest {
    pub user_id: OwnedUserId,
    pub memberships: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryRoomsForUserResponse {
    pub room_ids: Vec<OwnedRoomId>,
}

rpc_method!(
    /// A room's version. NotFound when the room is unknown here.
    QueryRoomVersion: "roomserver"."query_room_version", retry = true, QueryRoomVersionRequest => QueryRoomVersionResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryRoomVersionRequest {
    pub room_id: OwnedRoomId,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryRoomVersionResponse {
    pub room_version: RoomVersionId,
}

rpc_method!(
    /// Events as another server may see them: those the history visibility
    /// hides from it pruned (federation `/event`).
    QueryEventsForServer: "roomserver"."query_events_for_server", retry = true,
    QueryEventsForServerRequest => QueryEventsResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryEventsForServerRequest {
    pub event_ids: Vec<OwnedEventId>,
    pub server_name: OwnedServerName,
}

rpc_method!(
    /// Events before the given ones, walking prev events breadth first, at most
    /// `limit`, newest first (federation `/backfill`).
    QueryBackfill: "roomserver"."query_backfill", retry = true, QueryBackfillRequest => QueryEventsResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryBackfillRequest {
    pub room_id: OwnedRoomId,
    /// The server asking: what it may not see of the history comes pruned.
    pub for_server: OwnedServerName,
    pub from: Vec<OwnedEventId>,
    pub limit: u32,
}

rpc_method!(
    /// The accepted event of a room nearest a time: the first at or after
    /// `ts`, or with `backward` the last at or before it (federation
    /// `/timestamp_to_event`). NotFound when there is none.
    QueryEventByTimestamp: "roomserver"."query_event_by_timestamp", retry = true,
    QueryEventByTimestampRequest => QueryEventByTimestampResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryEventByTimestampRequest {
    pub room_id: OwnedRoomId,
    /// Milliseconds since the epoch.
    pub ts: u64,
    pub backward: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryEventByTimestampResponse {
    pub event_id: OwnedEventId,
    pub origin_server_ts: u64,
}

rpc_method!(
    /// Events reachable backwards from `latest` that are not reachable from
    /// `earliest`, at most `limit`, oldest first (federation `/get_missing_events`).
    QueryMissingEvents: "roomserver"."query_missing_events", retry = true, QueryMissingEventsRequest => QueryEventsResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryMissingEventsRequest {
    pub room_id: OwnedRoomId,
    /// The server asking: what it may not see of the history comes pruned.
    pub for_server: OwnedServerName,
    pub earliest: Vec<OwnedEventId>,
    pub latest: Vec<OwnedEventId>,
    pub limit: u32,
}

rpc_method!(
    /// Forgets a room for a user who has left it (`POST /forget`). BadRequest
    /// when the user is still joined or invited.
    ForgetRoom: "roomserver"."forget_room", retry = true, ForgetRoomRequest => ()
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForgetRoomRequest {
    pub room_id: OwnedRoomId,
    pub user_id: OwnedUserId,
}

// Room aliases: the roomserver owns the local alias → room table.

rpc_method!(
    /// Creates a local alias. BadRequest (`in_use`) when it exists.
    SetRoomAlias: "roomserver"."set_room_alias", retry = false, SetRoomAliasRequest => SetRoomAliasResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetRoomAliasRequest {
    pub alias: OwnedRoomAliasId,
    pub room_id: OwnedRoomId,
    pub creator: OwnedUserId,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetRoomAliasResponse {
    /// False when the alias already existed (and was left alone).
    pub created: bool,
}

rpc_method!(
    /// Which room a local alias names. NotFound when none.
    GetRoomAlias: "roomserver"."get_room_alias", retry = true, GetRoomAliasRequest => GetRoomAliasResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetRoomAliasRequest {
    pub alias: OwnedRoomAliasId,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetRoomAliasResponse {
    pub room_id: OwnedRoomId,
    pub creator: OwnedUserId,
}

rpc_method!(
    /// Removes a local alias. NotFound when none.
    RemoveRoomAlias: "roomserver"."remove_room_alias", retry = true, GetRoomAliasRequest => GetRoomAliasResponse
);

rpc_method!(
    /// The local aliases of a room.
    QueryAliasesForRoom: "roomserver"."query_aliases_for_room", retry = true,
    QueryAliasesForRoomRequest => QueryAliasesForRoomResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryAliasesForRoomRequest {
    pub room_id: OwnedRoomId,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryAliasesForRoomResponse {
    pub aliases: Vec<OwnedRoomAliasId>,
}

// The public room directory: which rooms are published, and their summaries.

rpc_method!(
    /// Publishes a room in the directory or withdraws it.
    SetRoomVisibility: "roomserver"."set_room_visibility", retry = true, SetRoomVisibilityRequest => ()
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetRoomVisibilityRequest {
    pub room_id: OwnedRoomId,
    pub public: bool,
}

rpc_method!(
    /// Whether a room is published. NotFound when the room is unknown here.
    QueryRoomVisibility: "roomserver"."query_room_visibility", retry = true,
    QueryRoomVersionRequest => QueryRoomVisibilityResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryRoomVisibilityResponse {
    pub public: bool,
}

rpc_method!(
    /// One page of published rooms, most joined members first.
    QueryPublicRooms: "roomserver"."query_public_rooms", retry = true, QueryPublicRoomsRequest => QueryPublicRoomsResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryPublicRoomsRequest {
    pub limit: u32,
    /// The `next_batch`/`prev_batch` token of an earlier page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Case-insensitive substring of name, topic, canonical alias or room id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic_search_term: Option<String>,
    /// Room types to include (`None` in the list means rooms without a type);
    /// empty: every type.
    #[serde(default)]
    pub room_types: Vec<Option<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryPublicRoomsResponse {
    /// `PublicRoomsChunk` objects as the client-server API defines them.
    pub chunk: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_batch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_batch: Option<String>,
    pub total_room_count_estimate: u64,
}
