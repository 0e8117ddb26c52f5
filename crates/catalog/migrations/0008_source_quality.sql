-- tunerpool catalog schema, version 8: passive source quality (issue 13).
-- Every live upstream connection is measured by the relay from the bytes it
-- relays anyway (codec, picture size, frame rate, bitrates, a verdict), and
-- its reports are kept here: the latest per source, and a history bounded in
-- time (crate::quality::KEEP_SECONDS, pruned on insert). A source is its
-- stream's identity, (provider, upstream key), like lineup_sources, so a
-- measurement survives a stream that a sync dropped and brought back.

CREATE TABLE source_quality (
    provider_id  INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    upstream_key TEXT    NOT NULL,
    measured_at  INTEGER NOT NULL,  -- unix seconds
    verdict      TEXT    NOT NULL,  -- pending, ok, not_ts, no_video, unreadable
    video_codec  TEXT,              -- h264, hevc, mpeg2video, mpeg1video
    width        INTEGER,
    height       INTEGER,
    fps          REAL,
    bitrate      INTEGER,           -- all bits per second of the TS
    report       TEXT    NOT NULL,  -- JSON: the relay's whole measurement
    PRIMARY KEY (provider_id, upstream_key)
) WITHOUT ROWID;
CREATE INDEX source_quality_verdict ON source_quality (verdict);
CREATE INDEX source_quality_size ON source_quality (height, width);
CREATE INDEX source_quality_measured ON source_quality (measured_at);

CREATE TABLE source_quality_history (
    id           INTEGER PRIMARY KEY,
    provider_id  INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    upstream_key TEXT    NOT NULL,
    measured_at  INTEGER NOT NULL,
    verdict      TEXT    NOT NULL,
    video_codec  TEXT,
    width        INTEGER,
    height       INTEGER,
    fps          REAL,
    bitrate      INTEGER,
    report       TEXT    NOT NULL
);
CREATE INDEX source_quality_history_source ON source_quality_history (provider_id, upstream_key, measured_at);
CREATE INDEX source_quality_history_measured ON source_quality_history (measured_at);
