-- 0003: posts and the archive (owned by the post helper).

-- Message-IDs seen on each list, for duplicate detection (30-day window).
CREATE TABLE post_seen (
    list        TEXT NOT NULL,
    message_id  TEXT NOT NULL,             -- without angle brackets, as written
    seen_at     INTEGER NOT NULL,          -- unix seconds
    PRIMARY KEY (list, message_id)
);
CREATE INDEX post_seen_by_time ON post_seen(seen_at);

-- One row per archived post; the bytes live in an mbox file per list per month.
CREATE TABLE archive_index (
    id          INTEGER PRIMARY KEY,
    list        TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    date        INTEGER NOT NULL,          -- from Date:, else the archiving time
    from_addr   TEXT NOT NULL,
    subject     TEXT NOT NULL,             -- decoded
    parent      TEXT,                      -- In-Reply-To, else the last References id
    mbox_path   TEXT NOT NULL,             -- relative to data_dir/archive, e.g. dev/2026-11.mbox
    offset      INTEGER NOT NULL,          -- byte offset of the `From ` line
    length      INTEGER NOT NULL,          -- bytes, `From ` line to the blank line after
    archived_at INTEGER NOT NULL,
    UNIQUE (list, message_id)
);
CREATE INDEX archive_by_date ON archive_index(list, date);
CREATE INDEX archive_by_parent ON archive_index(list, parent);
CREATE INDEX archive_by_file ON archive_index(mbox_path, offset);

-- Mail to NAME-bounces@ / NAME-bounces+TAG@, kept for bounce processing.
CREATE TABLE bounces (
    id          INTEGER PRIMARY KEY,
    list        TEXT NOT NULL,
    message_id  INTEGER NOT NULL REFERENCES messages(id),
    tag         TEXT,                      -- the +TAG detail (VERP: user=example.org)
    recipient   TEXT,                      -- the bouncing member, from VERP or the DSN
    status      TEXT,                      -- DSN Status: (e.g. 5.1.1), if any
    diagnostic  TEXT,                      -- DSN Diagnostic-Code:, if any
    env_from    TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    processed   INTEGER NOT NULL DEFAULT 0 -- set by the bounce processor (later issue)
);
CREATE INDEX bounces_by_list ON bounces(list, recipient);

