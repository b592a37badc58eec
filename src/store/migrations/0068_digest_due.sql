-- 0068: a post no longer closes a digest issue in its own transaction. When
-- the count or size trigger fires, the post marks the list's issue due (the
-- trigger that fired) and the digest worker closes it in its own
-- transaction; closing clears the mark.
ALTER TABLE digest_state ADD COLUMN due TEXT CHECK (due IN ('count', 'size'));
