-- State that changed just before an event rather than by it: the state a
-- resolution brought in, or the state a room was joined with through another
-- server. At its own position, below the event's, so that the state at the
-- start of a timeline beginning with the event includes it.
CREATE TABLE syncapi_prior_state_changes (
    pos BIGINT PRIMARY KEY,
    room_id TEXT NOT NULL,
    adds TEXT NOT NULL,
    removes TEXT NOT NULL
);
CREATE INDEX syncapi_prior_state_changes_by_room ON syncapi_prior_state_changes (room_id, pos);
