CREATE TABLE clientapi_reports (
    id {autoinc},
    room_id TEXT NOT NULL,
    event_id TEXT,
    reporter TEXT NOT NULL,
    reason TEXT,
    score BIGINT,
    received_ts BIGINT NOT NULL
);
CREATE INDEX clientapi_reports_room ON clientapi_reports (room_id);
