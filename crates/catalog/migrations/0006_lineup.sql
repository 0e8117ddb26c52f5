-- tunerpool catalog schema, version 6: the lineup (issue 11).
-- A client-visible live channel is no longer one provider's stream: it is a
-- lineup channel, the user's, with a stable id and number, and an ordered
-- list of sources (streams of any provider). Each source keeps the identity
-- of its stream (provider, upstream key, tvg-id, normalized name), so a
-- stream that a provider renumbered, or that came back after its provider
-- was removed and added again, is re-attached to the same channel. A source
-- whose stream is gone keeps `stream_id` NULL; a channel with no attached
-- source stays, unavailable, with its edits.

-- The stream's name as matching compares it (crate::lineup::normalize_name),
-- computed by the sync.
ALTER TABLE streams ADD COLUMN norm_name TEXT NOT NULL DEFAULT '';

-- Lineup group ids start above 1 000 000 so that they never collide with
-- the (per-provider) movie and series groups a user's allowed_groups also list.
CREATE TABLE lineup_groups (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    name     TEXT    NOT NULL UNIQUE,
    position INTEGER NOT NULL DEFAULT 0,
    hidden   INTEGER NOT NULL DEFAULT 0
);

INSERT INTO sqlite_sequence (name, seq) VALUES ('lineup_groups', 1000000);

CREATE TABLE lineup_channels (
    id         INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: clients keep ids in favourites
    number     INTEGER NOT NULL UNIQUE CHECK (number >= 1),
    name       TEXT    NOT NULL CHECK (name <> ''),
    group_id   INTEGER REFERENCES lineup_groups(id) ON DELETE SET NULL,
    logo       TEXT,
    tvg_id     TEXT,
    hidden     INTEGER NOT NULL DEFAULT 0,
    auto_order INTEGER NOT NULL DEFAULT 1,   -- 1: sources ranked by provider (the brief); 0: the user's order
    created_at INTEGER NOT NULL
);
CREATE INDEX lineup_channels_group ON lineup_channels (group_id, number);

CREATE TABLE lineup_sources (
    id           INTEGER PRIMARY KEY,
    channel_id   INTEGER NOT NULL REFERENCES lineup_channels(id) ON DELETE CASCADE,
    stream_id    INTEGER UNIQUE REFERENCES streams(id) ON DELETE SET NULL, -- NULL: the stream is gone
    provider_id  INTEGER NOT NULL,            -- no foreign key: survives its provider's removal
    upstream_key TEXT    NOT NULL,
    tvg_id       TEXT,
    norm_name    TEXT    NOT NULL,
    position     INTEGER NOT NULL
);
CREATE INDEX lineup_sources_channel ON lineup_sources (channel_id, position);
CREATE INDEX lineup_sources_lost ON lineup_sources (provider_id) WHERE stream_id IS NULL;

-- Never filled; the lineup replaces it.
DROP TABLE channel_sources;

-- Existing catalogs: every visible stream becomes a channel (same id, so
-- clients' favourites keep working), numbered by its provider's order.
INSERT INTO lineup_groups (name, position)
    SELECT g.name, MIN(p.priority * 1000000 + g.position) FROM groups g JOIN providers p ON p.id = g.provider_id
    WHERE g.kind = 'live' GROUP BY g.name;
INSERT INTO lineup_channels (id, number, name, group_id, logo, tvg_id, hidden, created_at)
    SELECT s.id, ROW_NUMBER() OVER (ORDER BY p.priority, p.id, s.position, s.id), s.name,
           (SELECT lg.id FROM lineup_groups lg WHERE lg.name = g.name), s.logo, s.tvg_id, s.hidden, p.created_at
    FROM streams s JOIN providers p ON p.id = s.provider_id LEFT JOIN groups g ON g.id = s.group_id
    WHERE s.name <> '';
INSERT INTO lineup_sources (channel_id, stream_id, provider_id, upstream_key, tvg_id, norm_name, position)
    SELECT s.id, s.id, s.provider_id, s.upstream_key, s.tvg_id, '', 0 FROM streams s
    WHERE EXISTS (SELECT 1 FROM lineup_channels c WHERE c.id = s.id);
