-- 0063: how a subscriber asked to get the list (`subscribe LIST digest=mime`,
-- Mailman's `join digest=`), kept with the confirmation token and with the
-- owners' request until the subscription happens. NULL: each post.
ALTER TABLE tokens ADD COLUMN mode TEXT
    CHECK (mode IN ('each', 'digest_mime', 'digest_plain', 'nomail'));
ALTER TABLE sub_requests ADD COLUMN mode TEXT
    CHECK (mode IN ('each', 'digest_mime', 'digest_plain', 'nomail'));
