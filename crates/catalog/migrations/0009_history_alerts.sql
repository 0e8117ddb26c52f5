-- tunerpool catalog schema, version 9: history and alerts (issue 13, parts 4
-- and 5). (0008 is the passive quality measurement's.)
--
-- History: samples over time, kept `history.retention` (30 days by default).
-- Raw rows (resolution 0) are kept `history.raw_retention` (48 h), then the
-- periodic job folds each complete hour into one row (resolution 3600, `at`
-- the hour's start) and deletes the raw ones. Nothing here is a foreign key:
-- history outlives the accounts, providers and channels it names.

-- One row per details refresh of an account (what the panel said), or per
-- hour once downsampled: the hour's last status/expiry/limit, the most active
-- connections seen, ok = 0 when any refresh in it failed.
CREATE TABLE account_samples (
    at              INTEGER NOT NULL,             -- unix seconds
    resolution      INTEGER NOT NULL DEFAULT 0,   -- 0: one refresh; 3600: an hour
    account_id      INTEGER NOT NULL,
    provider_id     INTEGER NOT NULL,
    auth            INTEGER,
    status          TEXT,
    exp_date        INTEGER,
    max_connections INTEGER,
    active_cons     INTEGER,
    ok              INTEGER NOT NULL              -- 1: the refresh succeeded
);
CREATE INDEX account_samples_at ON account_samples (at);
CREATE UNIQUE INDEX account_samples_hour ON account_samples (account_id, at) WHERE resolution = 3600;

-- One row per provider per minute (the pool sampler), or per hour once
-- downsampled: maxima of the hour, and the sum of its refusals.
CREATE TABLE pool_samples (
    at          INTEGER NOT NULL,
    resolution  INTEGER NOT NULL DEFAULT 0,
    provider_id INTEGER NOT NULL,
    slots_used  INTEGER NOT NULL,                 -- leases held on its enabled accounts
    slots_max   INTEGER NOT NULL,                 -- what they allow (capped by the provider)
    sessions    INTEGER NOT NULL,                 -- live sessions and transfers on it
    viewers     INTEGER NOT NULL,
    refusals    INTEGER NOT NULL                  -- starts refused for no capacity with it a candidate
);
CREATE INDEX pool_samples_at ON pool_samples (at);
CREATE UNIQUE INDEX pool_samples_hour ON pool_samples (provider_id, at) WHERE resolution = 3600;

-- Stream starts per lineup channel, per hour.
CREATE TABLE channel_views (
    hour       INTEGER NOT NULL,                  -- unix seconds, a multiple of 3600
    channel_id INTEGER NOT NULL,
    views      INTEGER NOT NULL,
    PRIMARY KEY (channel_id, hour)
);
CREATE INDEX channel_views_hour ON channel_views (hour);

-- Alerts: a condition (keyed, e.g. `account_expiring:12`) that opened and
-- maybe resolved. At most one open alert per key: a condition that stays
-- true is the same alert, never a new one.
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY,
    key         TEXT    NOT NULL,
    kind        TEXT    NOT NULL,                 -- account_expiring, user_expiring, account_auth, sync_failed, pool_exhausted
    severity    TEXT    NOT NULL CHECK (severity IN ('warning', 'critical')),
    title       TEXT    NOT NULL,
    message     TEXT    NOT NULL,                 -- built from redacted errors and names: no secrets
    provider_id INTEGER,
    account_id  INTEGER,
    user_id     INTEGER,
    opened_at   INTEGER NOT NULL,
    resolved_at INTEGER
);
CREATE UNIQUE INDEX alerts_open ON alerts (key) WHERE resolved_at IS NULL;
CREATE INDEX alerts_resolved ON alerts (resolved_at);

-- The outbox: one row per alert event (opened/resolved) per webhook, kept
-- until delivered or given up, retried with backoff. `target` is a digest of
-- the webhook's URL (the URL may hold a token: it is never stored here).
CREATE TABLE alert_deliveries (
    id           INTEGER PRIMARY KEY,
    alert_id     INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    event        TEXT    NOT NULL CHECK (event IN ('opened', 'resolved')),
    target       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at_ms   INTEGER NOT NULL,                -- unix milliseconds
    delivered_at INTEGER,
    gave_up_at   INTEGER,
    last_error   TEXT,
    UNIQUE (alert_id, event, target)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_at_ms) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
