-- tunerpool catalog schema, version 5: when a provider's catalog last synced
-- successfully. last_sync_at is the last attempt (a failure moves it on, to
-- time the retry); monitoring wants the age of the catalog (the
-- tunerpool_sync_last_success_timestamp_seconds metric).

ALTER TABLE providers ADD COLUMN last_sync_ok_at INTEGER;                -- unix seconds
UPDATE providers SET last_sync_ok_at = last_sync_at WHERE last_sync_ok = 1;
