-- tunerpool catalog schema, version 7: the channels of each provider's
-- guide (issue 11), read from the stored guide file after each successful
-- fetch. They let the guide feed a lineup channel whose sources have no
-- tvg-id (matched by normalized name), and let the user pick a channel's
-- guide id from a search over guide channels.

CREATE TABLE guide_channels (
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    id          TEXT    NOT NULL,   -- the <channel id> in that provider's guide
    name        TEXT    NOT NULL,   -- its first display-name
    norm_name   TEXT    NOT NULL,   -- crate::lineup::normalize_name(name)
    PRIMARY KEY (provider_id, id)
) WITHOUT ROWID;
CREATE INDEX guide_channels_norm ON guide_channels (norm_name);
