CREATE TABLE roomserver_events (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    json TEXT NOT NULL,
    received_ts BIGINT NOT NULL
);
CREATE INDEX roomserver_events_room ON roomserver_events (room_id);
