-- 0004: the command robot: confirmation tokens, owner-approval requests, and
-- the per-address reply log behind robot.replies_per_hour.

-- Subscription requests waiting for an owner (policy approve / confirm_then_approve).
-- state: pending -> approved | rejected
CREATE TABLE sub_requests (
    id           INTEGER PRIMARY KEY,
    list         TEXT NOT NULL,
    address      TEXT NOT NULL,
    address_key  TEXT NOT NULL,
    name         TEXT,
    requested_by TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'approved', 'rejected')),
    created_at   INTEGER NOT NULL,
    decided_at   INTEGER,
    decided_by   TEXT,
    reason       TEXT
);
CREATE INDEX sub_requests_pending ON sub_requests(list, state, address_key);

-- Confirmation and approval tokens. Only the SHA-256 of a token is stored;
-- the token itself exists only in the mail that carried it.
-- action: subscribe | unsubscribe (confirmed by the address itself)
--         approve (an owner deciding a subscription request)
CREATE TABLE tokens (
    token_hash  TEXT PRIMARY KEY,          -- hex SHA-256 of the lower-cased token
    list        TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('subscribe', 'unsubscribe', 'approve')),
    address     TEXT NOT NULL,             -- the address the action is for
    address_key TEXT NOT NULL,
    name        TEXT,                      -- display name to subscribe with
    requested_by TEXT NOT NULL,            -- who sent the command
    request_id  INTEGER REFERENCES sub_requests(id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER                    -- set once: tokens are single-use
);
CREATE INDEX tokens_by_expiry ON tokens(expires_at);
CREATE INDEX tokens_by_request ON tokens(request_id);

-- One row per robot mail sent to an address, for the hourly limit.
CREATE TABLE robot_replies (
    id          INTEGER PRIMARY KEY,
    address_key TEXT NOT NULL,
    sent_at     INTEGER NOT NULL
);
CREATE INDEX robot_replies_by_address ON robot_replies(address_key, sent_at);
