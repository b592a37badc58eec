//! (daemon: to be written.)
