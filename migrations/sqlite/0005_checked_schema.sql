-- The schema with its invariants written down: every enumerated column
-- checked against its values; attachment contents in the database (one
-- durable commit covers a message and its files); notifications that carry
-- what they will say (their template context, fixed at their event); id
-- counters, so that a batch numbers its tickets and comments itself.
--
-- SQLite adds CHECK constraints only by rebuilding a table, and a table
-- that others reference cannot be rebuilt with foreign keys on (sqlx runs
-- every migration in a transaction, where they cannot be turned off). So
-- the tables nothing references are rebuilt with CHECKs, and the others
-- (users, tickets, comments) get triggers that check the same.

CREATE TRIGGER users_role_insert BEFORE INSERT ON users
WHEN NEW.role NOT IN ('key_user', 'member', 'agent')
BEGIN SELECT RAISE(ABORT, 'users.role must be key_user, member or agent'); END;
CREATE TRIGGER users_role_update BEFORE UPDATE OF role ON users
WHEN NEW.role NOT IN ('key_user', 'member', 'agent')
BEGIN SELECT RAISE(ABORT, 'users.role must be key_user, member or agent'); END;

ALTER TABLE tickets ADD COLUMN rating_comment TEXT;
CREATE TRIGGER tickets_check_insert BEFORE INSERT ON tickets
WHEN NEW.status NOT IN ('open', 'pending', 'solved', 'closed')
    OR NEW.priority NOT IN ('normal', 'urgent')
    OR NEW.category NOT IN ('customer_support', 'onboarding_csm', 'billing',
        'developer_support', 'partner_custom_code')
    OR (NEW.rating IS NOT NULL AND NEW.rating NOT IN ('good', 'bad'))
BEGIN SELECT RAISE(ABORT, 'tickets: status, priority, category or rating out of range'); END;
CREATE TRIGGER tickets_check_update BEFORE UPDATE ON tickets
WHEN NEW.status NOT IN ('open', 'pending', 'solved', 'closed')
    OR NEW.priority NOT IN ('normal', 'urgent')
    OR NEW.category NOT IN ('customer_support', 'onboarding_csm', 'billing',
        'developer_support', 'partner_custom_code')
    OR (NEW.rating IS NOT NULL AND NEW.rating NOT IN ('good', 'bad'))
BEGIN SELECT RAISE(ABORT, 'tickets: status, priority, category or rating out of range'); END;
CREATE INDEX tickets_by_requester ON tickets(requester_id, id);
DROP INDEX tickets_by_org;
CREATE INDEX tickets_by_org ON tickets(organization_id, id);

CREATE TRIGGER comments_public_insert BEFORE INSERT ON comments
WHEN NEW.public NOT IN (0, 1)
BEGIN SELECT RAISE(ABORT, 'comments.public must be 0 or 1'); END;

-- Attachment contents, by their SHA-256 (files written before this version
-- are moved in at the first start, see blobs.rs).
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    data BLOB NOT NULL
);

CREATE TABLE messages_new (
    message_id TEXT PRIMARY KEY,
    fingerprint TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('created', 'appended', 'reopened', 'followup',
        'suspended', 'ignored')),
    reason TEXT CHECK (reason IN ('spoof_suspected', 'ambiguous_sender', 'not_key_user',
        'unknown_sender', 'auto_reply', 'bounce', 'loop', 'over_limit', 'unreadable',
        'processing_error')),
    ticket_id INTEGER,
    processed_at INTEGER NOT NULL
);
INSERT INTO messages_new SELECT message_id, fingerprint, outcome, reason, ticket_id, processed_at
    FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;

CREATE TABLE suspended_new (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('spoof_suspected', 'ambiguous_sender', 'not_key_user',
        'unknown_sender', 'over_limit', 'unreadable', 'processing_error')),
    detail TEXT,
    sender TEXT,
    subject TEXT NOT NULL,
    raw BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
INSERT INTO suspended_new SELECT id, message_id, reason, detail, sender, subject, raw, created_at
    FROM suspended;
DROP TABLE suspended;
ALTER TABLE suspended_new RENAME TO suspended;

-- A notification carries its envelope and its template context (JSON).
-- Rows queued by an older version have no context and are failed with a
-- note: flush the outbox before upgrading.
CREATE TABLE outbox_new (
    id INTEGER PRIMARY KEY,
    event TEXT NOT NULL CHECK (event IN ('ticket_created', 'agent_reply', 'ticket_solved',
        'followup_created', 'not_key_user', 'agent_new_ticket', 'agent_customer_reply',
        'urgent_ticket', 'invitation', 'password_reset')),
    ticket_id INTEGER REFERENCES tickets(id),
    recipients TEXT NOT NULL,            -- JSON array of addresses
    locale TEXT NOT NULL,
    subject TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    in_reply_to TEXT,
    refs TEXT NOT NULL,                  -- space-separated Message-IDs
    reply_to TEXT NOT NULL,
    automatic INTEGER NOT NULL CHECK (automatic IN (0, 1)),
    context TEXT NOT NULL,               -- JSON: what the templates see
    state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed', 'bounced', 'suppressed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
INSERT INTO outbox_new SELECT id, event, ticket_id, recipients, locale, subject, message_id,
    in_reply_to, refs, '', automatic, '{}',
    CASE state WHEN 'queued' THEN 'failed' ELSE state END,
    attempts, next_attempt_at,
    CASE state WHEN 'queued'
        THEN 'queued by an older ticketgate, which kept no snapshot of the mail; not sent'
        ELSE last_error END,
    created_at, sent_at
    FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
CREATE INDEX outbox_by_recipient ON outbox(recipients, sent_at);

-- The next number of each kind of row a batch numbers itself.
CREATE TABLE id_counters (
    name TEXT PRIMARY KEY CHECK (name IN ('tickets', 'comments')),
    next INTEGER NOT NULL
);
INSERT INTO id_counters VALUES ('tickets', (SELECT COALESCE(MAX(id), 0) + 1 FROM tickets));
INSERT INTO id_counters VALUES ('comments', (SELECT COALESCE(MAX(id), 0) + 1 FROM comments));

