-- What tells two messages with the same Message-ID apart: a reused or
-- predictable Message-ID must not make a stranger's mail a duplicate.
ALTER TABLE messages ADD COLUMN fingerprint TEXT;
-- The attachment's name as sent, when it had to be made safe.
ALTER TABLE attachments ADD COLUMN original_filename TEXT;
