//! Address parsing and routing; see `listd::fuzzing::address`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| listd::fuzzing::address::check(data));
