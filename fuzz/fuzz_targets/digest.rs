//! The MIME and plain digest builders; see `listd::fuzzing::digest`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| listd::fuzzing::digest::check(data));
