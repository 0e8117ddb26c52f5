-- tunerpool catalog schema, version 4: the events log.
-- What happened that an operator may want to look back at: syncs, failovers,
-- refusals, accounts rejected. Kept to the newest 10 000 rows (trimmed by the
-- store as it writes); messages never contain passwords.

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,                 -- unix seconds
    level       TEXT    NOT NULL CHECK (level IN ('info', 'warn', 'error')),
    kind        TEXT    NOT NULL,                 -- sync, account, session, failover, refused
    message     TEXT    NOT NULL,
    provider_id INTEGER,                          -- not foreign keys: the log outlives what it names
    account_id  INTEGER,
    channel_id  INTEGER
);
CREATE INDEX events_level ON events (level, id);
