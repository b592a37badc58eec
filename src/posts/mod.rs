//! Posts: the pure posting rules (`rules::decide`), decoration
//! (`decorate()`, bytes in, bytes out) and distribution (`distribute`),
//! shared by the post handler (`pipeline::post`) and moderation's approve.
//!
//! Imports neither the pipeline nor moderation: both call it.

pub mod decorate;
pub mod distribute;
pub mod mitigate;
pub mod rules;

use crate::config::ListConfig;
use crate::handler::Ctx;

/// Data every post-related template gets.
pub fn template_data(ctx: &Ctx, lc: &ListConfig) -> serde_json::Value {
    let c = &ctx.config;
    serde_json::json!({
        "list": lc.name,
        "description": lc.description,
        "domain": c.list_domain(&lc.name),
        "list_address": c.list_address(&lc.name),
        "request_address": c.list_suffix_address(&lc.name, "request"),
        "join_address": c.list_suffix_address(&lc.name, "join"),
        "leave_address": c.list_suffix_address(&lc.name, "leave"),
        "owner_address": c.list_suffix_address(&lc.name, "owner"),
        "archive_url": c.web.archive_url.as_ref().map(|u| format!("{}/{}/", u.trim_end_matches('/'), lc.name)),
        "unsubscribe_url": c.web.unsubscribe_url,
    })
}
