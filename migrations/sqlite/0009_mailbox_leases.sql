-- Which `ticketgate run` instance reads which mailbox: the holder renews
-- its lease; when it stops (it died), another instance takes the mailbox
-- over once the lease has expired. Times are the database's clock, so that
-- instances on several hosts agree on them.
CREATE TABLE mailbox_leases (
    mailbox TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    taken_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
