-- A console user's sessions carry the epoch they were opened in; signing out moves the epoch
-- on, which ends every session of that user at once.
ALTER TABLE console_users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
