-- PostgreSQL counterpart of the SQLite migration 0011_live_listing.sql: the
-- materialized live listing (what the tables mean, who rebuilds them and
-- who marks them stale is explained there).
--
-- The same tables with this schema's types. The staleness triggers differ in
-- form, not in what they catch:
--
-- * lineup_channels, lineup_sources and lineup_groups get statement-level
--   triggers (FOR EACH STATEMENT): a sync's maintenance updates and deletes
--   sources by the thousand, and one call per statement costs nothing where
--   a PL/pgSQL call per row would (~5 µs each). A statement-level trigger
--   also fires for a statement that changed no row; that makes the listing
--   stale for nothing (one rebuild too many), never fresh when it is not.
-- * providers keep a row-level trigger with SQLite's WHEN: a sync updates its
--   provider's row (sync times, counts) and that must not make the listing
--   stale; only enabled, kind and priority changing do.
--
-- PostgreSQL's WHEN cannot read another table, so the "only while fresh"
-- test of the SQLite triggers is the UPDATE's own WHERE: once stale, the
-- update matches no row and takes no row lock.

CREATE TABLE live_listing (
    number     BIGINT PRIMARY KEY,
    channel_id BIGINT NOT NULL,
    group_id   BIGINT,
    m3u        TEXT   NOT NULL,
    m3u_plus   TEXT   NOT NULL
);
CREATE TABLE live_listing_xtream (
    number     BIGINT PRIMARY KEY,
    group_id   BIGINT,
    xtream     TEXT   NOT NULL
);

CREATE TABLE live_listing_state (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL,
    built   BIGINT NOT NULL
);
-- Stale until first built.
INSERT INTO live_listing_state (id, version, built) VALUES (1, 1, 0);

CREATE FUNCTION live_listing_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE live_listing_state SET version = version + 1 WHERE id = 1 AND version = built;
    RETURN NULL;
END
$$;

CREATE TRIGGER live_listing_channels_update AFTER UPDATE OF number, name, group_id, logo, tvg_id, hidden
    ON lineup_channels FOR EACH STATEMENT EXECUTE FUNCTION live_listing_stale();
CREATE TRIGGER live_listing_channels_delete AFTER DELETE
    ON lineup_channels FOR EACH STATEMENT EXECUTE FUNCTION live_listing_stale();

CREATE TRIGGER live_listing_sources_update AFTER UPDATE OF channel_id, stream_id, position
    ON lineup_sources FOR EACH STATEMENT EXECUTE FUNCTION live_listing_stale();
CREATE TRIGGER live_listing_sources_delete AFTER DELETE
    ON lineup_sources FOR EACH STATEMENT EXECUTE FUNCTION live_listing_stale();

CREATE TRIGGER live_listing_groups_change AFTER INSERT OR UPDATE OR DELETE
    ON lineup_groups FOR EACH STATEMENT EXECUTE FUNCTION live_listing_stale();

CREATE TRIGGER live_listing_providers_update AFTER UPDATE OF enabled, kind, priority ON providers
    FOR EACH ROW
    WHEN (old.enabled IS DISTINCT FROM new.enabled OR old.kind IS DISTINCT FROM new.kind
          OR old.priority IS DISTINCT FROM new.priority)
    EXECUTE FUNCTION live_listing_stale();
CREATE TRIGGER live_listing_providers_delete AFTER DELETE
    ON providers FOR EACH STATEMENT EXECUTE FUNCTION live_listing_stale();

-- Guide channel ids are compared and ordered byte by byte, as SQLite does
-- (BINARY): a lineup channel's guide id is the first of its matches in that
-- order, and the listings must not depend on the server's locale.
ALTER TABLE guide_channels ALTER COLUMN id TYPE TEXT COLLATE "C";
