-- Each event's origin_server_ts, for finding the event nearest a time
-- (federation /timestamp_to_event); NULL for events stored before it was kept.
ALTER TABLE roomserver_events ADD COLUMN origin_server_ts BIGINT;
CREATE INDEX roomserver_events_by_ts ON roomserver_events (room_id, origin_server_ts);
