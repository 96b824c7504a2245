-- The help center's accounts: passwords (Argon2id PHC strings), sessions
-- and one-time links by the SHA-256 of their secret (a copy of the
-- database opens no account), and the failed sign-ins that throttling
-- counts.

ALTER TABLE users ADD COLUMN password_hash TEXT;

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE account_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    purpose TEXT NOT NULL CHECK (purpose IN ('activation', 'password_reset')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX account_tokens_by_user ON account_tokens(user_id, purpose);

-- By address as typed (normalized), known or not: unknown addresses are
-- throttled like known ones, so the answers tell nobody which exist.
CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    client TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX login_failures_by_email ON login_failures(email, at);
CREATE INDEX login_failures_by_client ON login_failures(client, at);

CREATE TABLE login_locks (
    email TEXT PRIMARY KEY,
    until INTEGER NOT NULL
);

-- "Meine Aktivitäten" lists by last activity.
CREATE INDEX tickets_by_requester_activity ON tickets(requester_id, updated_at);
CREATE INDEX tickets_by_org_activity ON tickets(organization_id, updated_at);
-- An agent's "all requests".
CREATE INDEX tickets_by_activity ON tickets(updated_at);
