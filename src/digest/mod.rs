//! (digest: to be written.)
