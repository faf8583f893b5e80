-- The event published under a transaction, so that a retry on another
-- instance, after the first died before hearing the verdict, can publish
-- the same event again and hear it.
ALTER TABLE clientapi_transactions ADD COLUMN event_json TEXT;
