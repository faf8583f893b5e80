-- The push work reads this table too (userapi/src/push/): keep its shape.
CREATE TABLE userapi_pushers (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    app_display_name TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag TEXT,
    lang TEXT NOT NULL,
    data TEXT NOT NULL, -- JSON: url, format, ...
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (app_id, pushkey, user_id)
);
