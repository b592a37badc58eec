-- 0074: a plain Reply to a moderation notice acts.
-- mod_tokens gains `reply`: the token in the notice's Reply-To address,
-- bound to no action; the reply's first word says which (approve, accept,
-- reject REASON, discard, ban). SQLite cannot change a CHECK, so the table
-- is rebuilt.
CREATE TABLE mod_tokens_new (
    hash        BLOB PRIMARY KEY,
    list        TEXT NOT NULL,
    held_id     INTEGER NOT NULL REFERENCES held(id),
    action      TEXT NOT NULL
                CHECK (action IN ('approve', 'accept', 'reject', 'discard', 'ban', 'confirm',
                                  'reply')),
    used_at     INTEGER,
    used_by     TEXT
) WITHOUT ROWID;
INSERT INTO mod_tokens_new(hash, list, held_id, action, used_at, used_by)
SELECT hash, list, held_id, action, used_at, used_by FROM mod_tokens;
DROP TABLE mod_tokens;
ALTER TABLE mod_tokens_new RENAME TO mod_tokens;
CREATE INDEX mod_tokens_by_held ON mod_tokens(held_id);
