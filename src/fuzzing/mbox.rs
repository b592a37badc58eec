//! The mbox reader, writer and importer on arbitrary mbox bytes.
//!
//! Invariants: nothing panics; what the reader yields, written back with
//! `mbox_entry`, reads back as the same messages (`From ` lines and bytes);
//! importing into a real store accepts exactly the messages the reader
//! yields (or fails as the reader does), and exporting gives back each
//! distinct Message-ID's first message.

use crate::archive::{self, Entry, ImportTarget, MboxMessage, MboxReader, Select};
use std::path::Path;

/// Import time; also the fallback date.
const NOW: i64 = 1_763_780_000;

/// Every message the reader yields before its end or first error.
pub fn read_all(bytes: &[u8]) -> (Vec<MboxMessage>, Option<String>) {
    let mut r = MboxReader::new(bytes);
    let mut out = Vec::new();
    loop {
        match r.next_message() {
            Ok(Some(m)) => out.push(m),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// The messages written back as one mbox.
pub fn write_all(msgs: &[MboxMessage]) -> Vec<u8> {
    msgs.iter()
        .flat_map(|m| archive::mbox_entry(&m.from_line, &m.bytes))
        .collect()
}

/// Reads `bytes`, writes what was read, reads that again; with `dir`,
/// also imports `bytes` into a fresh store there and exports it.
pub fn check(bytes: &[u8], dir: Option<&Path>) {
    let (msgs, err) = read_all(bytes);
    let written = write_all(&msgs);
    let (again, err2) = read_all(&written);
    assert_eq!(err2, None, "the reader refuses what the writer wrote");
    let strip = |v: &[MboxMessage]| -> Vec<(String, Vec<u8>)> {
        v.iter()
            .map(|m| (m.from_line.clone(), m.bytes.clone()))
            .collect()
    };
    assert_eq!(strip(&again), strip(&msgs), "mbox round trip");
    if let Some(dir) = dir {
        check_import(bytes, &msgs, err.is_some(), dir);
    }
}

fn check_import(bytes: &[u8], msgs: &[MboxMessage], reader_failed: bool, dir: &Path) {
    let mut conn = crate::store::open(&dir.join("listd.db")).expect("open store");
    let target = ImportTarget {
        data_dir: dir,
        list: "old",
        domain: super::DOMAIN,
        now: NOW,
        batch: 3,
    };
    let stats = archive::import(&mut conn, &target, bytes, |_, _| {});
    let stats = match stats {
        Err(archive::ArchiveError::Corrupt { .. }) if reader_failed => return,
        Err(e) => panic!("import failed: {e}"),
        Ok(s) => s,
    };
    assert!(!reader_failed, "import took what the reader refuses");
    assert_eq!(stats.imported + stats.skipped_duplicates, msgs.len());
    let mut seen = std::collections::HashSet::new();
    let mut want: Vec<(String, Vec<u8>)> = msgs
        .iter()
        .filter(|m| {
            let date = archive::from_line_date(&m.from_line).unwrap_or(NOW);
            seen.insert(Entry::of(&m.bytes, date, super::DOMAIN).message_id)
        })
        .map(|m| (m.from_line.clone(), m.bytes.clone()))
        .collect();
    assert_eq!(want.len(), stats.imported, "imported count");
    let mut out = Vec::new();
    let n = archive::export(dir, &conn, "old", Select::Since(None), &mut out).expect("export");
    assert_eq!(n, stats.imported);
    let (back, err) = read_all(&out);
    assert_eq!(err, None, "the export is not an mbox");
    let mut got: Vec<(String, Vec<u8>)> =
        back.into_iter().map(|m| (m.from_line, m.bytes)).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "export after import");
}
