//! The mbox reader, writer and importer; see `listd::fuzzing::mbox`.
//! Inputs whose first byte is odd are also imported into a fresh store.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&flags, mbox)) = data.split_first() else {
        return;
    };
    if flags & 1 == 0 {
        listd::fuzzing::mbox::check(mbox, None);
    } else {
        let dir = tempfile::tempdir().expect("temp dir");
        listd::fuzzing::mbox::check(mbox, Some(dir.path()));
    }
});
