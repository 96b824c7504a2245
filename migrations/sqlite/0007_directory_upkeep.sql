-- People leave: a deactivated person keeps their tickets and comments but
-- can no longer write, sign in or be notified (`users remove`,
-- `users import --sync`). Importing them again activates them.
ALTER TABLE users ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
