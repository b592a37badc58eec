-- 0072: reading the archive over IMAP and POP3.
-- App passwords of archive readers: one per (list, member), argon2 PHC
-- hashes only (the password itself is mailed once and never stored).
CREATE TABLE archive_passwords (
    list        TEXT NOT NULL,
    address_key TEXT NOT NULL,
    hash        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (list, address_key)
);
-- A list's posts in UID (row id) order: a mailbox opens with one index scan.
CREATE INDEX archive_by_list ON archive_index(list);
-- Full-text index of archived posts for IMAP SEARCH (rowid = archive_index.id):
-- trigram, so a quoted phrase matches any substring of 3 or more characters,
-- as IMAP's SEARCH asks. Filled from the mbox files by `reader::text`.
CREATE VIRTUAL TABLE archive_text USING fts5(
    list UNINDEXED, from_addr, subject, head, body,
    tokenize = 'trigram case_sensitive 0'
);
-- Per list, the highest archive_index.id already in archive_text.
CREATE TABLE archive_text_done (
    list    TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);
