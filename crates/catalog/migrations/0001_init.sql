-- tunerpool catalog schema, version 1.
-- Ids are INTEGER PRIMARY KEYs that survive re-syncs: upstream entries are
-- upserted on (provider_id, upstream_key) and never deleted and re-created
-- while the provider keeps listing them.

CREATE TABLE providers (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL CHECK (kind IN ('xtream', 'm3u', 'agtv')),
    url             TEXT    NOT NULL,          -- xtream: panel base URL; m3u/agtv: playlist URL or file path
    epg_url         TEXT,
    user_agent      TEXT,
    priority        INTEGER NOT NULL DEFAULT 0,
    max_streams     INTEGER CHECK (max_streams IS NULL OR max_streams >= 0), -- cap over all its accounts
    enabled         INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL,
    sync_gen        INTEGER NOT NULL DEFAULT 0,
    last_sync_at    INTEGER,
    last_sync_ok    INTEGER,
    last_sync_error TEXT,
    last_sync_ms    INTEGER,
    live_count      INTEGER NOT NULL DEFAULT 0,
    vod_count       INTEGER NOT NULL DEFAULT 0,
    series_count    INTEGER NOT NULL DEFAULT 0,
    skipped_count   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE accounts (
    id              INTEGER PRIMARY KEY,
    provider_id     INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    server_url      TEXT,                      -- NULL: the provider's URL
    username        TEXT,
    password        TEXT,
    search_pattern  TEXT,                      -- generic M3U accounts: regex on the primary's URL
    replace_pattern TEXT,
    max_streams     INTEGER CHECK (max_streams IS NULL OR max_streams >= 0), -- set by hand; NULL = detected
    priority        INTEGER NOT NULL DEFAULT 0,
    enabled         INTEGER NOT NULL DEFAULT 1,
    is_primary      INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    -- details, from player_api.php (seed 004)
    auth            INTEGER,
    status          TEXT,
    exp_date        INTEGER,
    is_trial        INTEGER,
    max_connections INTEGER,
    active_cons     INTEGER,
    last_checked    INTEGER,
    last_error      TEXT,
    UNIQUE (provider_id, username)
);
CREATE UNIQUE INDEX accounts_one_primary ON accounts (provider_id) WHERE is_primary = 1;

CREATE TABLE groups (
    id           INTEGER PRIMARY KEY,
    provider_id  INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL CHECK (kind IN ('live', 'movie', 'series')),
    upstream_key TEXT    NOT NULL,             -- xtream category_id; m3u group title
    name         TEXT    NOT NULL,
    position     INTEGER NOT NULL DEFAULT 0,
    sync_gen     INTEGER NOT NULL,
    UNIQUE (provider_id, kind, upstream_key)
);

-- A live channel as one provider lists it. It is also what clients see as a
-- channel (same id), unless it was merged into another channel as a further
-- source (see channel_sources).
CREATE TABLE streams (
    id             INTEGER PRIMARY KEY,
    provider_id    INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    upstream_key   TEXT    NOT NULL,           -- xtream stream_id; m3u tvg-id, else URL (+ '#n' for repeats)
    upstream_id    INTEGER,                    -- xtream stream_id
    name           TEXT    NOT NULL,
    group_id       INTEGER REFERENCES groups(id) ON DELETE SET NULL,
    tvg_id         TEXT,
    tvg_name       TEXT,
    logo           TEXT,
    chno           TEXT,
    url            TEXT,                       -- m3u: the stream URL; xtream: NULL (built per account)
    catchup        TEXT,
    catchup_days   INTEGER,
    catchup_source TEXT,
    headers        TEXT,                       -- JSON object: user-agent, referer
    position       INTEGER NOT NULL,
    hidden         INTEGER NOT NULL DEFAULT 0, -- set by the operator; a sync never touches it
    first_gen      INTEGER NOT NULL,           -- sync generation that first saw it
    sync_gen       INTEGER NOT NULL,           -- sync generation that last saw it
    UNIQUE (provider_id, upstream_key)
);

-- Further sources of a channel (the same channel at another provider), tried
-- in order after the channel's own stream. A stream listed here as stream_id
-- is not a channel of its own.
CREATE TABLE channel_sources (
    channel_id INTEGER NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    stream_id  INTEGER NOT NULL UNIQUE REFERENCES streams(id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    PRIMARY KEY (channel_id, stream_id),
    CHECK (channel_id <> stream_id)
) WITHOUT ROWID;

CREATE TABLE movies (
    id                  INTEGER PRIMARY KEY,
    provider_id         INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    upstream_key        TEXT    NOT NULL,
    upstream_id         INTEGER,
    name                TEXT    NOT NULL,
    group_id            INTEGER REFERENCES groups(id) ON DELETE SET NULL,
    logo                TEXT,
    rating              TEXT,
    container_extension TEXT,
    url                 TEXT,
    added               INTEGER,
    position            INTEGER NOT NULL,
    sync_gen            INTEGER NOT NULL,
    UNIQUE (provider_id, upstream_key)
);

CREATE TABLE series (
    id            INTEGER PRIMARY KEY,
    provider_id   INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    upstream_key  TEXT    NOT NULL,
    upstream_id   INTEGER,
    name          TEXT    NOT NULL,
    group_id      INTEGER REFERENCES groups(id) ON DELETE SET NULL,
    cover         TEXT,
    plot          TEXT,
    genre         TEXT,
    release_date  TEXT,
    rating        TEXT,
    url           TEXT,
    position      INTEGER NOT NULL,
    sync_gen      INTEGER NOT NULL,
    UNIQUE (provider_id, upstream_key)
);
