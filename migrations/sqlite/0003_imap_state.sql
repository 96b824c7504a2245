-- Where the IMAP poller stands in each mailbox.
CREATE TABLE imap_state (
    mailbox TEXT PRIMARY KEY,
    uid_validity INTEGER NOT NULL,
    last_uid INTEGER NOT NULL
);
