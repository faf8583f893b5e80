-- Stream positions, one counter per kind of sync data; a sync token carries one of each.
CREATE TABLE syncapi_positions (
    kind TEXT PRIMARY KEY,
    pos BIGINT NOT NULL
);
INSERT INTO syncapi_positions (kind, pos) VALUES ('events', 0);
INSERT INTO syncapi_positions (kind, pos) VALUES ('receipts', 0);
INSERT INTO syncapi_positions (kind, pos) VALUES ('typing', 0);
INSERT INTO syncapi_positions (kind, pos) VALUES ('account_data', 0);
INSERT INTO syncapi_positions (kind, pos) VALUES ('to_device', 0);
-- Room events in the order this server learnt of them ("events" positions).
CREATE TABLE syncapi_room_events (
    pos BIGINT PRIMARY KEY,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    state_key TEXT,
    sender TEXT NOT NULL,
    -- The PDU; pruned once redacted, with the redaction in redacted_because.
    json TEXT NOT NULL,
    redacted_because TEXT,
    -- Backfilled history: served by /messages, never in a sync timeline.
    historical BIGINT NOT NULL,
    -- m.room.history_visibility when the event arrived.
    visibility TEXT NOT NULL,
    -- The sending device's transaction, echoed to that device only.
    txn_device TEXT,
    txn_id TEXT,
    -- JSON arrays: state event ids the event added to and removed from the current state.
    adds TEXT NOT NULL,
    removes TEXT NOT NULL,
    origin_server_ts BIGINT NOT NULL
);
CREATE INDEX syncapi_room_events_by_room ON syncapi_room_events (room_id, pos);
-- Every state event that was ever in a room's current state, by id.
CREATE TABLE syncapi_state_events (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    json TEXT NOT NULL
);
CREATE TABLE syncapi_current_state (
    room_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    -- For m.room.member: the membership.
    membership TEXT,
    pos BIGINT NOT NULL,
    PRIMARY KEY (room_id, event_type, state_key)
);
CREATE INDEX syncapi_current_state_by_member ON syncapi_current_state (state_key, membership);
-- Each change of a user's membership, to answer "what changed since".
CREATE TABLE syncapi_membership_changes (
    pos BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    membership TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (pos, user_id)
);
CREATE INDEX syncapi_membership_changes_by_user ON syncapi_membership_changes (user_id, pos);
CREATE INDEX syncapi_membership_changes_by_room ON syncapi_membership_changes (room_id, user_id, pos);
-- Invites of local users, with the stripped state they see.
CREATE TABLE syncapi_invites (
    event_id TEXT PRIMARY KEY,
    pos BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    json TEXT NOT NULL,
    invite_room_state TEXT NOT NULL,
    retired BIGINT NOT NULL
);
CREATE INDEX syncapi_invites_by_user ON syncapi_invites (user_id, pos);
CREATE TABLE syncapi_receipts (
    pos BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    receipt_type TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
);
CREATE INDEX syncapi_receipts_by_room ON syncapi_receipts (room_id, pos);
CREATE INDEX syncapi_receipts_by_pos ON syncapi_receipts (pos);
CREATE TABLE syncapi_typing (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    expires_ts BIGINT NOT NULL,
    pos BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX syncapi_typing_by_room ON syncapi_typing (room_id, pos);
CREATE INDEX syncapi_typing_by_pos ON syncapi_typing (pos);
CREATE TABLE syncapi_account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    data_type TEXT NOT NULL,
    pos BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, data_type)
);
CREATE INDEX syncapi_account_data_by_pos ON syncapi_account_data (user_id, pos);
CREATE TABLE syncapi_send_to_device (
    pos BIGINT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    event_type TEXT NOT NULL,
    content TEXT NOT NULL,
    message_id TEXT NOT NULL,
    UNIQUE (user_id, device_id, message_id)
);
CREATE INDEX syncapi_send_to_device_by_device ON syncapi_send_to_device (user_id, device_id, pos);
