//! The mbox reader, writer and importer; see `listd::fuzzing::mbox`.
//! One input in eight (first byte 0 mod 8) is also imported into a fresh
//! store, in /dev/shm when there is one (an import syncs its files).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&flags, mbox)) = data.split_first() else {
        return;
    };
    if flags % 8 != 0 {
        listd::fuzzing::mbox::check(mbox, None);
        return;
    }
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir");
    listd::fuzzing::mbox::check(mbox, Some(dir.path()));
});
