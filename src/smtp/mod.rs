//! (smtp: to be written.)
