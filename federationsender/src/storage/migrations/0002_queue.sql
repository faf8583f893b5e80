-- The servers joined to each room, by the member event that joined them:
-- who a room's events go to.
CREATE TABLE federationsender_joined_hosts (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    server_name TEXT NOT NULL
);
CREATE INDEX federationsender_joined_hosts_by_room ON federationsender_joined_hosts (room_id);
-- Events waiting to be sent, once each however many servers they go to.
CREATE TABLE federationsender_pdus (
    event_id TEXT PRIMARY KEY,
    json TEXT NOT NULL
);
-- Per destination, the events it has not acknowledged yet, in order.
CREATE TABLE federationsender_queue (
    id {autoinc},
    destination TEXT NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    UNIQUE (destination, event_id)
);
CREATE INDEX federationsender_queue_by_destination ON federationsender_queue (destination, id);
CREATE INDEX federationsender_queue_by_event ON federationsender_queue (event_id);
-- Destinations that failed: when to try again.
CREATE TABLE federationsender_destinations (
    destination TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    retry_at_ms BIGINT NOT NULL
);
