-- Each user's unread notification counts per room, as userapi last said.
CREATE TABLE syncapi_notification_counts (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    notification_count BIGINT NOT NULL,
    highlight_count BIGINT NOT NULL,
    -- JSON: thread root id → {notification_count, highlight_count}.
    threads TEXT NOT NULL,
    -- userapi's position of the change, to keep only the latest.
    source_pos BIGINT NOT NULL,
    pos BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);
CREATE INDEX syncapi_notification_counts_by_user ON syncapi_notification_counts (user_id, pos);
INSERT INTO syncapi_positions (kind, pos) VALUES ('notifications', 0);
