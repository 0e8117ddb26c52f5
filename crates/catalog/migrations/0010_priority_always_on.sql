-- tunerpool catalog schema, version 10: viewing (issue 14, items 3 and 4).
--
-- users.priority: 0 to 100. Viewers below `pool.reserved_priority` may not
-- take an account's last `pool.reserved_slots` slots, and with `pool.preempt`
-- a viewer's request may stop a session whose viewers all have a lower one.
ALTER TABLE users ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;

-- lineup_channels.always_on: the relay keeps the channel's session running
-- (and holding its slot) with no viewers, restarting it when it fails.
ALTER TABLE lineup_channels ADD COLUMN always_on INTEGER NOT NULL DEFAULT 0;
