-- Each solve gets a number; rating links name the solve they belong to.
ALTER TABLE tickets ADD COLUMN solve_count INTEGER NOT NULL DEFAULT 0;
