-- Flags are BIGINT 0/1, as in 0001.
-- Where each evaluated room event stands in its room, so that a receipt
-- for any of them can say which notifications it covers.
CREATE TABLE userapi_event_orderings (
    event_id TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL
);
-- One row per event that notified a local user; thread_id '' is the main timeline.
CREATE TABLE userapi_notifications (
    id {autoinc},
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    thread_id TEXT NOT NULL,
    event TEXT NOT NULL,
    actions TEXT NOT NULL,
    highlight BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    is_read BIGINT NOT NULL,
    UNIQUE (user_id, event_id)
);
CREATE INDEX userapi_notifications_by_room ON userapi_notifications (user_id, room_id, stream_ordering);
-- Numbers the changes of counts published on OutputNotificationData.
CREATE TABLE userapi_notification_changes (
    id {autoinc},
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    changed_ts BIGINT NOT NULL
);
-- Pushes not yet accepted by their gateway, one row per pusher and event.
CREATE TABLE userapi_push_queue (
    id {autoinc},
    user_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    notification TEXT NOT NULL,
    tweaks TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_ts BIGINT NOT NULL,
    created_ts BIGINT NOT NULL
);
CREATE INDEX userapi_push_queue_by_pusher ON userapi_push_queue (app_id, pushkey, user_id, id);
