//! userapi's contracts: the facts it publishes (account data, profiles,
//! device key changes, unread counts) and the questions it answers about
//! accounts, sessions, devices, profiles, account data and filters.

use ruma::{OwnedDeviceId, OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{
    bus::{Stream, StreamMessage},
    rpc_method,
};

/// Core NATS subject on which userapi announces revoked access tokens, so
/// that every instance caching tokens drops them at once.
pub fn revoked_tokens_subject(prefix: &str) -> String {
    format!("{prefix}.userapi.revoked_tokens")
}

/// The payload on [`revoked_tokens_subject`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevokedTokens {
    pub token_hashes: Vec<String>,
}

/// A user's profile changed, so that their member events can follow.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputProfileUpdate {
    pub user_id: OwnedUserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub displayname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// userapi's position for this change; unique.
    pub stream_pos: i64,
}

impl StreamMessage for OutputProfileUpdate {
    const STREAM: Stream = Stream::OutputProfileUpdate;

    fn msg_id(&self) -> String {
        format!("profile:{}", self.stream_pos)
    }
}

/// A user's account data changed (global when `room_id` is absent).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputClientData {
    pub user_id: OwnedUserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<OwnedRoomId>,
    pub data_type: String,
    /// userapi's position for this change; unique per user.
    pub stream_pos: i64,
}

impl StreamMessage for OutputClientData {
    const STREAM: Stream = Stream::OutputClientData;

    fn msg_id(&self) -> String {
        format!("{}:{}", self.user_id, self.stream_pos)
    }
}

/// A user's device list or cross-signing keys changed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputKeyChangeEvent {
    pub user_id: OwnedUserId,
    pub change: KeyChange,
    /// userapi's position for this change; unique.
    pub stream_pos: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyChange {
    DeviceKeys { device_id: ruma::OwnedDeviceId, deleted: bool },
    CrossSigningKeys,
}

impl StreamMessage for OutputKeyChangeEvent {
    const STREAM: Stream = Stream::OutputKeyChangeEvent;

    fn msg_id(&self) -> String {
        format!("keys:{}", self.stream_pos)
    }
}

/// A user's unread notification counts in a room changed. The counts are
/// absolute (what the user has unread now), so a consumer keeps the latest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputNotificationData {
    pub user_id: OwnedUserId,
    pub room_id: OwnedRoomId,
    /// Outside threads (the main timeline and unthreaded).
    pub notification_count: u64,
    pub highlight_count: u64,
    /// Per thread root event id; threads with nothing unread are left out.
    #[serde(default)]
    pub threads: std::collections::BTreeMap<String, ThreadCounts>,
    /// userapi's position for this change; unique.
    pub stream_pos: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadCounts {
    pub notification_count: u64,
    pub highlight_count: u64,
}

impl StreamMessage for OutputNotificationData {
    const STREAM: Stream = Stream::OutputNotificationData;

    fn msg_id(&self) -> String {
        format!("notif:{}", self.stream_pos)
    }
}

// ---- Questions ----

/// Who holds an access token (given by its hash); `ip` is recorded as the
/// device's last seen address.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryAccessTokenRequest {
    pub token_hash: String,
    #[serde(default)]
    pub ip: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenOwner {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    pub is_guest: bool,
    /// When the token stops working (refreshable tokens only), ms since the epoch.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
}

rpc_method!(
    /// Unknown, revoked or expired tokens are `UnknownToken`.
    QueryAccessToken: "userapi"."query_access_token", retry = true, QueryAccessTokenRequest => TokenOwner
);

/// Whether a registration with this username and password could succeed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckRegistrationRequest {
    pub localpart: Option<String>,
    pub password: Option<String>,
}

rpc_method!(
    /// `InvalidUsername`, `UserInUse` or `WeakPassword` when not.
    CheckRegistration: "userapi"."check_registration", retry = true, CheckRegistrationRequest => ()
);

/// A device to log in, for a new session.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NewSession {
    /// An existing device of the user is logged in again (its old tokens stop working).
    pub device_id: Option<OwnedDeviceId>,
    pub display_name: Option<String>,
    /// Whether to issue a refresh token and an expiring access token.
    pub refreshable: bool,
    pub ip: Option<String>,
}

/// A logged-in device's credentials; the tokens are shown only here.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateAccountRequest {
    /// `None`: a fresh one is chosen (numeric for guests).
    pub localpart: Option<String>,
    pub password: Option<String>,
    pub guest: bool,
    pub admin: bool,
    pub display_name: Option<String>,
    /// Log a device in at once (registration without `inhibit_login`).
    pub session: Option<NewSession>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreatedAccount {
    pub user_id: OwnedUserId,
    pub session: Option<Session>,
}

rpc_method!(CreateAccount: "userapi"."create_account", retry = false, CreateAccountRequest => CreatedAccount);

/// Turns a guest account into a full one with a password, keeping its user id.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpgradeGuestRequest {
    pub user_id: OwnedUserId,
    pub password: String,
    pub session: Option<NewSession>,
}

rpc_method!(
    /// `Forbidden` when the account is not a guest's.
    UpgradeGuest: "userapi"."upgrade_guest", retry = false, UpgradeGuestRequest => CreatedAccount
);

/// A password check, for login and for user-interactive authentication.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthenticateRequest {
    /// A localpart or a full user id of this server.
    pub user: String,
    pub password: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Authenticated {
    pub user_id: OwnedUserId,
}

rpc_method!(
    /// `Forbidden` for an unknown user or a wrong password, `UserDeactivated`.
    Authenticate: "userapi"."authenticate", retry = true, AuthenticateRequest => Authenticated
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateSessionRequest {
    pub user_id: OwnedUserId,
    pub session: NewSession,
}

rpc_method!(CreateSession: "userapi"."create_session", retry = false, CreateSessionRequest => Session);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateLoginTokenRequest {
    pub user_id: OwnedUserId,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginToken {
    pub token: String,
    pub expires_in_ms: u64,
}

rpc_method!(CreateLoginToken: "userapi"."create_login_token", retry = false, CreateLoginTokenRequest => LoginToken);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsumeLoginTokenRequest {
    pub token: String,
}

rpc_method!(
    /// A login token works once; `Forbidden` when unknown, used or expired.
    ConsumeLoginToken: "userapi"."consume_login_token", retry = false, ConsumeLoginTokenRequest => Authenticated
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefreshSessionRequest {
    pub refresh_token: String,
}

rpc_method!(
    /// New tokens for the device; the old ones stop working.
    RefreshSession: "userapi"."refresh_session", retry = false, RefreshSessionRequest => Session
);

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceSelection {
    All { except: Option<OwnedDeviceId> },
    Only(Vec<OwnedDeviceId>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeleteDevicesRequest {
    pub user_id: OwnedUserId,
    pub devices: DeviceSelection,
}

rpc_method!(
    /// Deletes devices and revokes their tokens; unknown devices are ignored.
    DeleteDevices: "userapi"."delete_devices", retry = true, DeleteDevicesRequest => ()
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetPasswordRequest {
    pub user_id: OwnedUserId,
    pub password: String,
    /// Log out every device but `except_device`.
    pub logout_devices: bool,
    pub except_device: Option<OwnedDeviceId>,
}

rpc_method!(SetPassword: "userapi"."set_password", retry = true, SetPasswordRequest => ());

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeactivateRequest {
    pub user_id: OwnedUserId,
    /// Also forget the profile.
    pub erase: bool,
}

rpc_method!(Deactivate: "userapi"."deactivate", retry = true, DeactivateRequest => ());

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryDevicesRequest {
    pub user_id: OwnedUserId,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Device {
    pub device_id: OwnedDeviceId,
    pub display_name: Option<String>,
    pub last_seen_ip: Option<String>,
    pub last_seen_ts: Option<i64>,
}

rpc_method!(QueryDevices: "userapi"."query_devices", retry = true, QueryDevicesRequest => Vec<Device>);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpdateDeviceRequest {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    pub display_name: Option<String>,
}

rpc_method!(
    /// `NotFound` when the user has no such device.
    UpdateDevice: "userapi"."update_device", retry = true, UpdateDeviceRequest => ()
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryProfileRequest {
    pub user_id: OwnedUserId,
}

rpc_method!(
    /// Every profile field of a local user; `NotFound` when there is no such user.
    QueryProfile: "userapi"."query_profile", retry = true, QueryProfileRequest => serde_json::Map<String, serde_json::Value>
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetProfileFieldRequest {
    pub user_id: OwnedUserId,
    pub field: String,
    /// `None` removes the field.
    pub value: Option<serde_json::Value>,
}

rpc_method!(
    /// `BadRequest` when the profile would grow past its limit.
    SetProfileField: "userapi"."set_profile_field", retry = true, SetProfileFieldRequest => ()
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryAccountDataRequest {
    pub user_id: OwnedUserId,
    pub room_id: Option<OwnedRoomId>,
    pub data_type: String,
}

rpc_method!(
    /// The content; `NotFound` when none is stored.
    QueryAccountData: "userapi"."query_account_data", retry = true, QueryAccountDataRequest => Box<RawValue>
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetAccountDataRequest {
    pub user_id: OwnedUserId,
    pub room_id: Option<OwnedRoomId>,
    pub data_type: String,
    pub content: Box<RawValue>,
}

rpc_method!(SetAccountData: "userapi"."set_account_data", retry = true, SetAccountDataRequest => ());

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateFilterRequest {
    pub user_id: OwnedUserId,
    pub filter: Box<RawValue>,
}

rpc_method!(CreateFilter: "userapi"."create_filter", retry = false, CreateFilterRequest => String);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryFilterRequest {
    pub user_id: OwnedUserId,
    pub filter_id: String,
}

rpc_method!(
    /// Filters never change once created, so answers may be cached.
    QueryFilter: "userapi"."query_filter", retry = true, QueryFilterRequest => Box<RawValue>
);

// ---- Push: pushers and notifications ----

/// A pusher as `GET /pushers` shows it (the client-server `Pusher` object).
pub type PusherJson = serde_json::Value;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryPushersRequest {
    pub user_id: OwnedUserId,
}

rpc_method!(QueryPushers: "userapi"."query_pushers", retry = true, QueryPushersRequest => Vec<PusherJson>);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetPusherRequest {
    pub user_id: OwnedUserId,
    /// The device whose access token set the pusher: deleting the device deletes it.
    pub device_id: OwnedDeviceId,
    /// The body of `POST /pushers/set` as the client sent it (validated by clientapi).
    pub pusher: serde_json::Value,
}

rpc_method!(
    /// Creates, replaces (same app_id + pushkey) or, with `kind: null`, deletes a pusher.
    SetPusher: "userapi"."set_pusher", retry = true, SetPusherRequest => ()
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryNotificationsRequest {
    pub user_id: OwnedUserId,
    /// `next_token` of an earlier page.
    #[serde(default)]
    pub from: Option<String>,
    pub limit: u32,
    pub only_highlight: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryNotificationsResponse {
    /// `Notification` objects as `GET /notifications` shows them, newest first.
    pub notifications: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

rpc_method!(
    QueryNotifications: "userapi"."query_notifications", retry = true,
    QueryNotificationsRequest => QueryNotificationsResponse
);
