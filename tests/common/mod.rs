//! Shared helpers for the integration tests. Each test file uses what it
//! needs, so unused helpers are expected.
#![allow(dead_code)]

pub mod sink;
