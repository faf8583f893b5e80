CREATE TABLE syncapi_presence (
    user_id TEXT PRIMARY KEY,
    presence TEXT NOT NULL,
    status_msg TEXT,
    last_active_ts BIGINT NOT NULL,
    currently_active BIGINT NOT NULL,
    pos BIGINT NOT NULL
);
CREATE INDEX syncapi_presence_pos ON syncapi_presence (pos);
CREATE TABLE syncapi_presence_position (
    id BIGINT PRIMARY KEY,
    pos BIGINT NOT NULL
);
INSERT INTO syncapi_presence_position (id, pos) VALUES (1, 0);
