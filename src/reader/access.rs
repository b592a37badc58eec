//! The pure rule: may this reader read this list's archive?
//!
//! Trusts the `Reader` it is given: its address was proven by an app
//! password (see `login`), and `member`/`owner` were looked up for it.

use crate::config::{Access, ListConfig};

/// Who is reading, as far as a login proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// No password (public archives only).
    Anonymous,
    /// An address that gave a valid app password for this list.
    Proven {
        address_key: String,
        member: bool,
        owner: bool,
    },
}

/// Whether `reader` may read `list`'s archive under its `archive_access`:
/// `anyone` reads a public archive; `members` needs a proven member (or
/// owner); `owners` and `trusted` (no network is trusted here) a proven
/// owner; `nobody` and a list without an archive, no one.
pub fn may_read(list: &ListConfig, reader: &Reader) -> bool {
    if !list.archive {
        return false;
    }
    let (member, owner) = match reader {
        Reader::Anonymous => (false, false),
        Reader::Proven { member, owner, .. } => (*member, *owner),
    };
    match list.archive_access {
        Access::Anyone => true,
        Access::Members => member || owner,
        Access::Owners | Access::Trusted => owner,
        Access::Nobody => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(access: Access, archive: bool) -> ListConfig {
        let mut l = ListConfig::parse(std::path::Path::new("dev.yaml"), "dev", "").unwrap();
        l.archive_access = access;
        l.archive = archive;
        l
    }

    fn proven(member: bool, owner: bool) -> Reader {
        Reader::Proven {
            address_key: "ann@example.org".into(),
            member,
            owner,
        }
    }

    #[test]
    fn each_policy_admits_whom_it_names() {
        let anon = Reader::Anonymous;
        let (member, owner, stranger) = (
            proven(true, false),
            proven(false, true),
            proven(false, false),
        );
        let cases = [
            (Access::Anyone, [true, true, true, true]),
            (Access::Members, [false, true, true, false]),
            (Access::Owners, [false, false, true, false]),
            (Access::Trusted, [false, false, true, false]),
            (Access::Nobody, [false, false, false, false]),
        ];
        for (access, want) in cases {
            let l = list(access, true);
            let got = [&anon, &member, &owner, &stranger].map(|r| may_read(&l, r));
            assert_eq!(got, want, "{access:?}");
            assert!(![&anon, &member, &owner]
                .iter()
                .any(|r| may_read(&list(access, false), r)));
        }
    }
}
