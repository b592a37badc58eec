//! Member tokens (one-click unsubscribe links); see `listd::fuzzing::member_token`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| listd::fuzzing::member_token::check(data));
