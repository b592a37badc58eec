-- 0076: the list archive on the web (issue 15).
-- Posts per list and month file, kept by triggers on archive_index so every
-- writer (archiving, `listd archive import`) keeps it in step; the months
-- page reads it with one index range instead of counting a whole list.
CREATE TABLE archive_months (
    list    TEXT NOT NULL,
    month   TEXT NOT NULL,                 -- YYYY-MM, from mbox_path LIST/YYYY-MM.mbox
    posts   INTEGER NOT NULL,
    PRIMARY KEY (list, month)
) WITHOUT ROWID;
INSERT INTO archive_months(list, month, posts)
    SELECT list, substr(mbox_path, length(list) + 2, length(mbox_path) - length(list) - 6), COUNT(*)
    FROM archive_index GROUP BY list, mbox_path;
CREATE TRIGGER archive_months_add AFTER INSERT ON archive_index BEGIN
    INSERT INTO archive_months(list, month, posts)
        VALUES (NEW.list, substr(NEW.mbox_path, length(NEW.list) + 2, length(NEW.mbox_path) - length(NEW.list) - 6), 1)
        ON CONFLICT(list, month) DO UPDATE SET posts = posts + 1;
END;
CREATE TRIGGER archive_months_remove AFTER DELETE ON archive_index BEGIN
    UPDATE archive_months SET posts = posts - 1
        WHERE list = OLD.list
          AND month = substr(OLD.mbox_path, length(OLD.list) + 2, length(OLD.mbox_path) - length(OLD.list) - 6);
    DELETE FROM archive_months WHERE list = OLD.list AND posts <= 0;
END;
-- A month's posts by date and by author: a month page is one index range.
CREATE INDEX archive_by_month ON archive_index(mbox_path, date);
CREATE INDEX archive_by_author ON archive_index(mbox_path, from_addr, date);
