//! (commands: to be written.)
