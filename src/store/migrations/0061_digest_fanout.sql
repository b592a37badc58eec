-- 0061 (digest, follows 0006): link each digest entry to its post's fan-out
-- job, and compute mode-change watermarks against the fan-out's progress.
--
-- The fan-out of a post is expanded lazily, in address_key order, by the
-- delivery worker (jobs.expanded, jobs.expand_cursor: 0002), and expansion
-- skips digest members. So whether a member got a post by itself depends
-- on their mode when the expansion reached them, not when the post was
-- distributed:
-- - entering a digest mode: every pending entry whose fan-out has not yet
--   reached the member will skip them, so it must be in their digest: the
--   watermark goes just before the first such entry;
-- - leaving for `each`: the pending entries whose fan-out already passed
--   them (while they were a digest member) are owed in one last digest;
--   fan-outs still to reach them will include them.
-- Entries without a job (or whose job is gone) count as fanned out.

ALTER TABLE digest_entries ADD COLUMN job_id INTEGER;

DROP TRIGGER members_digest_mode;

CREATE TRIGGER members_digest_mode AFTER UPDATE OF mode ON members
WHEN OLD.mode <> NEW.mode
BEGIN
    UPDATE members
       SET digest_after = COALESCE(
             (SELECT MIN(e.id) - 1
                FROM digest_entries e JOIN jobs j ON j.id = e.job_id
               WHERE e.list = NEW.list AND e.issue_id IS NULL
                 AND j.expanded = 0
                 AND (j.expand_cursor IS NULL OR j.expand_cursor < NEW.address_key)),
             (SELECT COALESCE(MAX(id), 0) FROM digest_entries))
     WHERE id = NEW.id
       AND NEW.mode IN ('digest_mime', 'digest_plain')
       AND OLD.mode NOT IN ('digest_mime', 'digest_plain');
    INSERT INTO digest_leavers(list, address, mode, after_entry, upto_entry)
    SELECT NEW.list, NEW.address, OLD.mode, OLD.digest_after, owed.upto
      FROM (SELECT MAX(e.id) AS upto
              FROM digest_entries e LEFT JOIN jobs j ON j.id = e.job_id
             WHERE e.list = NEW.list AND e.issue_id IS NULL AND e.id > OLD.digest_after
               AND (j.id IS NULL OR j.expanded = 1
                    OR (j.expand_cursor IS NOT NULL AND j.expand_cursor >= NEW.address_key))) AS owed
     WHERE OLD.mode IN ('digest_mime', 'digest_plain')
       AND NEW.mode = 'each'
       AND owed.upto IS NOT NULL;
END;
