//! The 7-bit conversion for relays without 8BITMIME; see `listd::fuzzing::seven_bit`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| listd::fuzzing::seven_bit::check(data));
