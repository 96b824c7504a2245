-- Colleagues of the requester's organization who were in To/Cc of a
-- customer's mail follow the ticket: they get the public answers.
CREATE TABLE followers (
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (ticket_id, user_id)
);
