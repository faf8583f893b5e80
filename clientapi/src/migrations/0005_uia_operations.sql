-- What a UIA session authorises beyond its kind (e.g. which devices to delete).
ALTER TABLE clientapi_uia_sessions ADD COLUMN detail TEXT NOT NULL DEFAULT '';
