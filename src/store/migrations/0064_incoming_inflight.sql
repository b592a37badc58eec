-- 0064: how many times a row of the incoming queue was claimed by the
-- pipeline without an outcome committed after it: the worker died (a crash,
-- an abort) or the handler panicked. Committed before the row's handler runs
-- and cleared when its outcome commits, so it survives the rollback and the
-- crash. A row with inflight > 0 is handled alone; at the limit it moves to
-- corrupt.
ALTER TABLE incoming ADD COLUMN inflight INTEGER NOT NULL DEFAULT 0;
