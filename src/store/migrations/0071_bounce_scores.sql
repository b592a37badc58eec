-- 0071: bounce processing. `bounces` is rebuilt with a kind and a nullable
-- body: after `bounce.retain_days` the retention clean-up clears
-- message_id (the body then goes like any unreferenced one) and the row
-- stays as the event. Each member that bounced gets a score row
-- (list, address_key), which also carries a disabled member's probes.
CREATE TABLE bounces_new (
    id          INTEGER PRIMARY KEY,
    list        TEXT NOT NULL,
    message_id  INTEGER REFERENCES messages(id), -- NULL once the body's retention ran out
    tag         TEXT,
    recipient   TEXT,
    status      TEXT,
    diagnostic  TEXT,
    env_from    TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    processed   INTEGER NOT NULL DEFAULT 0,
    kind        TEXT                           -- hard, soft, policy, delayed, autoreply, unrecognised, bounce_of_bounce
);
INSERT INTO bounces_new(id, list, message_id, tag, recipient, status, diagnostic, env_from, received_at, processed)
    SELECT id, list, message_id, tag, recipient, status, diagnostic, env_from, received_at, processed FROM bounces;
DROP TABLE bounces;
ALTER TABLE bounces_new RENAME TO bounces;
CREATE INDEX bounces_by_list ON bounces(list, recipient);
CREATE INDEX bounces_by_list_id ON bounces(list, id);  -- `listd bounces`: the newest first
CREATE INDEX bounces_by_message ON bounces(message_id);
CREATE INDEX bounces_body_by_age ON bounces(received_at) WHERE message_id IS NOT NULL;

CREATE TABLE bounce_scores (
    list           TEXT NOT NULL,
    address_key    TEXT NOT NULL,
    address        TEXT NOT NULL,
    score          REAL NOT NULL DEFAULT 0,
    counted        INTEGER NOT NULL DEFAULT 0,  -- bounces that counted
    last_day       INTEGER,                     -- day (unix time / 86400) of the last counted bounce
    last_bounce_at INTEGER,
    last_status    TEXT,
    disabled_at    INTEGER,
    probes         INTEGER NOT NULL DEFAULT 0,  -- probes sent since disabled
    next_probe_at  INTEGER,
    PRIMARY KEY (list, address_key)
) WITHOUT ROWID;
CREATE INDEX bounce_scores_probe_due ON bounce_scores(next_probe_at) WHERE next_probe_at IS NOT NULL;
