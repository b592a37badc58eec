-- Each list's member count, kept by triggers, so an owner's overview of
-- a list with a million members reads one row instead of counting them.
CREATE TABLE member_counts (
    list TEXT PRIMARY KEY,
    n    INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO member_counts(list, n) SELECT list, COUNT(*) FROM members GROUP BY list;

CREATE TRIGGER member_counts_add AFTER INSERT ON members BEGIN
    INSERT INTO member_counts(list, n) VALUES (NEW.list, 1)
        ON CONFLICT(list) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER member_counts_remove AFTER DELETE ON members BEGIN
    UPDATE member_counts SET n = n - 1 WHERE list = OLD.list;
END;

CREATE TRIGGER member_counts_move AFTER UPDATE OF list ON members
    WHEN NEW.list IS NOT OLD.list BEGIN
    UPDATE member_counts SET n = n - 1 WHERE list = OLD.list;
    INSERT INTO member_counts(list, n) VALUES (NEW.list, 1)
        ON CONFLICT(list) DO UPDATE SET n = n + 1;
END;
