//! (pipeline: to be written.)
