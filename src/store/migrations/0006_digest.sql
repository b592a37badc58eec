-- 0006: digests. Posts distributed while a list's digests are enabled are
-- collected as digest_entries; closing an issue assigns every pending entry
-- to one digest_issues row and queues the built digests, all in one
-- transaction (see src/digest/mod.rs).

-- Per list: the volume and the last issue number sent in it.
CREATE TABLE digest_state (
    list          TEXT PRIMARY KEY,
    volume        INTEGER NOT NULL DEFAULT 1,
    last_issue    INTEGER NOT NULL DEFAULT 0,   -- 0: no issue yet in this volume
    period_key    TEXT NOT NULL,                -- volume period of the last issue: '2024', '2024-06' or ''
    last_sent_at  INTEGER,                      -- unix seconds the last issue closed
    schedule_mark INTEGER NOT NULL DEFAULT 0    -- the latest scheduled time already acted on
);

-- One closed issue.
CREATE TABLE digest_issues (
    id        INTEGER PRIMARY KEY,
    list      TEXT NOT NULL,
    volume    INTEGER NOT NULL,
    issue     INTEGER NOT NULL,
    trigger   TEXT NOT NULL CHECK (trigger IN ('count', 'size', 'schedule', 'forced')),
    closed_at INTEGER NOT NULL,
    posts     INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    UNIQUE (list, volume, issue)
);

-- One distributed post waiting for (issue_id NULL) or assigned to an issue.
-- The bytes are the post as distributed, stored once in `messages`.
-- AUTOINCREMENT: ids only grow, so an id is a watermark (members.digest_after).
CREATE TABLE digest_entries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    list       TEXT NOT NULL,
    message_id INTEGER NOT NULL REFERENCES messages(id),
    bytes      INTEGER NOT NULL,
    added_at   INTEGER NOT NULL,
    issue_id   INTEGER REFERENCES digest_issues(id),
    UNIQUE (list, message_id)
);
CREATE INDEX digest_entries_by_issue ON digest_entries(list, issue_id, id);

-- The bodies queued for an issue: one per format and recipient group.
CREATE TABLE digest_jobs (
    id         INTEGER PRIMARY KEY,
    issue_id   INTEGER NOT NULL REFERENCES digest_issues(id),
    format     TEXT NOT NULL CHECK (format IN ('mime', 'plain')),
    job_id     INTEGER NOT NULL REFERENCES jobs(id),
    message_id INTEGER NOT NULL REFERENCES messages(id),
    posts      INTEGER NOT NULL,
    recipients INTEGER NOT NULL
);
CREATE INDEX digest_jobs_by_issue ON digest_jobs(issue_id);

-- A member's digest watermark: they get only entries with a larger id.
-- Set when they switch into a digest mode, so posts they already had one
-- by one are not sent to them again. 0 (joined as a digest member, or
-- before this migration) means every pending entry.
ALTER TABLE members ADD COLUMN digest_after INTEGER NOT NULL DEFAULT 0;

-- Members who left digest mode for `each` while entries they were owed
-- were pending: the next issue sends them those entries ("one last digest").
CREATE TABLE digest_leavers (
    id          INTEGER PRIMARY KEY,
    list        TEXT NOT NULL,
    address     TEXT NOT NULL,
    mode        TEXT NOT NULL CHECK (mode IN ('digest_mime', 'digest_plain')),
    after_entry INTEGER NOT NULL,               -- owed: after_entry < id <= upto_entry
    upto_entry  INTEGER NOT NULL
);
CREATE INDEX digest_leavers_by_list ON digest_leavers(list);

-- Mode changes keep the watermarks, whatever code path changes the mode
-- (`set LIST digest` by mail, `listd members`, the web).
CREATE TRIGGER members_digest_mode AFTER UPDATE OF mode ON members
WHEN OLD.mode <> NEW.mode
BEGIN
    UPDATE members
       SET digest_after = (SELECT COALESCE(MAX(id), 0) FROM digest_entries)
     WHERE id = NEW.id
       AND NEW.mode IN ('digest_mime', 'digest_plain')
       AND OLD.mode NOT IN ('digest_mime', 'digest_plain');
    INSERT INTO digest_leavers(list, address, mode, after_entry, upto_entry)
    SELECT NEW.list, NEW.address, OLD.mode, OLD.digest_after,
           (SELECT COALESCE(MAX(id), 0) FROM digest_entries)
     WHERE OLD.mode IN ('digest_mime', 'digest_plain')
       AND NEW.mode = 'each'
       AND EXISTS (SELECT 1 FROM digest_entries
                    WHERE list = NEW.list AND issue_id IS NULL AND id > OLD.digest_after);
END;

CREATE TRIGGER members_digest_leavers_gone AFTER DELETE ON members
BEGIN
    DELETE FROM digest_leavers WHERE list = OLD.list AND address = OLD.address;
END;
