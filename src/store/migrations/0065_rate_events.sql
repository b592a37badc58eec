-- 0065: the robot's reply log becomes the general rate log. Each row is one
-- counted event in a named bucket ("reply:victim@example.org",
-- "domain:example.org", "notice:…", "approved-fail:dev", …); budgets count
-- the rows of a bucket in a time window through the (bucket, at) index.
ALTER TABLE robot_replies RENAME TO rate_events;
ALTER TABLE rate_events RENAME COLUMN address_key TO bucket;
ALTER TABLE rate_events RENAME COLUMN sent_at TO at;
DROP INDEX robot_replies_by_address;
CREATE INDEX rate_events_by_bucket ON rate_events(bucket, at);
