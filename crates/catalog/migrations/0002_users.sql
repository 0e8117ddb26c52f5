-- Downstream users (the logins of tunerpool's own M3U / Xtream / HDHomeRun
-- outputs) and what those outputs need to keep.

CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    username        TEXT    NOT NULL UNIQUE,
    password_hash   TEXT    NOT NULL,          -- argon2id PHC string; never the password
    enabled         INTEGER NOT NULL DEFAULT 1,
    expires_at      INTEGER,                   -- unix seconds; NULL = never
    max_connections INTEGER NOT NULL DEFAULT 0 CHECK (max_connections >= 0), -- 0 = no limit of its own
    allowed_groups  TEXT,                      -- JSON array of group ids; NULL = every group
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- Episodes of Xtream series, learned when a client asks for a series' info
-- (providers list them only per series). Clients see episode id
-- 1 000 000 000 + id, so that it never collides with an M3U episode, which
-- lives in `series`.
CREATE TABLE episodes (
    id                  INTEGER PRIMARY KEY,
    series_id           INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    upstream_id         INTEGER NOT NULL,      -- the provider's episode stream id
    name                TEXT    NOT NULL,
    container_extension TEXT,
    UNIQUE (series_id, upstream_id)
);

-- One row: facts about this installation. device_id is the HDHomeRun
-- DeviceID base, stable for the life of the data dir.
CREATE TABLE instance (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    device_id TEXT    NOT NULL
);
INSERT INTO instance (id, device_id) VALUES (1, upper(hex(randomblob(4))));
