CREATE TABLE clientapi_uia_sessions (
    session_id TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    user_id TEXT,
    completed TEXT NOT NULL,
    created_ts BIGINT NOT NULL
);
CREATE TABLE clientapi_registration_nonces (
    nonce TEXT PRIMARY KEY,
    created_ts BIGINT NOT NULL
);
