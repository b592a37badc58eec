//! The sans-IO POP3 session against a real archive; see `listd::fuzzing::reader`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| listd::fuzzing::reader::check_pop3(data));
