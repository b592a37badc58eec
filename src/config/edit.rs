//! Editing one list file by key (`listd lists set` / `unset`, the web
//! settings page): text in, text out, and [`replace_list_file`], the one
//! write (atomic, refused when the file changed meanwhile). Trusts neither the key nor the value: the caller checks the
//! result with [`super::ListConfig::parse`] before writing it. Comments and
//! layout outside the edited top-level key are kept; when a line edit would
//! not read back as exactly the intended document, the whole file is
//! re-serialized instead (and the result says so).

use serde_yaml_ng::{Mapping, Value};

/// A list file after one edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditedListFile {
    pub text: String,
    /// Whether every line outside the edited key was kept as it was
    /// (false: the file was re-serialized and lost its comments).
    pub kept_layout: bool,
}

/// Sets (`Some`) or removes (`None`) the setting at the dotted `key`
/// (`posting`, `digest.schedule`) in the list file `text`.
pub fn edit_list_key(
    text: &str,
    key: &str,
    value: Option<Value>,
) -> Result<EditedListFile, String> {
    let path: Vec<&str> = key.split('.').collect();
    if path.iter().any(|p| p.trim().is_empty() || *p != p.trim()) {
        return Err(format!("`{key}` is not a setting name"));
    }
    let mut doc = if text.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| format!("the file does not parse: {e}"))?
    };
    if doc.is_null() {
        doc = Value::Mapping(Mapping::new());
    }
    set_in(&mut doc, &path, value)?;
    let Value::Mapping(top) = &doc else {
        return Err("the file is not a YAML mapping".into());
    };
    let top_key = Value::String(path[0].to_string());
    let block = match top.get(&top_key) {
        Some(v) => {
            let mut one = Mapping::new();
            one.insert(top_key.clone(), v.clone());
            Some(serde_yaml_ng::to_string(&one).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let edited = replace_block(text, path[0], block.as_deref());
    if reads_back_as(&edited, &doc) {
        return Ok(EditedListFile {
            text: edited,
            kept_layout: true,
        });
    }
    let whole = if top.is_empty() {
        String::new()
    } else {
        serde_yaml_ng::to_string(&doc).map_err(|e| e.to_string())?
    };
    Ok(EditedListFile {
        text: whole,
        kept_layout: false,
    })
}

/// Reads a command-line value: YAML (`true`, `30`, `[a@x.org, b@y.org]`),
/// or with `literal` the text itself as a string.
pub fn parse_setting_value(raw: &str, literal: bool) -> Result<Value, String> {
    if literal {
        return Ok(Value::String(raw.to_string()));
    }
    serde_yaml_ng::from_str(raw)
        .map_err(|e| format!("`{raw}` is not a YAML value ({e}); use --string for text"))
}

/// Replaces `file` with `text` atomically (a temporary file beside it,
/// renamed over it), unless the file no longer reads `before` (someone
/// else edited it meanwhile): then nothing is written.
pub fn replace_list_file(file: &std::path::Path, before: &str, text: &str) -> Result<(), String> {
    let name = file
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("list.yaml");
    let tmp = file.with_file_name(format!(".{name}.new"));
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let now = std::fs::read_to_string(file).unwrap_or_default();
    if now != before {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "{} changed while it was being edited; nothing written, try again",
            file.display()
        ));
    }
    std::fs::rename(&tmp, file).map_err(|e| format!("{}: {e}", file.display()))
}

/// Sets or removes `value` at `path` inside `doc`, making maps on the way.
fn set_in(doc: &mut Value, path: &[&str], value: Option<Value>) -> Result<(), String> {
    let Value::Mapping(map) = doc else {
        return Err("cannot set a key inside a value that is not a map".into());
    };
    let k = Value::String(path[0].to_string());
    if path.len() == 1 {
        match value {
            Some(v) => {
                map.insert(k, v);
            }
            None => {
                map.remove(&k);
            }
        }
        return Ok(());
    }
    if !map.contains_key(&k) {
        if value.is_none() {
            return Ok(());
        }
        map.insert(k.clone(), Value::Mapping(Mapping::new()));
    }
    let inner = map.get_mut(&k).expect("inserted above");
    if inner.is_null() {
        *inner = Value::Mapping(Mapping::new());
    }
    set_in(inner, &path[1..], value)
}

/// Whether `text` parses to exactly `doc` (an empty file counts as `{}`).
fn reads_back_as(text: &str, doc: &Value) -> bool {
    let parsed: Result<Value, _> = if text.trim().is_empty() {
        Ok(Value::Mapping(Mapping::new()))
    } else {
        serde_yaml_ng::from_str(text)
    };
    parsed.is_ok_and(|p| &p == doc)
}

/// `text` with the top-level `key`'s lines (the key line and the indented
/// or `- ` lines after it) replaced by `block`, or removed for `None`; a key
/// not in the file is appended.
fn replace_block(text: &str, key: &str, block: Option<&str>) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let starts = |l: &str| {
        l.strip_prefix(key)
            .is_some_and(|rest| rest.starts_with(':'))
    };
    let new = block.unwrap_or("");
    let Some(i) = lines.iter().position(|l| starts(l)) else {
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(new);
        return out;
    };
    let mut end = i + 1;
    let mut j = i + 1;
    while j < lines.len() {
        let l = lines[j];
        if l.trim().is_empty() {
            j += 1;
            continue;
        }
        let continues = l.starts_with(' ')
            || l.starts_with('\t')
            || (l.starts_with('-') && !l.starts_with("---"));
        if !continues {
            break;
        }
        j += 1;
        end = j;
    }
    let mut out: String = lines[..i].concat();
    out.push_str(new);
    out.push_str(&lines[end..].concat());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "# An open list.\ndescription: Dev\nowners:\n- a@example.org\n  # the second owner\n- b@example.org\n\n# who may post\nposting: members\ndigest:\n  enabled: true\n  schedule: daily 06:00\n";

    fn set(text: &str, key: &str, raw: &str) -> EditedListFile {
        edit_list_key(text, key, Some(parse_setting_value(raw, false).unwrap())).unwrap()
    }

    #[test]
    fn a_scalar_is_replaced_in_place_and_comments_stay() {
        let e = set(DEV, "posting", "announce");
        assert!(e.kept_layout);
        assert_eq!(e.text, DEV.replace("posting: members", "posting: announce"));
    }

    #[test]
    fn a_block_list_is_replaced_whole_and_the_next_comment_stays() {
        let e = set(DEV, "owners", "[c@example.org]");
        assert!(e.kept_layout);
        assert!(
            e.text
                .contains("owners:\n- c@example.org\n\n# who may post\n"),
            "{}",
            e.text
        );
        assert!(!e.text.contains("a@example.org") && !e.text.contains("second owner"));
        assert!(e.text.starts_with("# An open list.\ndescription: Dev\n"));
    }

    #[test]
    fn a_nested_key_keeps_its_siblings() {
        let e = set(DEV, "digest.schedule", "weekly mon 07:00");
        assert!(e.kept_layout);
        let v: Value = serde_yaml_ng::from_str(&e.text).unwrap();
        assert_eq!(v["digest"]["schedule"], Value::from("weekly mon 07:00"));
        assert_eq!(v["digest"]["enabled"], Value::from(true));
        assert!(e.text.contains("# who may post\nposting: members\n"));
    }

    #[test]
    fn a_new_key_is_appended_even_without_a_final_newline() {
        let e = set("description: x", "footer", "true");
        assert_eq!(e.text, "description: x\nfooter: true\n");
        let e = set("", "digest.enabled", "false");
        assert_eq!(e.text, "digest:\n  enabled: false\n");
    }

    #[test]
    fn unset_removes_the_key_and_its_lines() {
        let e = edit_list_key(DEV, "owners", None).unwrap();
        assert!(e.kept_layout);
        assert!(!e.text.contains("owners") && !e.text.contains("b@example.org"));
        assert!(
            e.text.contains("description: Dev\n\n# who may post\n"),
            "{}",
            e.text
        );
        // unsetting what is not there changes nothing
        assert_eq!(edit_list_key(DEV, "footer", None).unwrap().text, DEV);
    }

    #[test]
    fn a_layout_the_line_edit_cannot_follow_is_reserialized() {
        // a flow mapping spanning lines at column 0 is not a block the line
        // edit recognises; the result must still read back as intended
        let text = "digest: {enabled: true,\nschedule: daily 06:00}\nfooter: true\n";
        let e = set(text, "digest.enabled", "false");
        assert!(!e.kept_layout);
        let v: Value = serde_yaml_ng::from_str(&e.text).unwrap();
        assert_eq!(v["digest"]["enabled"], Value::from(false));
        assert_eq!(v["digest"]["schedule"], Value::from("daily 06:00"));
        assert_eq!(v["footer"], Value::from(true));
    }

    #[test]
    fn bad_keys_values_and_files_are_errors() {
        assert!(edit_list_key(DEV, "digest..x", None).is_err());
        assert!(edit_list_key(DEV, "", None).is_err());
        assert!(edit_list_key(DEV, "posting.x", Some(Value::from(1))).is_err());
        assert!(edit_list_key("- a\n- b\n", "posting", Some(Value::from(1))).is_err());
        assert!(edit_list_key("a: [", "posting", Some(Value::from(1))).is_err());
        assert!(parse_setting_value("[dev", false).is_err());
        assert_eq!(
            parse_setting_value("[dev]", true).unwrap(),
            Value::from("[dev]")
        );
    }

    #[test]
    fn a_list_file_is_replaced_only_if_it_still_reads_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("dev.yaml");
        std::fs::write(&f, "# c\nposting: members\n").unwrap();
        replace_list_file(&f, "# c\nposting: members\n", "# c\nposting: anyone\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "# c\nposting: anyone\n"
        );
        let e = replace_list_file(&f, "# c\nposting: members\n", "x: 1\n").unwrap_err();
        assert!(e.contains("changed while"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "# c\nposting: anyone\n"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }

    #[test]
    fn a_key_that_only_prefixes_another_is_not_matched() {
        let text = "hold_days: 3\nhold: x\n";
        let e = set(text, "hold", "y");
        assert_eq!(e.text, "hold_days: 3\nhold: y\n");
    }
}
