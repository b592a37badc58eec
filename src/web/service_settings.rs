//! A list's settings for its owners, shared by the settings page and the
//! API: every setting's effective value (the loaded `ListConfig`, the
//! moderator password shown only as set or not) and whether the file sets
//! it; editing the allow-list of settings that take effect on a reload
//! ([`EDITABLE`]), written back into `lists/NAME.yaml` with its comments
//! kept (`config::edit_list_key`), checked by the normal list loader first,
//! replaced atomically, then the daemon reloaded.
//!
//! Versions: a setting write names the version it edits (the ETag: a hash
//! of the file's bytes); a write without one, or against another, is
//! refused, so two owners never overwrite each other unseen.
//!
//! Trusts the caller's identity as the handlers established it; every key
//! and value is checked against the allow-list and by the loader.

use super::service::{Caller, ServiceError, ServiceResult};
use super::service_owner::administered_list;
use crate::config::{edit_list_key, replace_list_file, Config, ListConfig};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Mutex;

/// How a setting is edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    Bool,
    /// A whole number from .0 to .1.
    Number(u64, u64),
    Text,
    Choice(&'static [&'static str]),
}

const ACCESS: &[&str] = &["nobody", "trusted", "members", "owners", "anyone"];

/// The settings owners may change here: each takes effect on a reload
/// (lists are re-read whole; no listener, store or name depends on them).
/// Not here: the name, `domain`, `owners` and `moderators` (who may
/// administer the list), `moderator_password`, `sender_verification`,
/// `hold_headers`, `acceptable_aliases`, `verp`, `personalize` and
/// `archive` (edit those in the file or with `listd lists set`).
pub const EDITABLE: &[(&str, SettingKind)] = &[
    ("description", SettingKind::Text),
    ("advertised", SettingKind::Bool),
    (
        "subscription",
        SettingKind::Choice(&[
            "open",
            "confirm",
            "approve",
            "confirm_then_approve",
            "closed",
        ]),
    ),
    ("unsubscription", SettingKind::Choice(&["open", "confirm"])),
    (
        "posting",
        SettingKind::Choice(&["anyone", "members", "moderated", "announce"]),
    ),
    (
        "nonmember_posts",
        SettingKind::Choice(&["hold", "reject", "discard"]),
    ),
    ("subject_prefix", SettingKind::Text),
    ("reply_to", SettingKind::Text),
    ("sender_header", SettingKind::Bool),
    ("max_message_size", SettingKind::Number(0, i64::MAX as u64)),
    ("oversize_posts", SettingKind::Choice(&["hold", "reject"])),
    ("require_explicit_destination", SettingKind::Bool),
    ("max_recipients", SettingKind::Number(0, u32::MAX as u64)),
    ("administrivia", SettingKind::Bool),
    ("hold_no_subject", SettingKind::Bool),
    ("emergency", SettingKind::Bool),
    ("moderate_new_members", SettingKind::Bool),
    ("expn", SettingKind::Choice(ACCESS)),
    ("who", SettingKind::Choice(ACCESS)),
    ("archive_access", SettingKind::Choice(ACCESS)),
    ("footer", SettingKind::Bool),
    ("skip_explicit_recipients", SettingKind::Bool),
    ("notify_owners", SettingKind::Bool),
    ("notify_held", SettingKind::Bool),
    ("moderator_reminders", SettingKind::Bool),
    ("hold_days", SettingKind::Number(1, u32::MAX as u64)),
    (
        "moderation_notices_per_hour",
        SettingKind::Number(0, u32::MAX as u64),
    ),
    ("require_dmarc_pass_for_members", SettingKind::Bool),
    (
        "dmarc_mitigation",
        SettingKind::Choice(&["auto", "always", "never", "wrap"]),
    ),
    ("digest.enabled", SettingKind::Bool),
    (
        "digest.max_messages",
        SettingKind::Number(1, u32::MAX as u64),
    ),
    ("digest.max_bytes", SettingKind::Number(1, i64::MAX as u64)),
    ("digest.schedule", SettingKind::Text),
    ("digest.send_empty", SettingKind::Bool),
];

/// The JSON Schema of an edit of every [`EDITABLE`] key (the API's PATCH
/// body): the loader still has the last word (a reply_to address, a
/// digest schedule).
pub fn edit_schema() -> Value {
    let mut props = serde_json::Map::new();
    for (key, kind) in EDITABLE {
        let schema = match (*kind, *key) {
            (SettingKind::Bool, _) => serde_json::json!({"type": "boolean"}),
            (SettingKind::Number(min, max), _) => {
                serde_json::json!({"type": "integer", "format": "int64", "minimum": min, "maximum": max})
            }
            (SettingKind::Choice(c), _) => serde_json::json!({"type": "string", "enum": c}),
            (SettingKind::Text, "reply_to") => serde_json::json!({"type": "string",
                "description": "`none`, `list` or an address",
                "pattern": "^(none|list|[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+)$"}),
            (SettingKind::Text, "digest.schedule") => serde_json::json!({"type": "string",
                "pattern": "^(none|daily ([01][0-9]|2[0-3]):[0-5][0-9]|weekly (mon|tue|wed|thu|fri|sat|sun) ([01][0-9]|2[0-3]):[0-5][0-9])$"}),
            (SettingKind::Text, _) => serde_json::json!({"type": "string"}),
        };
        props.insert(key.to_string(), schema);
    }
    serde_json::json!({"type": "object", "minProperties": 1, "additionalProperties": false,
                       "properties": props})
}

/// How `key` is edited, if owners may edit it here.
pub fn editable(key: &str) -> Option<SettingKind> {
    EDITABLE.iter().find(|(k, _)| *k == key).map(|(_, t)| *t)
}

/// One setting as the pages and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct SettingView {
    pub key: String,
    pub value: Value,
    /// Whether the list's file sets it (else the default applies).
    pub in_file: bool,
    pub editable: bool,
    /// `bool`, `number`, `text`, `choice`, or `other` (not editable here).
    pub kind: &'static str,
    pub choices: Vec<&'static str>,
}

/// Every setting of a list and the version of its file.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    pub list: String,
    pub etag: String,
    pub settings: Vec<SettingView>,
}

/// The version of a list file: a quoted hash of its bytes (an HTTP ETag).
pub fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", hex::encode(&Sha256::digest(bytes)[..16]))
}

/// Whether an `If-Match` value names `etag` (or is `*`).
fn matches(if_match: &str, etag: &str) -> bool {
    if_match
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag || format!("\"{t}\"") == etag)
}

/// `value` flattened to dotted keys (`digest.schedule`).
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        v => out.push((prefix.to_string(), v.clone())),
    }
}

/// Whether the file's YAML sets the dotted `key`.
fn in_file(doc: &serde_yaml_ng::Value, key: &str) -> bool {
    let mut v = doc;
    for part in key.split('.') {
        match v.get(part) {
            Some(inner) => v = inner,
            None => return false,
        }
    }
    true
}

fn read_file(l: &ListConfig) -> ServiceResult<String> {
    std::fs::read_to_string(&l.path).map_err(|e| {
        tracing::error!(file = %l.path.display(), error = %e, "web: cannot read a list file");
        ServiceError::Store(crate::handler::HandlerError::Corrupt(format!(
            "cannot read the list file of {}",
            l.name
        )))
    })
}

fn view(l: &ListConfig, text: &str) -> SettingsView {
    let mut effective = serde_json::to_value(l).unwrap_or_default();
    if let Some(m) = effective.as_object_mut() {
        if let Some(p) = m.get_mut("moderator_password") {
            *p = Value::from(if p.is_null() { "not set" } else { "set" });
        }
        if let Some(h) = m.get_mut("hold_headers") {
            // a list of maps: shown as YAML text, not flattened
            *h = Value::from(serde_json::to_string(h).unwrap_or_default());
        }
    }
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap_or_default();
    let mut flat = Vec::new();
    flatten("", &effective, &mut flat);
    let settings = flat
        .into_iter()
        .map(|(key, value)| {
            let kind = editable(&key);
            SettingView {
                in_file: in_file(&doc, &key),
                editable: kind.is_some(),
                kind: match kind {
                    Some(SettingKind::Bool) => "bool",
                    Some(SettingKind::Number(..)) => "number",
                    Some(SettingKind::Text) => "text",
                    Some(SettingKind::Choice(_)) => "choice",
                    None => "other",
                },
                choices: match kind {
                    Some(SettingKind::Choice(c)) => c.to_vec(),
                    _ => Vec::new(),
                },
                key,
                value,
            }
        })
        .collect();
    SettingsView {
        list: l.name.clone(),
        etag: etag_of(text.as_bytes()),
        settings,
    }
}

/// Every setting of `list`, with its file's version.
pub fn settings(config: &Config, caller: &Caller, list: &str) -> ServiceResult<SettingsView> {
    let l = administered_list(config, caller, list)?;
    let text = read_file(l)?;
    Ok(view(l, &text))
}

/// The result of a saved edit.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsSaved {
    /// The keys whose value changed.
    pub changed: Vec<String>,
    /// The file's new version.
    pub etag: String,
    /// Whether the running daemon now uses them (false: at its next start).
    pub reloaded: bool,
    /// What the reload said (restart warnings, or why it was refused).
    pub warnings: Vec<String>,
}

/// One write at a time: the version check and the rename are one step.
static WRITING: Mutex<()> = Mutex::new(());

fn invalid(key: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// The loader's complaints about `text`, without the server's paths.
fn check(l: &ListConfig, text: &str) -> Result<(), String> {
    ListConfig::parse(&l.path, &l.name, text)
        .map(|_| ())
        .map_err(|errors| {
            errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        })
}

/// Sets `edits` (dotted key → JSON value) in `list`'s file, if `if_match`
/// names its current version: each key must be in [`EDITABLE`] and each
/// value load (422 naming the key otherwise). Values equal to the
/// effective one are left alone. Then `reload` (the daemon's) re-reads the
/// whole configuration.
pub fn edit_settings(
    config: &Config,
    caller: &Caller,
    list: &str,
    if_match: Option<&str>,
    edits: &[(String, Value)],
    reload: impl FnOnce(Config) -> Result<Vec<String>, String>,
) -> ServiceResult<SettingsSaved> {
    let l = administered_list(config, caller, list)?;
    let _one = WRITING.lock().unwrap_or_else(|p| p.into_inner());
    let before = read_file(l)?;
    let etag = etag_of(before.as_bytes());
    let current = view(l, &before);
    let mut text = before.clone();
    let mut changed = Vec::new();
    for (key, value) in edits {
        let Some(kind) = editable(key) else {
            let why = if current.settings.iter().any(|s| &s.key == key) {
                "cannot be changed here (edit the list's file or use `listd lists set`)"
            } else {
                "is not a setting"
            };
            return Err(invalid(key, why));
        };
        let value = &whole(kind, value);
        typed(kind, key, value)?;
        if current
            .settings
            .iter()
            .any(|s| &s.key == key && &s.value == value)
        {
            continue;
        }
        let yaml = serde_yaml_ng::to_value(value).map_err(|e| invalid(key, e.to_string()))?;
        // checked alone first, so that the error names the key that has it
        let alone = edit_list_key(&before, key, Some(yaml.clone())).map_err(|e| invalid(key, e))?;
        check(l, &alone.text).map_err(|e| invalid(key, e))?;
        text = edit_list_key(&text, key, Some(yaml))
            .map_err(|e| invalid(key, e))?
            .text;
        changed.push(key.clone());
    }
    // the version is checked once the edits are known to be valid: a
    // request that is wrong anyway gets the error that says so (RFC 9110
    // 13.2.2: preconditions apply only where the request would succeed)
    let Some(if_match) = if_match else {
        return Err(ServiceError::VersionRequired(format!(
            "name the version you edit: send If-Match: {etag} (the ETag of GET .../settings)"
        )));
    };
    if !matches(if_match, &etag) {
        return Err(ServiceError::VersionMismatch(format!(
            "the settings of {} changed since you read them (now {etag}); read them again",
            l.name
        )));
    }
    if changed.is_empty() {
        return Ok(SettingsSaved {
            changed,
            etag,
            reloaded: false,
            warnings: Vec::new(),
        });
    }
    check(l, &text).map_err(|e| invalid(&changed.join(", "), e))?;
    replace_list_file(&l.path, &before, &text).map_err(|e| {
        ServiceError::VersionMismatch(e.replace(&*l.path.to_string_lossy(), &l.name))
    })?;
    tracing::info!(list = %l.name, by = %caller.actor(), keys = ?changed, "list settings edited");
    let (reloaded, warnings) = match Config::load(&config.path) {
        Err(errors) => (
            false,
            vec![format!(
                "saved, but the configuration does not load, so the daemon keeps the previous one: {}",
                errors.0.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; ")
            )],
        ),
        Ok(c) => match reload(c) {
            Ok(w) => (true, w),
            Err(e) => (false, vec![format!("saved, but the reload was refused: {e}")]),
        },
    };
    Ok(SettingsSaved {
        changed,
        etag: etag_of(text.as_bytes()),
        reloaded,
        warnings,
    })
}

/// Refuses a value of the wrong JSON type for its setting, before YAML
/// (which would read `0` as a text and `"yes"` as a truth) can guess.
fn typed(kind: SettingKind, key: &str, value: &Value) -> ServiceResult<()> {
    let why = match (kind, value) {
        (SettingKind::Bool, Value::Bool(_)) => return Ok(()),
        (SettingKind::Bool, _) => "must be true or false".to_string(),
        (SettingKind::Number(lo, hi), v) => match v.as_u64() {
            Some(n) if (lo..=hi).contains(&n) => return Ok(()),
            _ => format!("must be a whole number from {lo} to {hi}"),
        },
        (SettingKind::Text, Value::String(_)) => return Ok(()),
        (SettingKind::Text, _) => "must be a text (a JSON string)".to_string(),
        (SettingKind::Choice(c), Value::String(v)) if c.contains(&v.as_str()) => return Ok(()),
        (SettingKind::Choice(c), _) => format!("must be one of {}", c.join(", ")),
    };
    Err(invalid(key, why))
}

/// `768.0` for a number setting is `768` (JSON does not tell them apart).
fn whole(kind: SettingKind, value: &Value) -> Value {
    match (kind, value.as_f64()) {
        (SettingKind::Number(..), Some(f))
            if value.is_f64() && f.fract() == 0.0 && (0.0..9.0e15).contains(&f) =>
        {
            Value::from(f as u64)
        }
        _ => value.clone(),
    }
}

/// Reads a settings form field for `key` (a text box, a choice, or a
/// checkbox: `on` when checked, absent otherwise) as the value to set.
pub fn form_value(key: &str, raw: Option<&str>) -> ServiceResult<Option<Value>> {
    let Some(kind) = editable(key) else {
        return Ok(None);
    };
    Ok(match (kind, raw) {
        (SettingKind::Bool, v) => Some(Value::Bool(v.is_some())),
        (_, None) => None,
        (SettingKind::Number(..), Some(v)) => {
            Some(Value::from(v.trim().parse::<u64>().map_err(|_| {
                invalid(key, format!("`{}` is not a whole number", v.trim()))
            })?))
        }
        (SettingKind::Text | SettingKind::Choice(_), Some(v)) => Some(Value::from(v)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_quoted_weak_listed_or_any() {
        let e = etag_of(b"posting: members\n");
        assert_eq!(e.len(), 34);
        assert_ne!(e, etag_of(b"posting: anyone\n"));
        assert!(matches(&e, &e));
        assert!(matches(e.trim_matches('"'), &e));
        assert!(matches(&format!("W/{e}"), &e));
        assert!(matches(&format!("\"x\", {e}"), &e));
        assert!(matches("*", &e));
        assert!(!matches("\"x\"", &e));
        assert!(!matches("", &e));
    }

    #[test]
    fn a_value_of_the_wrong_json_type_is_refused_naming_the_key() {
        let refused = |key: &str, v: Value| {
            matches!(typed(editable(key).unwrap(), key, &v),
                Err(ServiceError::Invalid { key: k, .. }) if k == key)
        };
        assert!(refused("subject_prefix", serde_json::json!(0)));
        assert!(refused("emergency", serde_json::json!("yes")));
        assert!(refused("hold_days", serde_json::json!(-1)));
        assert!(refused("hold_days", serde_json::json!("7")));
        assert!(refused("posting", serde_json::json!("everyone")));
        assert!(refused("who", serde_json::json!({})));
        for (key, v) in [
            ("subject_prefix", serde_json::json!("[dev]")),
            ("emergency", serde_json::json!(true)),
            ("hold_days", serde_json::json!(7)),
            ("posting", serde_json::json!("members")),
        ] {
            assert!(typed(editable(key).unwrap(), key, &v).is_ok(), "{key}");
        }
    }

    #[test]
    fn whole_floats_are_numbers_for_number_settings_only() {
        let n = editable("hold_days").unwrap();
        assert_eq!(whole(n, &serde_json::json!(7.0)), Value::from(7));
        assert_eq!(whole(n, &serde_json::json!(7.5)), serde_json::json!(7.5));
        assert_eq!(whole(n, &serde_json::json!(-1.0)), serde_json::json!(-1.0));
        let t = editable("subject_prefix").unwrap();
        assert_eq!(whole(t, &serde_json::json!(7.0)), serde_json::json!(7.0));
    }

    #[test]
    fn form_fields_become_typed_values() {
        assert_eq!(
            form_value("emergency", None).unwrap(),
            Some(Value::Bool(false))
        );
        assert_eq!(
            form_value("emergency", Some("on")).unwrap(),
            Some(Value::Bool(true))
        );
        assert_eq!(
            form_value("hold_days", Some(" 7 ")).unwrap(),
            Some(Value::from(7))
        );
        assert!(matches!(
            form_value("hold_days", Some("é")),
            Err(ServiceError::Invalid { key, .. }) if key == "hold_days"
        ));
        assert_eq!(form_value("description", None).unwrap(), None);
        assert_eq!(form_value("owners", Some("x")).unwrap(), None);
    }

    #[test]
    fn every_editable_key_is_a_setting() {
        let l = ListConfig::parse(std::path::Path::new("dev.yaml"), "dev", "").unwrap();
        let v = view(&l, "");
        for (k, _) in EDITABLE {
            assert!(v.settings.iter().any(|s| s.key == *k), "{k}");
        }
        assert!(v.settings.iter().all(|s| !s.in_file));
        let p = v
            .settings
            .iter()
            .find(|s| s.key == "moderator_password")
            .unwrap();
        assert_eq!(p.value, Value::from("not set"));
        // a password's hash is never shown, only that there is one
        let text = "moderator_password: \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA\"\n";
        let l = ListConfig::parse(std::path::Path::new("dev.yaml"), "dev", text).unwrap();
        let v = view(&l, text);
        let p = v
            .settings
            .iter()
            .find(|s| s.key == "moderator_password")
            .unwrap();
        assert_eq!((p.value.clone(), p.in_file), (Value::from("set"), true));
        assert!(!serde_json::to_string(&v).unwrap().contains("argon2"));
    }
}
