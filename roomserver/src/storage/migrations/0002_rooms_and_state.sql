-- Events before this migration were stored without authorisation or state.
DROP TABLE roomserver_events;
CREATE TABLE roomserver_events (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    state_key TEXT,
    depth BIGINT NOT NULL,
    -- The PDU; pruned once an accepted redaction applies to it.
    json TEXT NOT NULL,
    redacted BIGINT NOT NULL,
    -- 0 accepted, 1 soft-failed, 2 rejected, 3 outlier.
    status BIGINT NOT NULL,
    -- Snapshots of the state before and after the event (NULL for outliers and rejected events).
    state_before BIGINT,
    state_after BIGINT,
    -- The room's order of new events; NULL for outliers, rejected and historical events.
    stream_ordering BIGINT,
    received_ts BIGINT NOT NULL
);
CREATE INDEX roomserver_events_by_room ON roomserver_events (room_id, stream_ordering);
CREATE TABLE roomserver_rooms (
    room_id TEXT PRIMARY KEY,
    room_version TEXT NOT NULL,
    -- The current state; NULL while the room is only known from outliers.
    current_state BIGINT,
    -- JSON array of the forward extremities.
    latest_event_ids TEXT NOT NULL,
    max_depth BIGINT NOT NULL,
    last_stream_ordering BIGINT NOT NULL
);
-- State snapshots are deltas against a parent snapshot, so consecutive
-- states share everything they have in common; every few generations a
-- snapshot is written in full to bound the chain a read has to walk.
CREATE TABLE roomserver_state_snapshots (
    id {autoinc},
    room_id TEXT NOT NULL,
    parent BIGINT,
    chain_length BIGINT NOT NULL
);
CREATE TABLE roomserver_state_entries (
    snapshot BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    -- NULL: the key is absent from this snapshot though present in its parent.
    event_id TEXT,
    PRIMARY KEY (snapshot, event_type, state_key)
);
-- Current memberships, for the questions "who is in this room" and "which rooms is this user in".
CREATE TABLE roomserver_memberships (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    membership TEXT NOT NULL,
    event_id TEXT NOT NULL,
    is_local BIGINT NOT NULL,
    forgotten BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX roomserver_memberships_by_user ON roomserver_memberships (user_id, membership);
-- Redactions whose target is not (yet) known here, applied when it arrives.
CREATE TABLE roomserver_pending_redactions (
    redaction_id TEXT PRIMARY KEY,
    redacts TEXT NOT NULL,
    room_id TEXT NOT NULL
);
CREATE INDEX roomserver_pending_redactions_by_target ON roomserver_pending_redactions (redacts);
