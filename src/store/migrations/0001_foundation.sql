-- 0001: members, the inbound spool and the incoming queue, and the outbound queue.

CREATE TABLE members (
    id          INTEGER PRIMARY KEY,
    list        TEXT NOT NULL,
    address     TEXT NOT NULL,             -- as given (local part case preserved)
    address_key TEXT NOT NULL,             -- local part as given, domain lower-cased
    name        TEXT,                      -- display name
    mode        TEXT NOT NULL DEFAULT 'each'
                CHECK (mode IN ('each', 'digest_mime', 'digest_plain', 'nomail')),
    disabled    INTEGER NOT NULL DEFAULT 0,
    joined_at   INTEGER NOT NULL,          -- unix seconds
    UNIQUE (list, address_key)
);
CREATE INDEX members_by_address ON members(address_key);

-- Every message body, inbound or outbound, stored once.
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    direction   TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    received_at INTEGER NOT NULL,
    env_from    TEXT NOT NULL,             -- '' is the null sender
    client_ip   TEXT,
    helo        TEXT,
    protocol    TEXT,                      -- ESMTP, LMTP, local
    size        INTEGER NOT NULL,
    bytes       BLOB NOT NULL
);

-- The incoming queue: one row per routed envelope recipient of an inbound message.
-- state: incoming -> active -> done | corrupt
CREATE TABLE incoming (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER NOT NULL REFERENCES messages(id),
    rcpt        TEXT NOT NULL,
    route       TEXT NOT NULL,             -- routing::Route::kind()
    list        TEXT,
    tag         TEXT,                      -- +TAG / +TOKEN detail
    state       TEXT NOT NULL DEFAULT 'incoming'
                CHECK (state IN ('incoming', 'active', 'done', 'corrupt')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX incoming_by_state ON incoming(state, id);

-- The outbound queue. A job is one body to send to a set of recipients.
-- state: active (recipients pending) -> done
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    list        TEXT,
    kind        TEXT NOT NULL,             -- post, reply, notice, digest, forward
    message_id  INTEGER NOT NULL REFERENCES messages(id),
    env_from    TEXT NOT NULL,             -- envelope sender ('' for null)
    verp        INTEGER NOT NULL DEFAULT 0,
    state       TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'done')),
    created_at  INTEGER NOT NULL
);
CREATE INDEX jobs_by_state ON jobs(state, id);

-- One row per recipient of a job.
-- state: active (due at next_attempt) | deferred (4xx, waiting) | sent | failed (5xx or given up)
CREATE TABLE job_rcpts (
    id           INTEGER PRIMARY KEY,
    job_id       INTEGER NOT NULL REFERENCES jobs(id),
    rcpt         TEXT NOT NULL,
    domain       TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'active'
                 CHECK (state IN ('active', 'deferred', 'sent', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL DEFAULT 0,
    last_reply   TEXT
);
CREATE INDEX job_rcpts_due ON job_rcpts(state, next_attempt);
CREATE INDEX job_rcpts_by_job ON job_rcpts(job_id, state);
