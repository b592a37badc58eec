//! The robot's command parser; see `listd::fuzzing::robot`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| listd::fuzzing::robot::check(data));
