//! The sans-IO IMAP session against a real archive; see `listd::fuzzing::reader`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| listd::fuzzing::reader::check_imap(data));
