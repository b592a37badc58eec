-- The web admin's credentials, each stored only as the SHA-256 of the
-- secret: single-use login links, browser sessions, API tokens.
CREATE TABLE web_login_tokens (
    hash BLOB PRIMARY KEY,
    address TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
) WITHOUT ROWID;
CREATE INDEX web_login_tokens_expiry ON web_login_tokens(expires_at);

CREATE TABLE web_sessions (
    hash BLOB PRIMARY KEY,
    address TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_sessions_expiry ON web_sessions(expires_at);

CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
