CREATE TABLE clientapi_transactions (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    event_id TEXT,
    accepted BIGINT NOT NULL,
    claimed_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);
