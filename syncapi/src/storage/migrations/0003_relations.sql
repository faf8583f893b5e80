-- Events that relate to another one (content.m.relates_to), for /relations and /threads.
CREATE TABLE syncapi_relations (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    relates_to TEXT NOT NULL,
    rel_type TEXT NOT NULL,
    event_type TEXT NOT NULL,
    sender TEXT NOT NULL,
    pos BIGINT NOT NULL
);
CREATE INDEX syncapi_relations_by_parent ON syncapi_relations (relates_to, pos);
CREATE INDEX syncapi_relations_by_room ON syncapi_relations (room_id, rel_type, pos);
-- For /timestamp_to_event.
CREATE INDEX syncapi_room_events_by_ts ON syncapi_room_events (room_id, origin_server_ts);
