-- History fetched from other servers goes below every event already here:
-- its positions count down from zero, the newest first.
INSERT INTO syncapi_positions (kind, pos) VALUES ('backfill', 0);
