//! The list archive: every distributed post is appended to an mbox file per
//! list per month, `data_dir/archive/LIST/YYYY-MM.mbox` (mboxrd: `From `
//! separator lines, `>From ` quoting, LF line ends), and indexed in the
//! `archive_index` table (Message-ID, date, from, subject, thread parent,
//! file, byte offset and length). Also exports a list's archive as one mbox,
//! and imports an old mbox without distributing it.
//!
//! Crash safety: an append writes and fsyncs the file, then inserts the index
//! row in the caller's transaction. The index is the truth: bytes past the
//! last indexed entry of a file are left-overs of an append whose transaction
//! never committed, and are cut off before the next append to that file.
//! Appends are idempotent by (list, Message-ID), so a replayed post is not
//! archived twice. The caller's SQLite write transaction serialises appends
//! (the daemon's and `listd archive import`'s).
//!
//! Trusts the index it wrote; trusts nothing in message bytes or in mbox
//! files being imported (malformed input is reported with its position).

use crate::store::StoreError;
use mail_parser::{HeaderValue, MessageParser};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Archive errors name the file involved.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Corrupt { path: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ArchiveError {
    fn from(e: rusqlite::Error) -> Self {
        ArchiveError::Store(StoreError::Sqlite(e))
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The archive's root folder: `data_dir/archive`.
pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("archive")
}

/// What the index records about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Without angle brackets; synthesised from a hash when the message has none.
    pub message_id: String,
    /// Unix seconds, from Date: (else the fallback given).
    pub date: i64,
    pub from: String,
    pub subject: String,
    /// In-Reply-To, else the last References id.
    pub parent: Option<String>,
}

fn first_id(v: &HeaderValue<'_>) -> Option<String> {
    match v {
        HeaderValue::Text(t) => Some(t.to_string()),
        HeaderValue::TextList(l) => l.first().map(|s| s.to_string()),
        _ => None,
    }
}

fn last_id(v: &HeaderValue<'_>) -> Option<String> {
    match v {
        HeaderValue::Text(t) => Some(t.to_string()),
        HeaderValue::TextList(l) => l.last().map(|s| s.to_string()),
        _ => None,
    }
}

impl Entry {
    /// Reads the index fields of `bytes`; `fallback_date` is used when the
    /// message has no usable Date:, `domain` for a synthesised Message-ID.
    pub fn of(bytes: &[u8], fallback_date: i64, domain: &str) -> Entry {
        let m = MessageParser::default().parse_headers(bytes);
        let synth = || {
            let h = Sha256::digest(bytes);
            format!("listd.{}@{domain}", hex::encode(&h[..12]))
        };
        let Some(m) = m else {
            return Entry {
                message_id: synth(),
                date: fallback_date,
                from: String::new(),
                subject: String::new(),
                parent: None,
            };
        };
        let parent = first_id(m.in_reply_to())
            .or_else(|| last_id(m.references()))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        Entry {
            message_id: m
                .message_id()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(synth),
            date: m
                .date()
                .map(|d| d.to_timestamp())
                .filter(|t| *t > 0)
                .unwrap_or(fallback_date),
            from: m
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.address.as_deref())
                .unwrap_or_default()
                .to_string(),
            subject: m.subject().unwrap_or_default().to_string(),
            parent,
        }
    }
}

/// `YYYY-MM` of a unix time (UTC).
pub fn month_of(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y-%m")
        .to_string()
}

/// The mbox `From ` line for a message from `sender` at `t` (no line end).
pub fn from_line(sender: &str, t: i64) -> String {
    let sender = if sender.is_empty() || sender.contains(char::is_whitespace) {
        "MAILER-DAEMON"
    } else {
        sender
    };
    let when = chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%a %b %e %H:%M:%S %Y");
    format!("From {sender} {when}")
}

/// Parses the date of a `From ` line (`From sender Sat Nov 22 03:13:35 2026`).
pub fn from_line_date(line: &str) -> Option<i64> {
    let rest = line.strip_prefix("From ")?.trim_end();
    let (_, date) = rest.split_once(' ')?;
    let date = date.split_whitespace().collect::<Vec<_>>().join(" ");
    chrono::NaiveDateTime::parse_from_str(&date, "%a %b %d %H:%M:%S %Y")
        .ok()
        .map(|d| d.and_utc().timestamp())
}

/// One mbox entry: the `From ` line, the message with LF line ends and
/// `>From ` quoting (mboxrd), and the empty line that ends it.
pub fn mbox_entry(from_line: &str, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + from_line.len() + 64);
    out.extend_from_slice(from_line.as_bytes());
    out.push(b'\n');
    let mut rest = message;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&c| c == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let quoted = line.iter().take_while(|&&c| c == b'>').count();
        if line[quoted..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
        out.push(b'\n');
        rest = next;
    }
    out.push(b'\n');
    out
}

/// Undoes mboxrd quoting on one line (`>From ` -> `From `, `>>From ` -> `>From `).
fn unquote_line(line: &[u8]) -> &[u8] {
    let quoted = line.iter().take_while(|&&c| c == b'>').count();
    if quoted > 0 && line[quoted..].starts_with(b"From ") {
        &line[1..]
    } else {
        line
    }
}

/// Whether this list/Message-ID is archived already.
pub fn is_archived(conn: &Connection, list: &str, message_id: &str) -> Result<bool, ArchiveError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM archive_index WHERE list = ?1 AND message_id = ?2")?
        .query_row(params![list, message_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The outcome of one append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    Added {
        /// Relative to the archive root, e.g. `dev/2026-11.mbox`.
        mbox_path: String,
        offset: u64,
        length: u64,
    },
    /// This Message-ID is already in the list's archive.
    AlreadyArchived,
}

/// Where and how an entry is written.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// The mbox separator line (no line end).
    pub from_line: &'a str,
    /// Picks the monthly file.
    pub month_time: i64,
    /// Recorded as `archived_at`.
    pub now: i64,
}

thread_local! {
    /// The mbox files appended to on this thread since [`SyncBatch::begin`].
    static UNSYNCED: std::cell::RefCell<Option<std::collections::BTreeSet<PathBuf>>> =
        const { std::cell::RefCell::new(None) };
}

/// Groups the fsyncs of the appends of one transaction: between `begin`
/// and `finish`, appends on this thread leave their file unsynced, and
/// `finish` syncs each file once. Call `finish` before the transaction
/// commits, so the index never names bytes that are not on disk. Without a
/// batch, every append syncs its own file.
pub struct SyncBatch(std::marker::PhantomData<*const ()>);

impl SyncBatch {
    pub fn begin() -> SyncBatch {
        UNSYNCED.with(|u| *u.borrow_mut() = Some(Default::default()));
        SyncBatch(std::marker::PhantomData)
    }

    /// Syncs every file appended to since `begin`.
    pub fn finish(self) -> Result<(), ArchiveError> {
        Self::sync_all()
    }

    /// Records `path` for the batch; false when no batch is open.
    fn defer(path: &Path) -> bool {
        UNSYNCED.with(|u| match u.borrow_mut().as_mut() {
            Some(set) => {
                set.insert(path.to_path_buf());
                true
            }
            None => false,
        })
    }

    fn sync_all() -> Result<(), ArchiveError> {
        let Some(paths) = UNSYNCED.with(|u| u.borrow_mut().take()) else {
            return Ok(());
        };
        for p in paths {
            std::fs::File::open(&p)
                .and_then(|f| f.sync_data())
                .map_err(io_err(&p))?;
        }
        Ok(())
    }
}

impl Drop for SyncBatch {
    /// A batch given up (an error path) still syncs what it wrote.
    fn drop(&mut self) {
        if let Err(e) = Self::sync_all() {
            tracing::error!(error = %e, "archive: syncing an abandoned batch failed");
        }
    }
}

/// Where the indexed part of an mbox file ends.
pub const END_OF_FILE: &str =
    "SELECT offset + length FROM archive_index WHERE mbox_path = ?1 ORDER BY offset DESC LIMIT 1";

/// Appends one message to `list`'s archive and indexes it, inside the
/// caller's transaction `conn`.
pub fn append(
    data_dir: &Path,
    conn: &Connection,
    list: &str,
    entry: &Entry,
    message: &[u8],
    place: &Place<'_>,
) -> Result<Appended, ArchiveError> {
    let (from_line, month_time, now) = (place.from_line, place.month_time, place.now);
    if is_archived(conn, list, &entry.message_id)? {
        return Ok(Appended::AlreadyArchived);
    }
    let rel = format!("{list}/{}.mbox", month_of(month_time));
    let path = root(data_dir).join(&rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    // the last entry by offset ends the file: one seek on archive_by_file,
    // whatever the month's size (a MAX over the month scanned every row)
    let indexed_end: i64 = conn
        .prepare_cached(END_OF_FILE)?
        .query_row([&rel], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    let len = f.metadata().map_err(io_err(&path))?.len();
    let indexed_end = indexed_end.max(0) as u64;
    let offset = if len > indexed_end {
        tracing::warn!(
            file = %path.display(),
            stray = len - indexed_end,
            "cutting off an unindexed tail (an append whose transaction never committed)"
        );
        f.set_len(indexed_end).map_err(io_err(&path))?;
        indexed_end
    } else {
        if len < indexed_end {
            tracing::error!(file = %path.display(), len, indexed_end, "archive file is shorter than its index");
        }
        len
    };
    let bytes = mbox_entry(from_line, message);
    f.seek(SeekFrom::Start(offset)).map_err(io_err(&path))?;
    f.write_all(&bytes).map_err(io_err(&path))?;
    if !SyncBatch::defer(&path) {
        f.sync_data().map_err(io_err(&path))?;
    }
    conn.prepare_cached(
        "INSERT INTO archive_index(list, message_id, date, from_addr, subject, parent,
                                   mbox_path, offset, length, archived_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        list,
        entry.message_id,
        entry.date,
        entry.from,
        entry.subject,
        entry.parent,
        rel,
        offset as i64,
        bytes.len() as i64,
        now
    ])?;
    Ok(Appended::Added {
        mbox_path: rel,
        offset,
        length: bytes.len() as u64,
    })
}

/// Archives a distributed post in the month of `now`; the `From ` line
/// names the From: address.
pub fn archive_post(
    data_dir: &Path,
    conn: &Connection,
    list: &str,
    domain: &str,
    message: &[u8],
    now: i64,
) -> Result<Appended, ArchiveError> {
    let entry = Entry::of(message, now, domain);
    let place = Place {
        from_line: &from_line(&entry.from, now),
        month_time: now,
        now,
    };
    append(data_dir, conn, list, &entry, message, &place)
}

/// Which of a list's archived posts an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select<'a> {
    /// Posts dated at or after this time (None: all), in date order
    /// (`listd archive export`).
    Since(Option<i64>),
    /// The posts of one month file (`YYYY-MM`), in file order (the robot's
    /// `get`). Bytes past the last indexed entry (an append that never
    /// committed) are not included.
    Month(&'a str),
}

/// Writes the selected posts of `list`'s archive to `out` as one mbox.
/// Returns how many messages were written.
pub fn export(
    data_dir: &Path,
    conn: &Connection,
    list: &str,
    select: Select<'_>,
    out: &mut impl Write,
) -> Result<usize, ArchiveError> {
    match select {
        Select::Since(since) => write_entries(
            data_dir,
            conn,
            "SELECT mbox_path, offset, length FROM archive_index
             WHERE list = ?1 AND date >= ?2 ORDER BY date, id",
            params![list, since.unwrap_or(i64::MIN)],
            out,
        ),
        Select::Month(month) => write_entries(
            data_dir,
            conn,
            "SELECT mbox_path, offset, length FROM archive_index
             WHERE list = ?1 AND mbox_path = ?2 ORDER BY offset",
            params![list, format!("{list}/{month}.mbox")],
            out,
        ),
    }
}

/// One month file of a list's archive, as the robot's `index` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Month {
    /// `YYYY-MM`.
    pub month: String,
    pub posts: i64,
    pub bytes: i64,
}

/// The month files of `list`'s archive, oldest first, from the index.
pub fn months(conn: &Connection, list: &str) -> Result<Vec<Month>, ArchiveError> {
    let mut stmt = conn.prepare_cached(
        "SELECT mbox_path, COUNT(*), SUM(length) FROM archive_index
         WHERE list = ?1 GROUP BY mbox_path ORDER BY mbox_path",
    )?;
    let rows = stmt.query_map([list], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let prefix = format!("{list}/");
    let mut out = Vec::new();
    for row in rows {
        let (rel, posts, bytes) = row?;
        let month = rel
            .strip_prefix(&prefix)
            .and_then(|m| m.strip_suffix(".mbox"))
            .unwrap_or(&rel)
            .to_string();
        out.push(Month {
            month,
            posts,
            bytes,
        });
    }
    Ok(out)
}

/// The month file `month` (`YYYY-MM`) of `list`'s archive, if it has posts.
pub fn month(conn: &Connection, list: &str, month: &str) -> Result<Option<Month>, ArchiveError> {
    let rel = format!("{list}/{month}.mbox");
    let (posts, bytes): (i64, Option<i64>) = conn
        .prepare_cached(
            "SELECT COUNT(*), SUM(length) FROM archive_index WHERE list = ?1 AND mbox_path = ?2",
        )?
        .query_row(params![list, rel], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((posts > 0).then(|| Month {
        month: month.to_string(),
        posts,
        bytes: bytes.unwrap_or(0),
    }))
}

/// Copies the entries a query selects (`mbox_path, offset, length` rows)
/// from the month files to `out`, checking each starts with its `From `
/// line. Returns how many were written.
fn write_entries(
    data_dir: &Path,
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    out: &mut impl Write,
) -> Result<usize, ArchiveError> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params, |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let root = root(data_dir);
    let mut open: Option<(String, File)> = None;
    let mut buf = Vec::new();
    let mut n = 0;
    for row in rows {
        let (rel, offset, length) = row?;
        let path = root.join(&rel);
        if open.as_ref().map(|(p, _)| p != &rel).unwrap_or(true) {
            let f = File::open(&path).map_err(io_err(&path))?;
            open = Some((rel.clone(), f));
        }
        let Some((_, f)) = open.as_mut() else {
            continue;
        };
        read_entry(f, &path, offset, length, &mut buf)?;
        out.write_all(&buf).map_err(io_err(Path::new("<output>")))?;
        n += 1;
    }
    out.flush().map_err(io_err(Path::new("<output>")))?;
    Ok(n)
}

/// Reads the entry of `length` bytes at `offset` of the open month file
/// `f` into `buf`, checking that it starts with its `From ` line.
fn read_entry(
    f: &mut File,
    path: &Path,
    offset: i64,
    length: i64,
    buf: &mut Vec<u8>,
) -> Result<(), ArchiveError> {
    f.seek(SeekFrom::Start(offset.max(0) as u64))
        .map_err(io_err(path))?;
    buf.resize(length.max(0) as usize, 0);
    f.read_exact(buf).map_err(|e| ArchiveError::Corrupt {
        path: path.display().to_string(),
        message: format!("entry at byte {offset} ({length} bytes) cannot be read: {e}"),
    })?;
    if !buf.starts_with(b"From ") {
        return Err(ArchiveError::Corrupt {
            path: path.display().to_string(),
            message: format!("no `From ` line at byte {offset}: the index does not match the file"),
        });
    }
    Ok(())
}

/// One archived message as IMAP and POP3 serve it: the entry of `length`
/// bytes at `offset` of the month file `rel` (an index row's `mbox_path`),
/// without its `From ` line and the empty line that ends it, `>From `
/// quoting undone, with CRLF line ends. Reads that entry only, never the
/// rest of the month.
pub fn read_message(
    data_dir: &Path,
    rel: &str,
    offset: i64,
    length: i64,
) -> Result<Vec<u8>, ArchiveError> {
    let path = root(data_dir).join(rel);
    let mut f = File::open(&path).map_err(io_err(&path))?;
    let mut raw = Vec::new();
    read_entry(&mut f, &path, offset, length, &mut raw)?;
    let body = match memchr::memchr(b'\n', &raw) {
        Some(i) => &raw[i + 1..],
        None => &raw[raw.len()..],
    };
    // the empty line that separates entries
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    let mut out = Vec::with_capacity(body.len() + body.len() / 32 + 2);
    for line in body.split_inclusive(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        out.extend_from_slice(unquote_line(line));
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

/// One message read from an mbox: its `From ` line, the unquoted message
/// (LF line ends), and the line number where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MboxMessage {
    pub from_line: String,
    pub bytes: Vec<u8>,
    pub line: usize,
}

/// Streams the messages of an mbox (mboxrd or mboxo; `From ` at the start of
/// a line separates messages). Text before the first `From ` line is an error.
pub struct MboxReader<R> {
    input: R,
    line_no: usize,
    pending: Option<(String, usize)>,
    /// Bytes read so far (for progress).
    pub bytes_read: u64,
    done: bool,
}

impl<R: BufRead> MboxReader<R> {
    pub fn new(input: R) -> Self {
        MboxReader {
            input,
            line_no: 0,
            pending: None,
            bytes_read: 0,
            done: false,
        }
    }

    /// The next message, `Ok(None)` at the end.
    pub fn next_message(&mut self) -> Result<Option<MboxMessage>, String> {
        if self.done {
            return Ok(None);
        }
        let mut line = Vec::new();
        let mut body = Vec::new();
        loop {
            line.clear();
            let n = self
                .input
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("line {}: {e}", self.line_no + 1))?;
            if n == 0 {
                self.done = true;
                return Ok(self.pending.take().map(|(from_line, start)| MboxMessage {
                    from_line,
                    bytes: finish(body),
                    line: start,
                }));
            }
            self.line_no += 1;
            self.bytes_read += n as u64;
            if line.starts_with(b"From ") {
                let from_line = String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                let prev = self.pending.replace((from_line, self.line_no));
                if let Some((from_line, start)) = prev {
                    return Ok(Some(MboxMessage {
                        from_line,
                        bytes: finish(body),
                        line: start,
                    }));
                }
                continue;
            }
            if self.pending.is_none() {
                if line.trim_ascii().is_empty() {
                    continue;
                }
                return Err(format!(
                    "line {}: not an mbox file (expected a `From ` line first)",
                    self.line_no
                ));
            }
            // the line end and any CRs before it: `mbox_entry` writes lines
            // that never end in CR, so what is read here writes back the same
            let mut content = line.strip_suffix(b"\n").unwrap_or(&line);
            while let Some(l) = content.strip_suffix(b"\r") {
                content = l;
            }
            body.extend_from_slice(unquote_line(content));
            body.push(b'\n');
        }
    }
}

/// Drops the empty line that separates a message from the next `From `
/// (all there is of an empty message).
fn finish(mut body: Vec<u8>) -> Vec<u8> {
    if body.ends_with(b"\n\n") || body == b"\n" {
        body.pop();
    }
    body
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportStats {
    pub imported: usize,
    pub skipped_duplicates: usize,
}

/// Settings of one import.
#[derive(Debug, Clone)]
pub struct ImportTarget<'a> {
    pub data_dir: &'a Path,
    pub list: &'a str,
    /// For synthesised Message-IDs.
    pub domain: &'a str,
    pub now: i64,
    /// Messages per transaction: the daemon is never blocked for long.
    pub batch: usize,
}

/// Imports an mbox into a list's archive without distributing anything.
/// `progress` is called after each batch with the bytes read and the
/// messages read (imported or skipped) so far.
pub fn import(
    conn: &mut Connection,
    target: &ImportTarget<'_>,
    input: impl BufRead,
    mut progress: impl FnMut(u64, u64),
) -> Result<ImportStats, ArchiveError> {
    let ImportTarget {
        data_dir,
        list,
        domain,
        now,
        batch,
    } = *target;
    let mut reader = MboxReader::new(input);
    let mut stats = ImportStats::default();
    let batch = batch.max(1);
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let syncs = SyncBatch::begin();
        let mut in_batch = 0;
        let mut finished = false;
        while in_batch < batch {
            let msg = reader
                .next_message()
                .map_err(|message| ArchiveError::Corrupt {
                    path: "<input>".into(),
                    message,
                })?;
            let Some(msg) = msg else {
                finished = true;
                break;
            };
            let fallback = from_line_date(&msg.from_line).unwrap_or(now);
            let entry = Entry::of(&msg.bytes, fallback, domain);
            let place = Place {
                from_line: &msg.from_line,
                month_time: entry.date,
                now,
            };
            match append(data_dir, &tx, list, &entry, &msg.bytes, &place)? {
                Appended::Added { .. } => stats.imported += 1,
                Appended::AlreadyArchived => stats.skipped_duplicates += 1,
            }
            in_batch += 1;
        }
        syncs.finish()?;
        tx.commit()?;
        progress(
            reader.bytes_read,
            (stats.imported + stats.skipped_duplicates) as u64,
        );
        if finished {
            return Ok(stats);
        }
    }
}

/// Parses `--since`: `YYYY-MM-DD` (UTC midnight) or an RFC 3339 time.
pub fn parse_since(s: &str) -> Result<i64, String> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .timestamp());
    }
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|d| d.timestamp())
        .map_err(|_| format!("`{s}` is not a date: use YYYY-MM-DD or an RFC 3339 time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(dir: &Path) -> Connection {
        crate::store::open(&dir.join("listd.db")).unwrap()
    }

    const T: i64 = 1_763_780_000; // 2025-11-22

    fn msg(id: &str, date: &str, body: &str) -> Vec<u8> {
        format!(
            "From: Ann <ann@example.org>\r\nSubject: s {id}\r\nMessage-ID: <{id}@x>\r\n\
             Date: {date}\r\nIn-Reply-To: <parent@x>\r\n\r\n{body}"
        )
        .into_bytes()
    }

    #[test]
    fn entry_reads_the_index_fields() {
        let e = Entry::of(
            &msg("a", "Sat, 22 Nov 2025 03:00:00 +0000", "x\r\n"),
            5,
            "d",
        );
        assert_eq!(e.message_id, "a@x");
        assert_eq!(e.date, 1_763_780_400);
        assert_eq!(e.from, "ann@example.org");
        assert_eq!(e.subject, "s a");
        assert_eq!(e.parent.as_deref(), Some("parent@x"));
        let e = Entry::of(b"Subject: x\r\nReferences: <a@b> <c@d>\r\n\r\n", 5, "d");
        assert_eq!(e.date, 5);
        assert_eq!(e.parent.as_deref(), Some("c@d"));
        assert!(e.message_id.starts_with("listd.") && e.message_id.ends_with("@d"));
    }

    #[test]
    fn mboxrd_quoting_round_trips() {
        let m = b"Subject: q\r\n\r\nFrom here\r\n>From there\r\n>>From x\r\nFromage\r\n";
        let e = mbox_entry("From a@b Sat Nov 22 03:13:35 2025", m);
        assert_eq!(
            e,
            b"From a@b Sat Nov 22 03:13:35 2025\nSubject: q\n\n>From here\n>>From there\n>>>From x\nFromage\n\n".to_vec()
        );
        let mut r = MboxReader::new(&e[..]);
        let got = r.next_message().unwrap().unwrap();
        assert_eq!(
            got.bytes,
            b"Subject: q\n\nFrom here\n>From there\n>>From x\nFromage\n".to_vec()
        );
        assert_eq!(from_line_date(&got.from_line), Some(1_763_781_215));
        assert!(r.next_message().unwrap().is_none());
    }

    #[test]
    fn read_message_serves_one_entry_unquoted_with_crlf() {
        let dir = tempfile::tempdir().unwrap();
        let conn = db(dir.path());
        let first = msg(
            "one",
            "Sat, 22 Nov 2025 03:00:00 +0000",
            "From here\r\n>From there\r\n",
        );
        let second = msg("two", "Sat, 22 Nov 2025 04:00:00 +0000", "second\n");
        let mut places = Vec::new();
        for m in [&first, &second] {
            match archive_post(dir.path(), &conn, "dev", "d", m, T).unwrap() {
                Appended::Added {
                    mbox_path,
                    offset,
                    length,
                } => places.push((mbox_path, offset as i64, length as i64)),
                other => panic!("{other:?}"),
            }
        }
        let (rel, off, len) = &places[0];
        assert_eq!(read_message(dir.path(), rel, *off, *len).unwrap(), first);
        let (rel, off, len) = &places[1];
        let got = read_message(dir.path(), rel, *off, *len).unwrap();
        assert!(got.ends_with(b"\r\n\r\nsecond\r\n"), "{got:?}");
        // an index row that does not point at a `From ` line is an error
        let err = read_message(dir.path(), rel, off + 1, *len - 1).unwrap_err();
        assert!(err.to_string().contains("no `From ` line"), "{err}");
        assert!(read_message(dir.path(), "dev/1999-01.mbox", 0, 10).is_err());
    }

    /// Found by the property tests (tests/props.rs): an empty message read
    /// back as one empty line, and a line ending in CR CR LF read back as a
    /// CRLF line that the writer then shortened.
    #[test]
    fn what_the_reader_yields_writes_back_the_same() {
        for mbox in [
            b"From \n".to_vec(),
            mbox_entry("From a@example.org Thu Jan  1 00:00:00 1970", b"\r\r\r\n"),
            b"From a\nx\r\r".to_vec(),
        ] {
            let first = MboxReader::new(&mbox[..]).next_message().unwrap().unwrap();
            let written = mbox_entry(&first.from_line, &first.bytes);
            let again = MboxReader::new(&written[..])
                .next_message()
                .unwrap()
                .unwrap();
            assert_eq!(again, first, "{:?}", String::from_utf8_lossy(&mbox));
        }
        let empty = MboxReader::new(&b"From \n"[..]).next_message().unwrap();
        assert_eq!(empty.unwrap().bytes, b"");
        let cr = MboxReader::new(&b"From a\nx\r\r\n"[..])
            .next_message()
            .unwrap();
        assert_eq!(cr.unwrap().bytes, b"x\n");
    }

    #[test]
    fn not_an_mbox_is_an_error_with_a_line() {
        let mut r = MboxReader::new(&b"\nSubject: x\n\nbody\n"[..]);
        let e = r.next_message().unwrap_err();
        assert!(e.contains("line 2") && e.contains("From "), "{e}");
    }

    #[test]
    fn the_end_of_a_month_file_is_found_by_an_index_seek() {
        let dir = tempfile::tempdir().unwrap();
        let conn = db(dir.path());
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {END_OF_FILE}"))
            .unwrap()
            .query_map(["dev/2025-11.mbox"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .all(|p| p.contains("USING") && p.contains("INDEX"))
                && !plan.iter().any(|p| p.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }

    #[test]
    fn append_is_idempotent_and_export_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db(dir.path());
        let tx = conn.transaction().unwrap();
        let m = msg("a", "Sat, 22 Nov 2025 03:00:00 +0000", "From me\r\nhi\r\n");
        let a = archive_post(dir.path(), &tx, "dev", "d", &m, T).unwrap();
        assert_eq!(
            a,
            Appended::Added {
                mbox_path: "dev/2025-11.mbox".into(),
                offset: 0,
                length: mbox_entry(&from_line("ann@example.org", T), &m).len() as u64
            }
        );
        assert_eq!(
            archive_post(dir.path(), &tx, "dev", "d", &m, T).unwrap(),
            Appended::AlreadyArchived
        );
        tx.commit().unwrap();
        let mut out = Vec::new();
        assert_eq!(
            export(dir.path(), &conn, "dev", Select::Since(None), &mut out).unwrap(),
            1
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("From ann@example.org "), "{text}");
        assert!(text.contains("\n>From me\nhi\n\n"), "{text}");
        assert!(!text.contains('\r'));
        let mut none = Vec::new();
        let since = parse_since("2025-11-23").unwrap();
        assert_eq!(
            export(
                dir.path(),
                &conn,
                "dev",
                Select::Since(Some(since)),
                &mut none
            )
            .unwrap(),
            0
        );
    }

    #[test]
    fn an_uncommitted_append_is_cut_off_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db(dir.path());
        let m1 = msg("one", "Sat, 22 Nov 2025 03:00:00 +0000", "1\r\n");
        let m2 = msg("two", "Sat, 22 Nov 2025 04:00:00 +0000", "2\r\n");
        {
            let tx = conn.transaction().unwrap();
            archive_post(dir.path(), &tx, "dev", "d", &m1, T).unwrap();
            // dropped: rolled back, as if the process died before commit
        }
        let path = root(dir.path()).join("dev/2025-11.mbox");
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
        let tx = conn.transaction().unwrap();
        archive_post(dir.path(), &tx, "dev", "d", &m1, T).unwrap();
        archive_post(dir.path(), &tx, "dev", "d", &m2, T).unwrap();
        tx.commit().unwrap();
        let file = std::fs::read(&path).unwrap();
        let mut want = mbox_entry(&from_line("ann@example.org", T), &m1);
        want.extend(mbox_entry(&from_line("ann@example.org", T), &m2));
        assert_eq!(file, want);
    }

    #[test]
    fn import_then_export_round_trips_and_skips_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db(dir.path());
        let mut mbox = Vec::new();
        mbox.extend(mbox_entry(
            "From ann@example.org Sat Nov 22 03:00:00 2025",
            &msg("a", "Sat, 22 Nov 2025 03:00:00 +0000", "From x\r\n"),
        ));
        mbox.extend(mbox_entry(
            "From bob@example.org Mon Dec  1 10:00:00 2025",
            &msg("b", "Mon, 1 Dec 2025 10:00:00 +0000", "no newline at end"),
        ));
        mbox.extend(mbox_entry(
            "From bob@example.org Mon Dec  1 10:00:00 2025",
            b"Subject: no id, no date\n\nx\n",
        ));
        let mut seen = (0, 0);
        let mut counts = Vec::new();
        let target = |batch| ImportTarget {
            data_dir: dir.path(),
            list: "old",
            domain: "d",
            now: T,
            batch,
        };
        let s = import(&mut conn, &target(2), &mbox[..], |b, n| {
            seen = (b, n);
            counts.push(n);
        })
        .unwrap();
        assert_eq!(
            s,
            ImportStats {
                imported: 3,
                skipped_duplicates: 0
            }
        );
        assert_eq!(seen, (mbox.len() as u64, 3));
        assert_eq!(counts, [2, 3], "messages so far, after each batch of 2");
        assert!(root(dir.path()).join("old/2025-11.mbox").exists());
        assert!(root(dir.path()).join("old/2025-12.mbox").exists());
        let mut out = Vec::new();
        assert_eq!(
            export(dir.path(), &conn, "old", Select::Since(None), &mut out).unwrap(),
            3
        );
        assert_eq!(out, mbox);
        let s = import(&mut conn, &target(10), &out[..], |_, _| {}).unwrap();
        assert_eq!(
            s,
            ImportStats {
                imported: 0,
                skipped_duplicates: 3
            }
        );
    }

    #[test]
    fn export_names_the_file_when_the_index_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db(dir.path());
        let tx = conn.transaction().unwrap();
        let m = msg("a", "Sat, 22 Nov 2025 03:00:00 +0000", "x\r\n");
        archive_post(dir.path(), &tx, "dev", "d", &m, T).unwrap();
        tx.commit().unwrap();
        let path = root(dir.path()).join("dev/2025-11.mbox");
        let export_all = || {
            export(
                dir.path(),
                &conn,
                "dev",
                Select::Since(None),
                &mut Vec::new(),
            )
        };
        std::fs::write(
            &path,
            b"garbage that is long enough to read but is no mbox at all, really",
        )
        .unwrap();
        let e = export_all().unwrap_err();
        assert!(
            e.to_string().contains("2025-11.mbox") && e.to_string().contains("byte 0"),
            "{e}"
        );
        std::fs::write(&path, b"From x").unwrap();
        let e = export_all().unwrap_err();
        assert!(e.to_string().contains("cannot be read"), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = export_all().unwrap_err();
        assert!(e.to_string().contains("2025-11.mbox"), "{e}");
    }

    #[test]
    fn since_parsing() {
        assert_eq!(parse_since("1970-01-02").unwrap(), 86400);
        assert_eq!(parse_since("1970-01-01T00:01:00Z").unwrap(), 60);
        assert!(parse_since("yesterday").unwrap_err().contains("YYYY-MM-DD"));
    }
}
