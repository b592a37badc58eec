//! A small sample site for the readers' tests and fuzz targets: a real
//! store and archive under a given folder, lists `pub` (anyone reads) and
//! `dev` (members only), [`POSTS`] posts each, and the member
//! `ann@example.org` whose `dev` app password is [`PASSWORD`]. Not used by
//! the daemon.

use super::ArchiveDb;
use crate::config::{Access, Config, ListConfig};
use std::path::Path;
use std::sync::Arc;

/// ann@example.org's app password for `dev` in the fixture.
pub const PASSWORD: &str = "fuzzfuzzfuzzfuzzfuzz";
/// Posts per list in the fixture.
pub const POSTS: usize = 3;

/// A fresh store under `dir` with the fixture's lists, posts and member.
pub fn fixture(dir: &Path) -> ArchiveDb {
    let _ = std::fs::remove_dir_all(dir);
    let mut config = Config::for_tests("lists.example.org", dir);
    config.smtp.hostname = "lists.example.org".into();
    config.pop3.maildrop_size = 2;
    for (name, access) in [("pub", Access::Anyone), ("dev", Access::Members)] {
        let mut l = ListConfig::parse(Path::new("fuzz.yaml"), name, "").expect("fixture list");
        l.archive_access = access;
        config.lists.insert(name.into(), l);
    }
    std::fs::create_dir_all(&config.data_dir).expect("fixture dir");
    let db = ArchiveDb::open(Arc::new(config)).expect("fixture store");
    let data = db.config().data_dir.clone();
    for list in ["pub", "dev"] {
        for n in 0..POSTS {
            let m = format!(
                "From: Ann <ann@example.org>\r\nSubject: {list} post {n}\r\nMessage-ID: <{list}{n}@x>\r\nDate: Sat, 22 Nov 2025 0{n}:00:00 +0000\r\n\r\n.dot\r\nFrom here\r\nbody {n}\r\n"
            );
            crate::archive::archive_post(&data, db.conn(), list, "x", m.as_bytes(), 1_763_780_000)
                .expect("fixture post");
        }
    }
    let key = "ann@example.org";
    crate::store::members::add(
        db.conn(),
        "dev",
        key,
        key,
        None,
        crate::store::members::DeliveryMode::Each,
        1,
    )
    .expect("fixture member");
    let hash = crate::password::hash_password(PASSWORD).expect("hash");
    db.conn()
        .execute(
            "INSERT INTO archive_passwords(list, address_key, hash, created_at) VALUES ('dev', ?1, ?2, 1)",
            [key, hash.as_str()],
        )
        .expect("fixture password");
    db
}
