-- 0005: moderation. The hold queue refers to the original message in
-- `messages` by id (its bytes are never copied or altered); moderation tokens
-- are stored as SHA-256 hashes only; per-list accept and ban lists; an audit
-- log of every moderation attempt; the last reminder sent per list.

-- One row per held post. state: held -> approved | rejected | discarded | expired
CREATE TABLE held (
    id          INTEGER PRIMARY KEY,
    list        TEXT NOT NULL,
    message_id  INTEGER NOT NULL REFERENCES messages(id),
    reason      TEXT NOT NULL,             -- HoldReason::code()
    detail      TEXT NOT NULL,             -- the reason in words
    sender      TEXT NOT NULL,             -- From: address, else the envelope sender
    env_from    TEXT NOT NULL,             -- envelope sender; '' is the null sender
    notify      TEXT,                      -- where poster notices go; NULL: nobody
                                           -- (null sender, or an automaton, RFC 3834)
    subject     TEXT NOT NULL,
    size        INTEGER NOT NULL,
    held_at     INTEGER NOT NULL,          -- unix seconds
    state       TEXT NOT NULL DEFAULT 'held'
                CHECK (state IN ('held', 'approved', 'rejected', 'discarded', 'expired')),
    action      TEXT,                      -- approve, accept, reject, discard, ban, expire
    acted_by    TEXT,                      -- moderator address, or `cli:USER`
    acted_at    INTEGER,
    note        TEXT                       -- the reject reason given, if any
);
-- Pending posts per list in age order: listing, reminders, expiry, `--all`.
CREATE INDEX held_pending ON held(list, held_at) WHERE state = 'held';
-- Finished holds by age: purging their spent tokens.
CREATE INDEX held_finished ON held(acted_at) WHERE state <> 'held';

-- Single-use action tokens. The token itself is never stored, only its hash.
CREATE TABLE mod_tokens (
    hash        BLOB PRIMARY KEY,          -- SHA-256 of the token text
    list        TEXT NOT NULL,
    held_id     INTEGER NOT NULL REFERENCES held(id),
    action      TEXT NOT NULL
                CHECK (action IN ('approve', 'accept', 'reject', 'discard', 'ban')),
    used_at     INTEGER,
    used_by     TEXT
) WITHOUT ROWID;
CREATE INDEX mod_tokens_by_held ON mod_tokens(held_id);

-- Senders whose posts skip moderation, and senders whose posts are discarded.
CREATE TABLE accept_senders (
    list        TEXT NOT NULL,
    address_key TEXT NOT NULL,
    address     TEXT NOT NULL,
    added_by    TEXT NOT NULL,
    added_at    INTEGER NOT NULL,
    PRIMARY KEY (list, address_key)
) WITHOUT ROWID;

CREATE TABLE banned_senders (
    list        TEXT NOT NULL,
    address_key TEXT NOT NULL,
    address     TEXT NOT NULL,
    added_by    TEXT NOT NULL,
    added_at    INTEGER NOT NULL,
    PRIMARY KEY (list, address_key)
) WITHOUT ROWID;

-- Every moderation attempt, accepted or refused.
CREATE TABLE mod_log (
    id          INTEGER PRIMARY KEY,
    list        TEXT NOT NULL,
    held_id     INTEGER,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL,             -- done, refused, already, unknown-token, ...
    at          INTEGER NOT NULL
);

-- When each list's moderators were last reminded of pending posts.
CREATE TABLE mod_reminders (
    list        TEXT PRIMARY KEY,
    last_sent   INTEGER NOT NULL
) WITHOUT ROWID;
