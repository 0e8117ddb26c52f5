-- tunerpool catalog schema, version 11: the materialized live listing (issue 16).
--
-- Listing 200 000 lineup channels through the lineup's query costs ~0.7 s
-- of CPU per request (a correlated look-up of each channel's first usable
-- source and of its guide id, JSON built by SQLite and decoded again, each
-- entry formatted). `live_listing` and `live_listing_xtream` hold what every
-- client listing of the live channels has in common: one row per channel clients may see (not
-- hidden, group not hidden, a source at an enabled provider), in lineup
-- number order, with its entry already written in each format. What
-- differs per user is applied when it is read: the allowed groups and the
-- category filter on `group_id`; the M3U URL (it carries the user's
-- credentials) is `{prefix}{channel_id}.{ext}` after the stored lines.
--
-- Both are rebuilt whole, by the outputs (crate::outputs::Store::rebuild_live_listing),
-- when `live_listing_state` says it is stale; until then listings take the
-- lineup's query as before. It is stale as soon as `version` <> `built`:
-- every write that can change a listing moves `version` on, in its own
-- transaction. Row-by-row writes of the curation (updates and deletes of
-- channels, sources, groups, providers) do it through the triggers below;
-- the bulk writes that insert or update hundreds of thousands of rows (a
-- sync with its lineup maintenance, a guide's channel index) and the
-- curation's inserts do it once per transaction in Rust
-- (crate::outputs::mark_listing_stale), because a trigger runs once per row
-- (~2 µs each: 0.6 s on a 200 000-entry first import).

-- The M3U entries and the Xtream objects are two tables, so that each
-- listing reads only its own format's bytes (a listing is a scan: its cost
-- is the bytes it reads).
CREATE TABLE live_listing (
    number     INTEGER PRIMARY KEY,   -- the lineup number: listings page on it
    channel_id INTEGER NOT NULL,
    group_id   INTEGER,
    m3u        TEXT    NOT NULL,      -- `#EXTINF:-1,Name` and its line break (get.php type=m3u)
    m3u_plus   TEXT    NOT NULL       -- the same with tvg-* and group-title attributes (type=m3u_plus)
);
CREATE TABLE live_listing_xtream (
    number     INTEGER PRIMARY KEY,
    group_id   INTEGER,
    xtream     TEXT    NOT NULL       -- the get_live_streams JSON object
);

CREATE TABLE live_listing_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    built   INTEGER NOT NULL
);
-- Stale until first built.
INSERT INTO live_listing_state (id, version, built) VALUES (1, 1, 0);

CREATE TRIGGER live_listing_channels_update AFTER UPDATE OF number, name, group_id, logo, tvg_id, hidden ON lineup_channels
WHEN (SELECT version = built FROM live_listing_state WHERE id = 1)
BEGIN UPDATE live_listing_state SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER live_listing_channels_delete AFTER DELETE ON lineup_channels
WHEN (SELECT version = built FROM live_listing_state WHERE id = 1)
BEGIN UPDATE live_listing_state SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER live_listing_sources_update AFTER UPDATE OF channel_id, stream_id, position ON lineup_sources
WHEN (SELECT version = built FROM live_listing_state WHERE id = 1)
BEGIN UPDATE live_listing_state SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER live_listing_sources_delete AFTER DELETE ON lineup_sources
WHEN (SELECT version = built FROM live_listing_state WHERE id = 1)
BEGIN UPDATE live_listing_state SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER live_listing_groups_insert AFTER INSERT ON lineup_groups
WHEN (SELECT version = built FROM live_listing_state WHERE id = 1)
BEGIN UPDATE live_listing_state SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER live_listing_groups_update AFTER UPDATE ON lineup_groups
WHEN (SELECT version = built FROM live_listing_state WHERE id = 1)
BEGIN UPDATE live_listing_state SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER live_listing_groups_delete AFTER DELETE ON lineup_groups
WHEN (SELECT version = built FROM live_listing_state WHERE id = 1)
BEGIN UPDATE live_listing_state SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER live_listing_providers_update AFTER UPDATE OF enabled, kind, priority ON providers
WHEN (old.enabled IS NOT new.enabled OR old.kind IS NOT new.kind OR old.priority IS NOT new.priority)
 AND (SELECT version = built FROM live_listing_state WHERE id = 1)
BEGIN UPDATE live_listing_state SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER live_listing_providers_delete AFTER DELETE ON providers
WHEN (SELECT version = built FROM live_listing_state WHERE id = 1)
BEGIN UPDATE live_listing_state SET version = version + 1 WHERE id = 1; END;
