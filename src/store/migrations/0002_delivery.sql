-- 0002: delivery. Fan-out batches, the in-flight state, expansion progress,
-- and bounce events for the bounce processing.

-- job_rcpts gains the in-flight state `sending` (a CHECK cannot be altered,
-- so the table is rebuilt) and an update time.
-- state: active (due at next_attempt) | deferred (4xx, due at next_attempt)
--      | sending (handed to a relay connection) | sent | failed
CREATE TABLE job_rcpts_new (
    id           INTEGER PRIMARY KEY,
    job_id       INTEGER NOT NULL REFERENCES jobs(id),
    rcpt         TEXT NOT NULL,
    domain       TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'active'
                 CHECK (state IN ('active', 'deferred', 'sending', 'sent', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL DEFAULT 0,
    last_reply   TEXT,
    updated_at   INTEGER NOT NULL DEFAULT 0
);
INSERT INTO job_rcpts_new(id, job_id, rcpt, domain, state, attempts, next_attempt, last_reply)
    SELECT id, job_id, rcpt, domain, state, attempts, next_attempt, last_reply FROM job_rcpts;
DROP TABLE job_rcpts;
ALTER TABLE job_rcpts_new RENAME TO job_rcpts;
CREATE INDEX job_rcpts_due ON job_rcpts(state, next_attempt);
CREATE INDEX job_rcpts_by_job ON job_rcpts(job_id, state);

-- A fan-out job expands a list into batches, a chunk at a time; the cursor
-- is the last member address_key expanded, so a crash resumes after it.
ALTER TABLE jobs ADD COLUMN expand_list TEXT;           -- NULL: explicit recipients only
ALTER TABLE jobs ADD COLUMN expand_cursor TEXT;         -- last address_key expanded
ALTER TABLE jobs ADD COLUMN expanded INTEGER NOT NULL DEFAULT 1;  -- 0 while expansion is pending
ALTER TABLE jobs ADD COLUMN skip_rcpts TEXT;            -- address keys left out (To/Cc), one per line
ALTER TABLE jobs ADD COLUMN done_at INTEGER;

-- One SMTP transaction's worth of fan-out recipients (one domain, at most
-- relay.max_recipients), stored as one row: the recipients one per line.
-- state: active | deferred | sending | done (every recipient either accepted
-- by the relay or split out into job_rcpts with its own state)
CREATE TABLE batches (
    id           INTEGER PRIMARY KEY,
    job_id       INTEGER NOT NULL REFERENCES jobs(id),
    domain       TEXT NOT NULL,
    rcpts        TEXT NOT NULL,
    n            INTEGER NOT NULL,
    sent         INTEGER NOT NULL DEFAULT 0,          -- recipients the relay accepted
    state        TEXT NOT NULL DEFAULT 'active'
                 CHECK (state IN ('active', 'deferred', 'sending', 'done')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL DEFAULT 0,
    last_reply   TEXT,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX batches_due ON batches(state, next_attempt);
CREATE INDEX batches_by_job ON batches(job_id, state);
CREATE INDEX jobs_expanding ON jobs(expanded) WHERE expanded = 0;

-- A recipient the relay refused permanently (5xx) or that stayed deferred
-- past delivery.give_up_hours: input for bounce processing.
CREATE TABLE bounce_events (
    id          INTEGER PRIMARY KEY,
    list        TEXT,
    address     TEXT NOT NULL,
    job_id      INTEGER,
    kind        TEXT NOT NULL CHECK (kind IN ('failed', 'expired')),
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    processed   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX bounce_events_pending ON bounce_events(processed, id);
