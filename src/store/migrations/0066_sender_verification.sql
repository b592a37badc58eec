-- 0066: proving who sent a post or a command.
-- mod_tokens gains `confirm`: the token mailed to the address a held
-- `sender-unverified` post claims; using it releases the post.
-- tokens gains `set_mode`: a member confirms a delivery-mode change asked
-- for in their name (`set LIST MODE`), or undoes one (the mode to restore
-- is in `mode`). SQLite cannot change a CHECK, so both tables are rebuilt.
CREATE TABLE mod_tokens_new (
    hash        BLOB PRIMARY KEY,
    list        TEXT NOT NULL,
    held_id     INTEGER NOT NULL REFERENCES held(id),
    action      TEXT NOT NULL
                CHECK (action IN ('approve', 'accept', 'reject', 'discard', 'ban', 'confirm')),
    used_at     INTEGER,
    used_by     TEXT
) WITHOUT ROWID;
INSERT INTO mod_tokens_new(hash, list, held_id, action, used_at, used_by)
SELECT hash, list, held_id, action, used_at, used_by FROM mod_tokens;
DROP TABLE mod_tokens;
ALTER TABLE mod_tokens_new RENAME TO mod_tokens;
CREATE INDEX mod_tokens_by_held ON mod_tokens(held_id);

CREATE TABLE tokens_new (
    token_hash  TEXT PRIMARY KEY,
    list        TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('subscribe', 'unsubscribe', 'approve',
                                                'owner_add', 'owner_remove', 'set_mode')),
    address     TEXT NOT NULL,
    address_key TEXT NOT NULL,
    name        TEXT,
    requested_by TEXT NOT NULL,
    request_id  INTEGER REFERENCES sub_requests(id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    mode        TEXT CHECK (mode IN ('each', 'digest_mime', 'digest_plain', 'nomail'))
);
INSERT INTO tokens_new(token_hash, list, action, address, address_key, name, requested_by,
                       request_id, created_at, expires_at, used_at, mode)
SELECT token_hash, list, action, address, address_key, name, requested_by,
       request_id, created_at, expires_at, used_at, mode
  FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;
CREATE INDEX tokens_by_expiry ON tokens(expires_at);
CREATE INDEX tokens_by_request ON tokens(request_id);
