//! (archive: to be written.)
