//! Posting rules and decoration; see `listd::fuzzing::decorate`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| listd::fuzzing::decorate::check(data));
