-- tunerpool catalog schema: provider guides (XMLTV).
-- A provider's guide is a file, {data_dir}/epg/provider-{id}.xml, replaced
-- atomically by each successful fetch; this table records what the last
-- fetch did. (Numbered 0003: 0002 belongs to another change.)

CREATE TABLE epg_status (
    provider_id INTEGER PRIMARY KEY REFERENCES providers(id) ON DELETE CASCADE,
    fetched_at  INTEGER NOT NULL,   -- last attempt, Unix seconds
    ok          INTEGER NOT NULL,   -- 1 if the last attempt stored a guide
    error       TEXT,               -- why the last attempt failed (credentials redacted)
    ok_at       INTEGER,            -- last successful fetch
    channels    INTEGER,            -- of the stored guide
    programmes  INTEGER,
    bytes       INTEGER,
    duration_ms INTEGER             -- of the last attempt
);
