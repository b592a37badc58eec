-- 0062: per-member moderation, Mailman's member "moderate" flag. NULL: the
-- list's posting policy applies. Otherwise the member's posts are accepted
-- (skip the posting policy), held for the moderators, rejected with a
-- notice, or discarded. A list's `moderate_new_members` sets 'hold' on join.
ALTER TABLE members ADD COLUMN moderation TEXT
    CHECK (moderation IN ('accept', 'hold', 'reject', 'discard'));
