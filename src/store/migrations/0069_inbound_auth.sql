-- The authentication verdict intake records with each inbound message
-- (NULL: not checked). The pipeline reads these, never a header.
ALTER TABLE messages ADD COLUMN auth_dmarc TEXT;   -- pass|fail|none|temperror|permerror
ALTER TABLE messages ADD COLUMN auth_policy TEXT;  -- absent|none|quarantine|reject|unknown
ALTER TABLE messages ADD COLUMN auth_from TEXT;    -- the From: domain checked
