//! Routing: which handler an envelope recipient at our domain belongs to.
//!
//! Pure functions of the recipient address and the configured list names.
//! Trusts nothing in the address; anything it does not recognise is `None`
//! (the SMTP layer answers 550 5.1.1 for it).

use crate::config::Config;

/// The handler a recipient address routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `NAME@` — a post to the list.
    Post { list: String },
    /// `NAME-request@` — the command robot for one list.
    Request { list: String },
    /// `NAME-owner@` — forwarded to the owners.
    Owner { list: String },
    /// `NAME-bounces@` and `NAME-bounces+TAG@`.
    Bounces { list: String, tag: Option<String> },
    /// `NAME-confirm+TOKEN@`.
    Confirm { list: String, token: String },
    /// `NAME-moderate+TOKEN@`.
    Moderate { list: String, token: String },
    /// `NAME-join@` and `NAME-subscribe@`.
    Join { list: String },
    /// `NAME-leave@` and `NAME-unsubscribe@`.
    Leave { list: String },
    /// `majordomo@domain` — the site-wide robot.
    Majordomo,
    /// `postmaster@domain` and the bare `<Postmaster>` (RFC 5321 §4.5.1):
    /// forwarded to the site's administrators.
    Postmaster,
}

impl Route {
    /// The stored name of the route kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Post { .. } => "post",
            Route::Request { .. } => "request",
            Route::Owner { .. } => "owner",
            Route::Bounces { .. } => "bounces",
            Route::Confirm { .. } => "confirm",
            Route::Moderate { .. } => "moderate",
            Route::Join { .. } => "join",
            Route::Leave { .. } => "leave",
            Route::Majordomo => "majordomo",
            Route::Postmaster => "postmaster",
        }
    }

    /// The list this route belongs to, if any.
    pub fn list(&self) -> Option<&str> {
        match self {
            Route::Post { list }
            | Route::Request { list }
            | Route::Owner { list }
            | Route::Bounces { list, .. }
            | Route::Confirm { list, .. }
            | Route::Moderate { list, .. }
            | Route::Join { list }
            | Route::Leave { list } => Some(list),
            Route::Majordomo | Route::Postmaster => None,
        }
    }

    /// The `+TAG` / `+TOKEN` detail, if any.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Route::Bounces { tag, .. } => tag.as_deref(),
            Route::Confirm { token, .. } | Route::Moderate { token, .. } => Some(token),
            _ => None,
        }
    }

    /// Rebuilds a route from its stored columns (kind, list, tag).
    pub fn from_parts(kind: &str, list: Option<&str>, tag: Option<&str>) -> Option<Route> {
        let l = || list.map(str::to_string);
        let t = || tag.map(str::to_string);
        Some(match kind {
            "post" => Route::Post { list: l()? },
            "request" => Route::Request { list: l()? },
            "owner" => Route::Owner { list: l()? },
            "bounces" => Route::Bounces {
                list: l()?,
                tag: t(),
            },
            "confirm" => Route::Confirm {
                list: l()?,
                token: t()?,
            },
            "moderate" => Route::Moderate {
                list: l()?,
                token: t()?,
            },
            "join" => Route::Join { list: l()? },
            "leave" => Route::Leave { list: l()? },
            "majordomo" => Route::Majordomo,
            "postmaster" => Route::Postmaster,
            _ => return None,
        })
    }
}

/// Why a recipient is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Not a domain we serve: we never relay (550 5.7.1).
    Relay,
    /// A domain we serve, but no such list or service address (550 5.1.1).
    Unknown,
    /// An address of list `list`, but at a domain that is not the list's
    /// (550 5.1.1): `dev@lists.example.net` when `dev` is at `.org`.
    OtherDomain { list: String, domain: String },
}

/// Routes a recipient (`local@domain`, brackets already stripped). The
/// domain must be one listd serves (`Config::served_domains`); a list's
/// addresses route only at the list's own domain; `postmaster@` at every
/// served domain, `majordomo@` at the site's `domain` only.
pub fn route(config: &Config, rcpt: &str) -> Result<Route, RouteError> {
    let addr = crate::address::Address::parse(rcpt).map_err(|_| RouteError::Unknown)?;
    let domain = addr.domain();
    if !config.serves_domain(domain) {
        return Err(RouteError::Relay);
    }
    let here = |name: &str| {
        config.lists.contains_key(name) && config.list_domain(name).eq_ignore_ascii_case(domain)
    };
    match route_local(addr.local(), here) {
        Some(Route::Majordomo) if !domain.eq_ignore_ascii_case(&config.domain) => {
            Err(RouteError::Unknown)
        }
        Some(r) => Ok(r),
        None => match route_local(addr.local(), |n| config.lists.contains_key(n))
            .as_ref()
            .and_then(Route::list)
        {
            Some(list) => Err(RouteError::OtherDomain {
                list: list.to_string(),
                domain: domain.to_ascii_lowercase(),
            }),
            None => Err(RouteError::Unknown),
        },
    }
}

impl RouteError {
    /// The SMTP refusal for `address`: (enhanced status, text).
    pub fn refusal(&self, address: &str) -> (&'static str, String) {
        match self {
            RouteError::Relay => (
                "5.7.1",
                format!("Relaying denied: <{address}> is not served here"),
            ),
            RouteError::Unknown => ("5.1.1", format!("<{address}>: no such list or address")),
            RouteError::OtherDomain { list, domain } => (
                "5.1.1",
                format!("<{address}>: no list `{list}` at {domain}"),
            ),
        }
    }
}

/// Routes a local part given a predicate that says whether a list exists.
/// List names are matched case-insensitively; tags and tokens keep their case.
pub fn route_local(local: &str, exists: impl Fn(&str) -> bool) -> Option<Route> {
    let (base, detail) = match local.split_once('+') {
        Some((b, d)) => (b, Some(d)),
        None => (local, None),
    };
    let base_lc = base.to_ascii_lowercase();
    if base_lc == "majordomo" && detail.is_none() {
        return Some(Route::Majordomo);
    }
    // RFC 5321 §4.5.1: `postmaster` is case-insensitive and always accepted.
    if base_lc == "postmaster" && detail.is_none() {
        return Some(Route::Postmaster);
    }
    if detail.is_none() && exists(&base_lc) {
        return Some(Route::Post { list: base_lc });
    }
    let (name, suffix) = base_lc.rsplit_once('-')?;
    if !exists(name) {
        return None;
    }
    let list = name.to_string();
    let detail = detail.filter(|d| !d.is_empty()).map(str::to_string);
    match (suffix, detail) {
        ("request", None) => Some(Route::Request { list }),
        ("owner", None) => Some(Route::Owner { list }),
        ("bounces", tag) => Some(Route::Bounces { list, tag }),
        ("confirm", Some(token)) => Some(Route::Confirm { list, token }),
        ("moderate", Some(token)) => Some(Route::Moderate { list, token }),
        ("join" | "subscribe", None) => Some(Route::Join { list }),
        ("leave" | "unsubscribe", None) => Some(Route::Leave { list }),
        _ => None,
    }
}

/// The spool keeps a route as plain parts.
impl From<&Route> for crate::store::spool::RouteParts {
    fn from(r: &Route) -> Self {
        crate::store::spool::RouteParts {
            kind: r.kind().to_string(),
            list: r.list().map(str::to_string),
            tag: r.tag().map(str::to_string),
        }
    }
}

impl From<Route> for crate::store::spool::RouteParts {
    fn from(r: Route) -> Self {
        (&r).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(local: &str) -> Option<Route> {
        route_local(local, |n| n == "dev" || n == "dev-team")
    }

    #[test]
    fn routes_every_service_address() {
        let list = || "dev".to_string();
        assert_eq!(r("dev"), Some(Route::Post { list: list() }));
        assert_eq!(r("DEV"), Some(Route::Post { list: list() }));
        assert_eq!(r("dev-request"), Some(Route::Request { list: list() }));
        assert_eq!(r("dev-owner"), Some(Route::Owner { list: list() }));
        assert_eq!(
            r("dev-bounces"),
            Some(Route::Bounces {
                list: list(),
                tag: None
            })
        );
        assert_eq!(
            r("dev-bounces+a=b.org"),
            Some(Route::Bounces {
                list: list(),
                tag: Some("a=b.org".into())
            })
        );
        assert_eq!(
            r("dev-confirm+AbC"),
            Some(Route::Confirm {
                list: list(),
                token: "AbC".into()
            })
        );
        assert_eq!(
            r("dev-moderate+tok"),
            Some(Route::Moderate {
                list: list(),
                token: "tok".into()
            })
        );
        assert_eq!(r("dev-join"), Some(Route::Join { list: list() }));
        assert_eq!(r("dev-subscribe"), Some(Route::Join { list: list() }));
        assert_eq!(r("dev-leave"), Some(Route::Leave { list: list() }));
        assert_eq!(r("dev-unsubscribe"), Some(Route::Leave { list: list() }));
        assert_eq!(r("majordomo"), Some(Route::Majordomo));
        assert_eq!(r("postmaster"), Some(Route::Postmaster));
        assert_eq!(r("PostMaster"), Some(Route::Postmaster));
        // a list whose name contains a dash still routes
        assert_eq!(
            r("dev-team"),
            Some(Route::Post {
                list: "dev-team".into()
            })
        );
        assert_eq!(
            r("dev-team-request"),
            Some(Route::Request {
                list: "dev-team".into()
            })
        );
    }

    #[test]
    fn refuses_unknown() {
        assert_eq!(r("ops"), None);
        assert_eq!(r("dev-confirm"), None);
        assert_eq!(r("dev-request+x"), None);
        assert_eq!(r("dev-bogus"), None);
        assert_eq!(r("dev+x"), None);
        assert_eq!(r("postmaster+x"), None);
    }

    #[test]
    fn round_trips_stored_parts() {
        for local in [
            "dev",
            "dev-bounces+t",
            "dev-confirm+k",
            "majordomo",
            "postmaster",
            "dev-leave",
        ] {
            let route = r(local).unwrap();
            assert_eq!(
                Route::from_parts(route.kind(), route.list(), route.tag()),
                Some(route)
            );
        }
    }
}
