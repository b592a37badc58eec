-- 0031 (post/delivery, follows 0003): nested lists by any case, and the
-- retention clean-up of finished queue rows.

-- A member whose address is a local list's posting address in any case
-- (`Dev@LISTS.example.org`) is that list: expansion finds such members by
-- lower(address_key) through this index, never by scanning members.
CREATE INDEX members_by_lower_key ON members(lower(address_key));

-- Finished fan-out jobs by age, for the clean-up (src/delivery/retention.rs).
CREATE INDEX jobs_done_by_age ON jobs(done_at) WHERE state = 'done';
