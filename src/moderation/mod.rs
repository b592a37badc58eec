//! (moderation: to be written.)
