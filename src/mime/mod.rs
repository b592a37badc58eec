//! Mail format primitives, each said once: the raw header block (split,
//! rewrite, unfold, fold), line ends, quoted-printable, RFC 2047 encoded
//! words, phrases, the other transfer encodings and charsets, the 7-bit
//! form of a message for a relay without 8BITMIME, List-Id / X-Loop
//! values and enhanced status codes.
//!
//! A leaf: it imports nothing of the application (no config, store or
//! pipeline), only the mail crates. Trusts nothing in its input: every
//! function takes any bytes or text and never panics; what it returns is
//! plain data the callers decide on.

pub mod encoded_word;
pub mod header_block;
pub mod leaves;
pub mod lines;
pub mod list_id;
pub mod multipart_close;
pub mod phrase;
pub mod qp;
pub mod seven_bit;
pub mod status;
pub mod transfer;
