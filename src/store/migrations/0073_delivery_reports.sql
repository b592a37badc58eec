-- 0073: delivery status notifications (RFC 3464) when delivery gives up.
-- A recipient given up after delivery.give_up_hours is marked, so its
-- report says 4.4.7 (delivery time expired) and a list post's owners hear
-- of timeouts but not of each 5xx the bounce processor already scores.
ALTER TABLE job_rcpts ADD COLUMN timed_out INTEGER NOT NULL DEFAULT 0;
-- Who asked for a robot mail (the command's sender): the one address a
-- report about it may go to, rate-limited like any robot reply.
ALTER TABLE jobs ADD COLUMN requester TEXT;
