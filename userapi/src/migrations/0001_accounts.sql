-- Flags are BIGINT 0/1: sqlx's Any driver cannot decode SQLite booleans.
CREATE TABLE userapi_accounts (
    user_id TEXT PRIMARY KEY,
    password_hash TEXT,
    is_guest BIGINT NOT NULL,
    is_admin BIGINT NOT NULL,
    deactivated BIGINT NOT NULL,
    created_ts BIGINT NOT NULL
);
CREATE TABLE userapi_devices (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    display_name TEXT,
    access_token_hash TEXT NOT NULL UNIQUE,
    refresh_token_hash TEXT UNIQUE,
    access_expires_ts BIGINT,
    last_seen_ip TEXT,
    last_seen_ts BIGINT,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);
CREATE TABLE userapi_login_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE TABLE userapi_profile_fields (
    user_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (user_id, field)
);
CREATE TABLE userapi_profile_changes (
    id {autoinc},
    user_id TEXT NOT NULL,
    changed_ts BIGINT NOT NULL
);
CREATE TABLE userapi_account_data (
    id {autoinc},
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    data_type TEXT NOT NULL,
    content TEXT NOT NULL,
    UNIQUE (user_id, room_id, data_type)
);
CREATE INDEX userapi_account_data_by_user ON userapi_account_data (user_id, id);
CREATE TABLE userapi_filters (
    id {autoinc},
    user_id TEXT NOT NULL,
    filter TEXT NOT NULL
);
