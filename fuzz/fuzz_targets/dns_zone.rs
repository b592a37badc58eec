//! The static DNS zone file; see `listd::fuzzing::auth`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| listd::fuzzing::auth::check_zone(data));
