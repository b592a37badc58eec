//! A reader's store handle and login: which archives a user name and
//! password open.
//!
//! `anonymous`, or any name with an empty password, reads the archives
//! whose `archive_access` is `anyone`. Any other name must be an address
//! with the app password the robot mailed it for a list: that password
//! opens that list (if the address is still a member, or an owner, as the
//! list's policy asks) besides the public ones. Failures count against
//! per-address and per-IP hourly budgets; once either is spent, logins are
//! refused without a hash being tried.

use super::access::{may_read, Reader};
use super::passwords;
use crate::address::Address;
use crate::config::Config;
use crate::store::{self, members, StoreError};
use rusqlite::Connection;
use std::net::IpAddr;
use std::sync::Arc;

/// What a client presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Anonymous,
    Password { user: String, password: String },
}

impl Credential {
    /// `anonymous` (any case) or an empty password: anonymous; else a
    /// name and password to check.
    pub fn of(user: &str, password: &str) -> Credential {
        if user.eq_ignore_ascii_case("anonymous") || password.is_empty() {
            Credential::Anonymous
        } else {
            Credential::Password {
                user: user.to_string(),
                password: password.to_string(),
            }
        }
    }
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("wrong user name or password")]
    Refused,
    #[error("too many failed logins; try again in an hour")]
    LockedOut,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a login opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The proven address key; `None` for anonymous.
    pub address_key: Option<String>,
    /// The lists whose archives it may read, by name.
    pub lists: Vec<String>,
}

/// A reader session's own store connection and configuration.
pub struct ArchiveDb {
    conn: Connection,
    config: Arc<Config>,
}

impl ArchiveDb {
    /// Opens the store of `config`.
    pub fn open(config: Arc<Config>) -> store::Result<ArchiveDb> {
        let conn = store::open(&config.db_path())?;
        Ok(ArchiveDb { conn, config })
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Checks `cred` from a client at `ip`; the grant lists what it opens.
    pub fn login(
        &self,
        cred: &Credential,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<Grant, LoginError> {
        let (user, password) = match cred {
            Credential::Anonymous => {
                return Ok(Grant {
                    address_key: None,
                    lists: self.readable(|_| Reader::Anonymous),
                })
            }
            Credential::Password { user, password } => (user, password),
        };
        let addr = Address::parse(user).ok();
        let key = addr.as_ref().map(|a| a.key());
        // spellings of one mailbox (case, +tags, dots) share one budget
        let budgets =
            passwords::failure_budgets(ip, addr.as_ref().map(|a| a.mailbox_key()).as_deref());
        if passwords::locked_out(&self.conn, &budgets, now)? {
            tracing::info!(?ip, user = %user, "archive login refused: failure budget spent");
            return Err(LoginError::LockedOut);
        }
        let opened: Vec<String> = match &key {
            Some(key) => passwords::hashes(&self.conn, key)?
                .into_iter()
                .filter(|(_, hash)| crate::password::verify_password(hash, password))
                .map(|(list, _)| list)
                .collect(),
            None => Vec::new(),
        };
        let (Some(key), false) = (key, opened.is_empty()) else {
            passwords::record_failure(&self.conn, &budgets, now)?;
            tracing::info!(?ip, user = %user, "archive login failed");
            return Err(LoginError::Refused);
        };
        let mut members_of = Vec::new();
        for list in &opened {
            if members::get(&self.conn, list, &key)?.is_some() {
                members_of.push(list.clone());
            }
        }
        let lists = self.readable(|l| {
            if opened.contains(&l.name) {
                Reader::Proven {
                    address_key: key.clone(),
                    member: members_of.contains(&l.name),
                    owner: l.is_owner(&key),
                }
            } else {
                Reader::Anonymous
            }
        });
        Ok(Grant {
            address_key: Some(key),
            lists,
        })
    }

    /// The configured lists `reader_for` may read, by name.
    fn readable(&self, reader_for: impl Fn(&crate::config::ListConfig) -> Reader) -> Vec<String> {
        self.config
            .lists
            .values()
            .filter(|l| may_read(l, &reader_for(l)))
            .map(|l| l.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Access, ListConfig};

    fn setup(dir: &std::path::Path) -> ArchiveDb {
        let mut config = Config::for_tests("lists.example.org", dir);
        for (name, access) in [
            ("pub", Access::Anyone),
            ("dev", Access::Members),
            ("ops", Access::Owners),
        ] {
            let mut l = ListConfig::parse(std::path::Path::new("x.yaml"), name, "").unwrap();
            l.archive = true;
            l.archive_access = access;
            l.owners = vec!["boss@example.org".into()];
            config.lists.insert(name.into(), l);
        }
        std::fs::create_dir_all(&config.data_dir).unwrap();
        ArchiveDb::open(Arc::new(config)).unwrap()
    }

    #[test]
    fn logins_open_what_the_password_and_the_policy_allow() {
        let dir = tempfile::tempdir().unwrap();
        let db = setup(dir.path());
        let ip: Option<IpAddr> = Some("192.0.2.7".parse().unwrap());
        let anon = db.login(&Credential::of("anonymous", "x"), ip, 10).unwrap();
        assert_eq!(anon.lists, vec!["pub"]);
        assert_eq!(
            db.login(&Credential::of("ann@example.org", ""), ip, 10)
                .unwrap(),
            anon
        );

        members::add(
            db.conn(),
            "dev",
            "ann@example.org",
            "ann@example.org",
            None,
            members::DeliveryMode::Each,
            1,
        )
        .unwrap();
        let pw = passwords::issue(db.conn(), "dev", "ann@example.org", 1).unwrap();
        let ann = db
            .login(&Credential::of("ann@Example.ORG", &pw), ip, 10)
            .unwrap();
        assert_eq!(ann.lists, vec!["dev", "pub"]);
        assert_eq!(ann.address_key.as_deref(), Some("ann@example.org"));
        assert!(matches!(
            db.login(&Credential::of("ann@example.org", "wrong"), ip, 10),
            Err(LoginError::Refused)
        ));
        assert!(matches!(
            db.login(&Credential::of("not an address", "pw"), ip, 10),
            Err(LoginError::Refused)
        ));

        // an owner's password opens the owners-only list
        let pw_boss = passwords::issue(db.conn(), "ops", "boss@example.org", 1).unwrap();
        assert_eq!(
            db.login(&Credential::of("boss@example.org", &pw_boss), ip, 10)
                .unwrap()
                .lists,
            vec!["ops", "pub"]
        );
        // a member who left keeps a password that opens nothing private
        members::remove(db.conn(), "dev", "ann@example.org").unwrap();
        assert_eq!(
            db.login(&Credential::of("ann@example.org", &pw), ip, 10)
                .unwrap()
                .lists,
            vec!["pub"]
        );
    }

    #[test]
    fn failed_logins_lock_the_address_out_even_with_the_right_password() {
        let dir = tempfile::tempdir().unwrap();
        let db = setup(dir.path());
        members::add(
            db.conn(),
            "dev",
            "ann@example.org",
            "ann@example.org",
            None,
            members::DeliveryMode::Each,
            1,
        )
        .unwrap();
        let pw = passwords::issue(db.conn(), "dev", "ann@example.org", 1).unwrap();
        for i in 0..passwords::FAILURES_PER_ADDRESS {
            // from different addresses: the per-address budget is what runs out
            let ip = Some(IpAddr::from([192, 0, 2, i as u8]));
            assert!(matches!(
                db.login(&Credential::of("ann@example.org", "guess"), ip, 10),
                Err(LoginError::Refused)
            ));
        }
        let ip = Some(IpAddr::from([198, 51, 100, 1]));
        assert!(matches!(
            db.login(&Credential::of("ann@example.org", &pw), ip, 10),
            Err(LoginError::LockedOut)
        ));
        assert!(
            matches!(
                db.login(&Credential::of("Ann+x@example.org", "pw"), ip, 10),
                Err(LoginError::LockedOut)
            ),
            "the same mailbox"
        );
        assert!(db
            .login(&Credential::of("ann@example.org", &pw), ip, 10 + 3601)
            .is_ok());
    }
}
