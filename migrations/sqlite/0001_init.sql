-- Times are Unix seconds (INTEGER) so the same code reads SQLite and PostgreSQL.

CREATE TABLE organizations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    organization_id INTEGER NOT NULL REFERENCES organizations(id),
    email TEXT NOT NULL UNIQUE,          -- lowercased
    name TEXT NOT NULL,
    role TEXT NOT NULL,                  -- key_user | member | agent
    locale TEXT NOT NULL
);

CREATE TABLE tickets (
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    organization_id INTEGER NOT NULL REFERENCES organizations(id),
    requester_id INTEGER NOT NULL REFERENCES users(id),
    category TEXT NOT NULL,
    priority TEXT NOT NULL,
    status TEXT NOT NULL,
    followup_of INTEGER REFERENCES tickets(id),
    rating TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    solved_at INTEGER,
    closed_at INTEGER
);
CREATE INDEX tickets_by_status ON tickets(status, solved_at);
CREATE INDEX tickets_by_org ON tickets(organization_id);

CREATE TABLE comments (
    id INTEGER PRIMARY KEY,
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    author_id INTEGER NOT NULL REFERENCES users(id),
    public INTEGER NOT NULL,
    body TEXT NOT NULL,
    full_text TEXT NOT NULL,
    message_id TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX comments_by_ticket ON comments(ticket_id, id);

CREATE TABLE attachments (
    id INTEGER PRIMARY KEY,
    comment_id INTEGER NOT NULL REFERENCES comments(id),
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE INDEX attachments_by_comment ON attachments(comment_id);

-- Every message ever processed, by Message-ID: deduplication and the
-- processing log.
CREATE TABLE messages (
    message_id TEXT PRIMARY KEY,
    outcome TEXT NOT NULL,
    reason TEXT,
    ticket_id INTEGER,
    processed_at INTEGER NOT NULL
);

-- Message-IDs (inbound and outbound) that thread into a ticket.
CREATE TABLE message_refs (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    created_at INTEGER NOT NULL
);
CREATE INDEX message_refs_by_ticket ON message_refs(ticket_id, id);

CREATE TABLE suspended (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT,
    sender TEXT,
    subject TEXT NOT NULL,
    raw BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    event TEXT NOT NULL,
    ticket_id INTEGER REFERENCES tickets(id),
    comment_id INTEGER REFERENCES comments(id),
    recipients TEXT NOT NULL,            -- JSON array of addresses
    locale TEXT NOT NULL,
    subject TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    in_reply_to TEXT,
    refs TEXT NOT NULL,                  -- space-separated Message-IDs
    automatic INTEGER NOT NULL,
    state TEXT NOT NULL,                 -- queued | sent | failed | bounced | suppressed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
CREATE INDEX outbox_by_recipient ON outbox(recipients, created_at);
