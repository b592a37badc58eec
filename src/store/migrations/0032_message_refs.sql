-- 0032 (post/delivery): an index on every column that refers to
-- messages(id) or jobs(id), so deleting a parent (the retention clean-up,
-- src/delivery/retention.rs) and checking that nothing refers to it are
-- index lookups, not scans of each referring table. IF NOT EXISTS: another
-- area may add the same index later under the same name.

CREATE INDEX IF NOT EXISTS incoming_by_message ON incoming(message_id);
CREATE INDEX IF NOT EXISTS jobs_by_message ON jobs(message_id);
CREATE INDEX IF NOT EXISTS bounces_by_message ON bounces(message_id);
CREATE INDEX IF NOT EXISTS held_by_message ON held(message_id);
CREATE INDEX IF NOT EXISTS digest_entries_by_message ON digest_entries(message_id);
CREATE INDEX IF NOT EXISTS digest_jobs_by_message ON digest_jobs(message_id);
CREATE INDEX IF NOT EXISTS digest_jobs_by_job ON digest_jobs(job_id);
