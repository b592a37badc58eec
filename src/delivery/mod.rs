//! (delivery: to be written.)
