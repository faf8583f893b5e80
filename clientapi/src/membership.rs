//! Membership changes, shared by the membership routes, the profile-update
//! consumer and deactivation. A member event is always sent by the acting
//! user (a kick by the kicker with the target as state key, a leave by the
//! leaver): bots tell a kick from a leave by its sender.

use axum::{
    body::Body,
    extract::{FromRequest, Request},
};
use common::{
    api::{
        roomserver::{
            GetRoomAlias, GetRoomAliasRequest, JoinAuthoriser, QueryCurrentState, QueryCurrentStateRequest,
            QueryJoinAuthoriser, QueryJoinAuthoriserRequest, QueryJoinedServers, QueryJoinedServersRequest,
            QueryMembership, QueryMembershipRequest, QueryMembershipResponse, QueryRoomsForUser,
            QueryRoomsForUserRequest, StateFilter, StoredEvent,
        },
        userapi::{QueryProfile, QueryProfileRequest},
    },
    bus::{RemoteErrorKind, RpcError},
    federation,
    http::{HttpContext, MatrixError, Ruma, TokenUse, read_body},
    pdu::{EventBuilder, Pdu},
};
use ruma::{
    OwnedRoomId, OwnedRoomOrAliasId, OwnedServerName, OwnedUserId, RoomId, UserId,
    api::{
        IncomingRequest,
        federation::{
            membership::{RawStrippedState, create_invite},
            query::get_room_information,
        },
    },
    events::TimelineEventType,
};
use serde_json::{Map, Value};

use crate::{App, remote_membership, rooms};

/// Member content fields that only make sense on the event that carried them:
/// a join's authoriser must sign that join, so a later join (a profile
/// change) must not claim it again.
const ONE_OFF_FIELDS: &[&str] = &["join_authorised_via_users_server"];

/// The room an id or alias names, and servers to reach it through when it is
/// not known here: those an alias of another server's directory lists.
pub async fn resolve_room(
    app: &App,
    room: OwnedRoomOrAliasId,
) -> Result<(OwnedRoomId, Vec<OwnedServerName>), MatrixError> {
    let alias = match OwnedRoomId::try_from(room) {
        Ok(room_id) => return Ok((room_id, Vec::new())),
        Err(alias) => alias,
    };
    if alias.server_name() == app.rt.config.global.server_name {
        return Ok((app.rt.bus.call::<GetRoomAlias>(&GetRoomAliasRequest { alias }).await?.room_id, Vec::new()));
    }
    let server = alias.server_name().to_owned();
    let found = federation::request(&app.rt.bus, &server, get_room_information::v1::Request::new(alias)).await?;
    let mut servers = found.servers;
    if !servers.contains(&server) {
        servers.push(server);
    }
    Ok((found.room_id, servers))
}

/// Whether one of our users is joined to the room: only then does this
/// server take part in it, and membership changes go through the room's
/// other servers otherwise.
async fn resident(app: &App, room_id: &RoomId) -> Result<bool, MatrixError> {
    let request = QueryJoinedServersRequest { room_id: room_id.to_owned() };
    match app.rt.bus.call::<QueryJoinedServers>(&request).await {
        Ok(response) => Ok(response.servers.contains(&app.rt.config.global.server_name)),
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The servers to change a membership through, for a room we are not in:
/// those the client named, the one that invited us, the servers we last
/// knew in the room, and the room's creator's (room ids before version 12).
async fn servers_for(
    app: &App,
    room_id: &RoomId,
    current: &Membership,
    named: &[OwnedServerName],
) -> Vec<OwnedServerName> {
    let mut servers = named.to_vec();
    if let Some(event) = &current.event
        && (current.is("invite") || current.is("knock"))
    {
        servers.push(event.sender_id().server_name().to_owned());
    }
    let request = QueryJoinedServersRequest { room_id: room_id.to_owned() };
    if let Ok(known) = app.rt.bus.call::<QueryJoinedServers>(&request).await {
        servers.extend(known.servers);
    }
    if let Some(server) = room_id.server_name() {
        servers.push(server.to_owned());
    }
    servers
}

/// A user's membership of a room, with their member event parsed.
pub struct Membership {
    pub room_exists: bool,
    /// `join`, `invite`, `leave`, `ban`, `knock`; `None` when never a member.
    pub membership: Option<String>,
    pub event: Option<Pdu>,
    /// The user left the room and forgot it.
    pub forgotten: bool,
}

impl Membership {
    pub fn is(&self, membership: &str) -> bool {
        self.membership.as_deref() == Some(membership)
    }

    /// The content of the current member event, as an object.
    fn content(&self) -> Map<String, Value> {
        self.event.as_ref().map(content_of).unwrap_or_default()
    }
}

pub fn content_of(pdu: &Pdu) -> Map<String, Value> {
    serde_json::from_str(pdu.content_json().get()).unwrap_or_default()
}

fn parse_stored(stored: &StoredEvent) -> Result<Pdu, MatrixError> {
    rooms::parse_stored(stored.event_id.clone(), stored.event.clone())
}

pub async fn membership_of(app: &App, room_id: &RoomId, user_id: &UserId) -> Result<Membership, MatrixError> {
    let request = QueryMembershipRequest { room_id: room_id.to_owned(), user_id: user_id.to_owned() };
    let QueryMembershipResponse { room_exists, membership, event, forgotten } =
        app.rt.bus.call::<QueryMembership>(&request).await?;
    let event = event.as_ref().map(parse_stored).transpose()?;
    Ok(Membership { room_exists, membership, event, forgotten })
}

/// The same, for a room that must be known here.
async fn membership_in_known_room(app: &App, room_id: &RoomId, user_id: &UserId) -> Result<Membership, MatrixError> {
    let membership = membership_of(app, room_id, user_id).await?;
    if !membership.room_exists {
        // Only joins, leaves and knocks reach rooms through other servers.
        return Err(MatrixError::not_found("This server knows no such room"));
    }
    Ok(membership)
}

/// A local user's display name and avatar; `None` for users of other
/// servers, whose profiles need federation. NotFound for an unknown local user.
async fn profile_of(app: &App, user_id: &UserId) -> Result<Option<Map<String, Value>>, MatrixError> {
    if user_id.server_name() != app.rt.config.global.server_name {
        return Ok(None);
    }
    match app.rt.bus.call::<QueryProfile>(&QueryProfileRequest { user_id: user_id.to_owned() }).await {
        Ok(profile) => Ok(Some(profile)),
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => {
            Err(MatrixError::not_found(format!("There is no user {user_id}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes the profile's display name and avatar into member content,
/// removing those the profile lacks.
fn set_profile(content: &mut Map<String, Value>, displayname: Option<&str>, avatar_url: Option<&str>) {
    for (field, value) in [("displayname", displayname), ("avatar_url", avatar_url)] {
        match value {
            Some(value) => content.insert(field.to_owned(), value.into()),
            None => content.remove(field),
        };
    }
}

fn profile_text<'a>(profile: Option<&'a Map<String, Value>>, field: &str) -> Option<&'a str> {
    profile?.get(field)?.as_str()
}

/// New member content: `membership`, the profile of the user it is about
/// (joins, invites, knocks) and the reason.
fn new_content(membership: &str, profile: Option<&Map<String, Value>>, reason: Option<String>) -> Map<String, Value> {
    let mut content = Map::new();
    content.insert("membership".into(), membership.into());
    set_profile(&mut content, profile_text(profile, "displayname"), profile_text(profile, "avatar_url"));
    if let Some(reason) = reason {
        content.insert("reason".into(), reason.into());
    }
    content
}

/// Sends `sender`'s member event about `target`, unless it would repeat the
/// current one (same membership, sender and content): then nothing is sent.
async fn send_member(
    app: &App,
    room_id: &RoomId,
    sender: &UserId,
    target: &UserId,
    current: &Membership,
    content: Map<String, Value>,
) -> Result<(), MatrixError> {
    if let Some(event) = &current.event
        && event.sender_id() == sender
        && content_of(event) == content
    {
        return Ok(());
    }
    let builder =
        EventBuilder::new(sender, TimelineEventType::RoomMember, Value::Object(content)).state(target.as_str());
    rooms::send_event(app, room_id, builder, None).await?;
    Ok(())
}

/// `user_id` joins `room_id`: a first join, the acceptance of an invite, or
/// (when already joined) a refresh of their profile in the room. A room this
/// server is not in is joined through `via` or the other servers it knows.
pub async fn join(
    app: &App,
    user_id: &UserId,
    is_guest: bool,
    room_id: &RoomId,
    reason: Option<String>,
    via: &[OwnedServerName],
) -> Result<(), MatrixError> {
    let current = membership_of(app, room_id, user_id).await?;
    if !resident(app, room_id).await? {
        if is_guest {
            return Err(MatrixError::guest_access_forbidden());
        }
        let profile = profile_of(app, user_id).await?;
        let servers = servers_for(app, room_id, &current, via).await;
        return remote_membership::join(
            app,
            user_id,
            room_id,
            &servers,
            &new_content("join", profile.as_ref(), reason),
        )
        .await;
    }
    if current.is("ban") {
        return Err(MatrixError::forbidden("You are banned from this room"));
    }
    if is_guest && !current.is("join") {
        let guest_access = rooms::state_content(app, room_id, "m.room.guest_access", "").await?;
        if guest_access.as_ref().and_then(|c| c["guest_access"].as_str()) != Some("can_join") {
            return Err(MatrixError::guest_access_forbidden());
        }
    }
    let profile = profile_of(app, user_id).await?;
    let content = if current.is("join") {
        // Already joined: the other fields of the join (is_direct, …) stay.
        let mut content = current.content();
        for field in ONE_OFF_FIELDS {
            content.remove(*field);
        }
        set_profile(
            &mut content,
            profile_text(profile.as_ref(), "displayname"),
            profile_text(profile.as_ref(), "avatar_url"),
        );
        if let Some(reason) = reason {
            content.insert("reason".into(), reason.into());
        }
        content
    } else {
        let mut content = new_content("join", profile.as_ref(), reason);
        if !current.is("invite")
            && let Some(authoriser) = restricted_join_authoriser(app, room_id, user_id).await?
        {
            content.insert("join_authorised_via_users_server".into(), authoriser.as_str().into());
        }
        content
    };
    send_member(app, room_id, user_id, user_id, &current, content).await
}

/// For a room whose join rules are `restricted` (or `knock_restricted`) in a
/// room version that has them: the local joined user who vouches for a
/// joiner who is in one of the rooms the rules allow. `None` when the join
/// rules are something else; 403 when the joiner qualifies through no room.
async fn restricted_join_authoriser(
    app: &App,
    room_id: &RoomId,
    user_id: &UserId,
) -> Result<Option<OwnedUserId>, MatrixError> {
    let request = QueryJoinAuthoriserRequest { room_id: room_id.to_owned(), user_id: user_id.to_owned() };
    match app.rt.bus.call::<QueryJoinAuthoriser>(&request).await? {
        JoinAuthoriser::NotRestricted => Ok(None),
        JoinAuthoriser::User(authoriser) => Ok(Some(authoriser)),
        JoinAuthoriser::NotAllowed { .. } => Err(MatrixError::forbidden(
            "You are not invited to this room, nor a member of any room its join rules allow",
        )),
        JoinAuthoriser::NoAuthoriser => {
            Err(MatrixError::forbidden("No member of this server in the room may invite you in"))
        }
    }
}

/// `user_id` leaves `room_id`, or rejects their invite, or withdraws their
/// knock (through the room's servers when this server is not in the room).
pub async fn leave(app: &App, user_id: &UserId, room_id: &RoomId, reason: Option<String>) -> Result<(), MatrixError> {
    let current = membership_of(app, room_id, user_id).await?;
    if !current.room_exists && current.membership.is_none() {
        return Err(MatrixError::not_found("This server knows no such room"));
    }
    if current.membership.is_none() || current.is("ban") {
        return Err(MatrixError::forbidden("You are not a member of this room"));
    }
    if !resident(app, room_id).await? {
        if current.is("leave") {
            // Left already, and nothing of ours is in the room to say it again.
            return Ok(());
        }
        let servers = servers_for(app, room_id, &current, &[]).await;
        let content = new_content("leave", None, reason);
        return match remote_membership::leave(app, user_id, room_id, &servers, &content).await {
            // The inviting server is gone or refuses: the invite (or the
            // knock) is still declined here, as Synapse does, so that it
            // does not hang on forever.
            Err(e) if current.is("invite") || current.is("knock") => {
                tracing::info!(%room_id, error = %e.parts().1, "declining here what the room's servers would not take");
                let event = current.event.as_ref().ok_or_else(|| MatrixError::internal("no membership event"))?;
                remote_membership::leave_here(app, user_id, room_id, event, &content).await
            }
            outcome => outcome,
        };
    }
    send_member(app, room_id, user_id, user_id, &current, new_content("leave", None, reason)).await
}

/// `inviter` invites `invitee`, whose profile goes into the invite.
pub async fn invite(
    app: &App,
    inviter: &UserId,
    room_id: &RoomId,
    invitee: &UserId,
    reason: Option<String>,
) -> Result<(), MatrixError> {
    let current = membership_in_known_room(app, room_id, invitee).await?;
    if current.is("join") {
        return Err(MatrixError::forbidden(format!("{invitee} is already in the room")));
    }
    if current.is("ban") {
        return Err(MatrixError::forbidden(format!("{invitee} is banned from the room")));
    }
    if invitee.server_name() != app.rt.config.global.server_name {
        return invite_remote(app, inviter, room_id, invitee, new_content("invite", None, reason)).await;
    }
    let profile = profile_of(app, invitee).await?;
    send_member(app, room_id, inviter, invitee, &current, new_content("invite", profile.as_ref(), reason)).await
}

/// An invite of a user of another server: their server co-signs it first
/// (federation `/invite`), and only the co-signed event enters the room.
async fn invite_remote(
    app: &App,
    inviter: &UserId,
    room_id: &RoomId,
    invitee: &UserId,
    content: Map<String, Value>,
) -> Result<(), MatrixError> {
    let builder =
        EventBuilder::new(inviter, TimelineEventType::RoomMember, Value::Object(content)).state(invitee.as_str());
    let (version, built, state) = rooms::build_on_latest(app, room_id, &builder).await?;
    rooms::check_auth(&rooms::version_rules(&version)?, &built.to_pdu(), &state)?;
    // Full PDUs, as the spec asks since v1.16.
    let mut filter: Vec<StateFilter> = common::pdu::STRIPPED_STATE_TYPES
        .iter()
        .map(|kind| StateFilter { event_type: (*kind).into(), state_key: Some(String::new()) })
        .collect();
    filter.push(StateFilter { event_type: "m.room.member".into(), state_key: Some(inviter.to_string()) });
    let request = QueryCurrentStateRequest { room_id: room_id.to_owned(), filter: Some(filter) };
    let invite_state =
        app.rt.bus.call::<QueryCurrentState>(&request).await?.state.into_iter().map(|e| RawStrippedState::Pdu(e.event));
    let invite_state: Vec<RawStrippedState> = invite_state.collect();
    let ask = create_invite::v2::Request::new(
        room_id.to_owned(),
        built.event_id.clone(),
        version.clone(),
        built.to_raw(),
        invite_state.clone(),
    );
    let signed = match federation::request(&app.rt.bus, invitee.server_name(), ask.clone()).await {
        Ok(answer) => answer.event,
        Err(e) if e.is_unrecognized() => invite_v1(app, invitee, ask, &built, &invite_state).await?,
        Err(e) => return Err(e.into()),
    };
    let same = common::pdu::received(&signed, &version).is_ok_and(|pdu| pdu.id() == built.event_id);
    if !same {
        return Err(MatrixError::unknown(
            http::StatusCode::BAD_GATEWAY,
            "The invitee's server changed the invite it was asked to sign",
        ));
    }
    let publish = rooms::Publish {
        room_id: room_id.to_owned(),
        event_id: built.event_id,
        event: signed,
        transaction: None,
        resend: 0,
    };
    rooms::publish_inputs_and_wait(app, &version, vec![publish]).await?;
    Ok(())
}

/// The invite through v1, for a server that does not know v2: the bare
/// event with the stripped state in its `unsigned`, answered
/// `[200, {"event": …}]`.
async fn invite_v1(
    app: &App,
    invitee: &UserId,
    v2: create_invite::v2::Request,
    built: &common::pdu::BuiltEvent,
    invite_state: &[RawStrippedState],
) -> Result<Box<serde_json::value::RawValue>, MatrixError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        event: Box<serde_json::value::RawValue>,
    }
    let mut outgoing = federation::encode(invitee.server_name(), v2)?;
    outgoing.uri = outgoing.uri.replacen("/v2/invite/", "/v1/invite/", 1);
    let mut event = serde_json::to_value(&built.object).map_err(MatrixError::internal)?;
    event["unsigned"] = serde_json::json!({ "invite_room_state": invite_state });
    outgoing.body = Some(serde_json::value::to_raw_value(&event).map_err(MatrixError::internal)?);
    let answer: Answer = federation::request_v1(&app.rt.bus, outgoing, federation::DEFAULT_TIMEOUT).await?;
    Ok(answer.event)
}

/// `kicker` removes `target`, who must be joined, invited or knocking.
pub async fn kick(
    app: &App,
    kicker: &UserId,
    room_id: &RoomId,
    target: &UserId,
    reason: Option<String>,
) -> Result<(), MatrixError> {
    let current = membership_in_known_room(app, room_id, target).await?;
    if !(current.is("join") || current.is("invite") || current.is("knock")) {
        return Err(MatrixError::forbidden(format!("{target} is not in the room")));
    }
    send_member(app, room_id, kicker, target, &current, new_content("leave", None, reason)).await
}

pub async fn ban(
    app: &App,
    banner: &UserId,
    room_id: &RoomId,
    target: &UserId,
    reason: Option<String>,
) -> Result<(), MatrixError> {
    let current = membership_in_known_room(app, room_id, target).await?;
    send_member(app, room_id, banner, target, &current, new_content("ban", None, reason)).await
}

/// Lifts a ban; anything else would be a kick or nothing, so it is refused.
pub async fn unban(
    app: &App,
    unbanner: &UserId,
    room_id: &RoomId,
    target: &UserId,
    reason: Option<String>,
) -> Result<(), MatrixError> {
    let current = membership_in_known_room(app, room_id, target).await?;
    if !current.is("ban") {
        return Err(MatrixError::new(
            http::StatusCode::FORBIDDEN,
            ruma::api::error::ErrorKind::BadState,
            format!("{target} is not banned"),
        ));
    }
    send_member(app, room_id, unbanner, target, &current, new_content("leave", None, reason)).await
}

pub async fn knock(
    app: &App,
    user_id: &UserId,
    room_id: &RoomId,
    reason: Option<String>,
    via: &[OwnedServerName],
) -> Result<(), MatrixError> {
    let current = membership_of(app, room_id, user_id).await?;
    if current.is("ban") {
        return Err(MatrixError::forbidden("You are banned from this room"));
    }
    let profile = profile_of(app, user_id).await?;
    if !resident(app, room_id).await? {
        let servers = servers_for(app, room_id, &current, via).await;
        let content = new_content("knock", profile.as_ref(), reason);
        return remote_membership::knock(app, user_id, room_id, &servers, &content).await;
    }
    send_member(app, room_id, user_id, user_id, &current, new_content("knock", profile.as_ref(), reason)).await
}

/// Sends a new join with the user's current display name and avatar into a
/// room they are joined to, keeping the rest of their join; nothing when the
/// join already shows them or the user is no longer joined.
pub async fn refresh_profile(
    app: &App,
    user_id: &UserId,
    room_id: &RoomId,
    displayname: Option<&str>,
    avatar_url: Option<&str>,
) -> Result<(), MatrixError> {
    let current = membership_of(app, room_id, user_id).await?;
    if !current.is("join") {
        return Ok(());
    }
    let old = current.content();
    let shown = |field: &str| old.get(field).and_then(Value::as_str);
    if shown("displayname") == displayname && shown("avatar_url") == avatar_url {
        return Ok(());
    }
    let mut content = old;
    for field in ONE_OFF_FIELDS {
        content.remove(*field);
    }
    set_profile(&mut content, displayname, avatar_url);
    send_member(app, room_id, user_id, user_id, &current, content).await
}

/// A deactivated user leaves every room they are in, rejects their invites
/// and withdraws their knocks. The account is already gone, so a failure is
/// logged rather than answered.
pub async fn leave_everything(app: &App, user_id: &UserId) {
    let request = QueryRoomsForUserRequest {
        user_id: user_id.to_owned(),
        memberships: vec!["join".into(), "invite".into(), "knock".into()],
    };
    let rooms = match app.rt.bus.call::<QueryRoomsForUser>(&request).await {
        Ok(rooms) => rooms.room_ids,
        Err(e) => {
            tracing::error!(user = %user_id, error = %e, "cannot list the rooms of a deactivated user");
            return;
        }
    };
    for room_id in rooms {
        if let Err(e) = leave(app, user_id, &room_id, None).await {
            tracing::error!(user = %user_id, room = %room_id, error = ?e, "a deactivated user cannot leave a room");
        }
    }
}

/// A request whose body names a user (`user_id`): a malformed id is 400
/// M_INVALID_PARAM, as the spec and clients expect, rather than the
/// M_BAD_JSON of any other malformed body.
pub struct NamingUser<T>(pub Ruma<T>);

impl<T, S> FromRequest<S> for NamingUser<T>
where
    T: IncomingRequest + Send,
    T::Authentication: TokenUse,
    S: Send + Sync,
{
    type Rejection = MatrixError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let limit = parts
            .extensions
            .get::<std::sync::Arc<HttpContext>>()
            .map(|ctx| ctx.max_body)
            .ok_or_else(|| MatrixError::internal("HttpContext layer missing"))?;
        let bytes = read_body(body, limit).await?;
        let request = Request::from_parts(parts, Body::from(bytes.clone()));
        match Ruma::<T>::from_request(request, state).await {
            Ok(ruma) => Ok(Self(ruma)),
            Err(e) if e.status() == http::StatusCode::BAD_REQUEST && names_malformed_user(&bytes) => {
                Err(MatrixError::invalid_param("user_id is not a valid user ID"))
            }
            Err(e) => Err(e),
        }
    }
}

fn names_malformed_user(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|body| body.get("user_id")?.as_str().map(|id| UserId::parse(id).is_err()))
        .unwrap_or(false)
}
