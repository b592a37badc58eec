//! Bounce reading; see `listd::fuzzing::bounce`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| listd::fuzzing::bounce::check(data));
