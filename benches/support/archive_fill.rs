//! The archive the read benches share: `n` posts of the list `dev`, one a
//! minute from [`T0`], written straight into the month files (mboxrd
//! entries, as `archive` writes them) and `archive_index` (its triggers
//! keep `archive_months`). Three posts of every four answer the one
//! before (In-Reply-To), so months have threads; every [`NEEDLE_EVERY`]th
//! post has the word `zebracorn`.

#![allow(dead_code)]

use listd::archive;
use listd::store;
use rusqlite::params;
use std::io::Write;

pub const T0: i64 = 1_700_000_000;
/// Every this many posts, one has the word the searches look for.
pub const NEEDLE_EVERY: u64 = 100_000;

pub fn post(i: u64) -> Vec<u8> {
    let needle = if i % NEEDLE_EVERY == 7 {
        " zebracorn"
    } else {
        ""
    };
    let reply = if i % 4 == 0 {
        String::new()
    } else {
        format!("In-Reply-To: <post.{}@example.org>\r\n", i - 1)
    };
    format!(
        "Received: from mx.example.org by lists.example.org; Tue, 14 Nov 2023 22:13:20 +0000\r\n\
         From: Poster {p} <poster{p}@example.org>\r\nTo: dev@lists.example.org\r\n\
         Subject: [dev] Discussion of item {i}{needle}\r\nMessage-ID: <post.{i}@example.org>\r\n\
         {reply}Date: {date}\r\nList-Id: <dev.lists.example.org>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         Item {i} needs a decision.{needle} Lorem ipsum dolor sit amet, consectetur\r\n\
         adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore.\r\n",
        p = i % 997,
        date = chrono::DateTime::from_timestamp(T0 + i as i64 * 60, 0)
            .unwrap()
            .to_rfc2822(),
    )
    .into_bytes()
}

/// Writes `n` posts of `dev` into the month files and the index.
pub fn build(data: &std::path::Path, n: u64) {
    let mut conn = store::open(&data.join("listd.db")).unwrap();
    let tx = conn.transaction().unwrap();
    let mut file: Option<(String, std::io::BufWriter<std::fs::File>, u64)> = None;
    {
        let mut ins = tx
            .prepare(
                "INSERT INTO archive_index(list, message_id, date, from_addr, subject, parent,
                                           mbox_path, offset, length, archived_at)
                 VALUES ('dev', ?1, ?2, ?3, ?4, ?8, ?5, ?6, ?7, ?2)",
            )
            .unwrap();
        for i in 0..n {
            let t = T0 + i as i64 * 60;
            let rel = format!("dev/{}.mbox", archive::month_of(t));
            if file.as_ref().is_none_or(|(r, _, _)| *r != rel) {
                let path = archive::root(data).join(&rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let f = std::fs::File::create(&path).unwrap();
                file = Some((rel.clone(), std::io::BufWriter::new(f), 0));
            }
            let (rel, w, offset) = file.as_mut().unwrap();
            let m = post(i);
            let entry = archive::Entry::of(&m, t, "lists.example.org");
            let bytes = archive::mbox_entry(&archive::from_line(&entry.from, t), &m);
            w.write_all(&bytes).unwrap();
            ins.execute(params![
                entry.message_id,
                t,
                entry.from,
                entry.subject,
                rel.as_str(),
                *offset as i64,
                bytes.len() as i64,
                entry.parent
            ])
            .unwrap();
            *offset += bytes.len() as u64;
        }
    }
    if let Some((_, mut w, _)) = file {
        w.flush().unwrap();
    }
    tx.commit().unwrap();
}
