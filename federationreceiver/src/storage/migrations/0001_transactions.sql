-- Transactions received (PUT /send), so that a repeat gets the first answer
-- and its PDUs are not processed twice.
CREATE TABLE federationreceiver_transactions (
    origin TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    -- The /send response body; NULL while the first copy is being processed.
    response TEXT,
    received_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, txn_id)
);
CREATE INDEX federationreceiver_transactions_by_age ON federationreceiver_transactions (received_ts);
