//! The sans-IO SMTP/LMTP session; see `listd::fuzzing::smtp`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| listd::fuzzing::smtp::check(data));
