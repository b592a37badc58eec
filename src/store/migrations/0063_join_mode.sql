-- 0063: how a subscriber asked to get the list (`subscribe LIST digest=mime`,
-- Mailman's `join digest=`), kept with the confirmation token and with the
-- owners' request until the subscription happens (`mode`; NULL: each post);
-- and two more token actions, an owner confirming `add` / `del` of a
-- member by mail (owner_add, owner_remove). SQLite cannot change a CHECK,
-- so `tokens` is rebuilt.
CREATE TABLE tokens_new (
    token_hash  TEXT PRIMARY KEY,
    list        TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('subscribe', 'unsubscribe', 'approve',
                                                'owner_add', 'owner_remove')),
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
                       request_id, created_at, expires_at, used_at)
SELECT token_hash, list, action, address, address_key, name, requested_by,
       request_id, created_at, expires_at, used_at
  FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;
CREATE INDEX tokens_by_expiry ON tokens(expires_at);
CREATE INDEX tokens_by_request ON tokens(request_id);

ALTER TABLE sub_requests ADD COLUMN mode TEXT
    CHECK (mode IN ('each', 'digest_mime', 'digest_plain', 'nomail'));
