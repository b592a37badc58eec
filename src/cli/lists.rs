//! `listd lists [create|get|set|unset]`: the owner's side of a list's file.
//! Trusts the operator who can write `lists_dir` (that is the privilege);
//! trusts nothing in the values: every change is checked as `listd check`
//! would before the file is replaced, and a file that changed meanwhile is
//! not overwritten. A running daemon is then asked to reload (the control
//! socket), and refuses the files as SIGHUP would if they have errors.

use super::{list_name, load_config, CliResult};
use crate::config::{edit_list_key, parse_setting_value, ListConfig};
use anyhow::{bail, Context};
use clap::Subcommand;
use serde_yaml_ng::{Mapping, Value};
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum ListsCmd {
    /// Create a list: writes LISTS_DIR/NAME.yaml with its owners (never over an existing list).
    Create {
        /// The list's name: a-z, 0-9, `.`, `_`, `-` (its address is NAME@domain).
        name: String,
        /// An owner's address (repeat for more); at least one.
        #[arg(long = "owner", value_name = "ADDRESS", required = true)]
        owners: Vec<String>,
        /// One line saying what the list is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Print a list's settings in force (defaults included) as YAML, or the one KEY (e.g. `posting`, `digest.schedule`).
    Get { list: String, key: Option<String> },
    /// Change one setting in the list's file; the rest of the file, comments included, stays.
    Set {
        list: String,
        /// The setting, dotted for nested keys: `posting`, `digest.schedule`.
        key: String,
        /// A YAML value: `announce`, `true`, `30`, `[a@example.org, b@example.org]`.
        value: String,
        /// Take VALUE as text as it is (e.g. `--string "[dev]"` for subject_prefix).
        #[arg(long)]
        string: bool,
    },
    /// Remove a setting from the list's file, so its default applies.
    Unset { list: String, key: String },
}

/// Runs `listd lists ...`; without a subcommand, the overview.
pub fn run(path: &Path, cmd: Option<ListsCmd>) -> CliResult {
    match cmd {
        None => super::check::lists(path),
        Some(ListsCmd::Create {
            name,
            owners,
            description,
        }) => create(path, &name, &owners, &description),
        Some(ListsCmd::Get { list, key }) => get(path, &list, key.as_deref()),
        Some(ListsCmd::Set {
            list,
            key,
            value,
            string,
        }) => edit(path, &list, &key, Some(parse_setting_value(&value, string))),
        Some(ListsCmd::Unset { list, key }) => edit(path, &list, &key, None),
    }
}

fn create(path: &Path, name: &str, owners: &[String], description: &str) -> CliResult {
    let config = load_config(path)?;
    if config.lists.contains_key(&name.to_ascii_lowercase()) {
        bail!("list `{name}` exists already (see `listd lists get {name}`)");
    }
    let mut doc = Mapping::new();
    doc.insert("description".into(), description.into());
    doc.insert(
        "owners".into(),
        Value::Sequence(owners.iter().map(|o| o.as_str().into()).collect()),
    );
    let text = format!(
        "# Made by `listd lists create`; change it with `listd lists set {name} KEY VALUE`.\n{}",
        serde_yaml_ng::to_string(&doc)?
    );
    let file = config.lists_dir.join(format!("{name}.yaml"));
    check_list_text(&file, name, &text)?;
    let tmp = config.lists_dir.join(format!(".{name}.yaml.new"));
    std::fs::write(&tmp, &text).with_context(|| format!("{}", tmp.display()))?;
    // a hard link never replaces an existing file, unlike a rename
    let linked = std::fs::hard_link(&tmp, &file);
    let _ = std::fs::remove_file(&tmp);
    linked.with_context(|| format!("{}", file.display()))?;
    println!("created {} ({})", config.list_address(name), file.display());
    ask_reload(&config);
    Ok(())
}

fn get(path: &Path, list: &str, key: Option<&str>) -> CliResult {
    let config = load_config(path)?;
    let name = list_name(&config, list)?;
    let mut all = serde_yaml_ng::to_value(&config.lists[&name])?;
    if !all["moderator_password"].is_null() {
        all["moderator_password"] = "<argon2 hash>".into();
    }
    let Some(key) = key else {
        print!("{}", serde_yaml_ng::to_string(&all)?);
        return Ok(());
    };
    let mut v = &all;
    for part in key.split('.') {
        v = match v {
            Value::Mapping(m) => m.get(part),
            _ => None,
        }
        .with_context(|| format!("no setting `{key}` (see `listd lists get {name}`)"))?;
    }
    match v {
        Value::String(s) => println!("{s}"),
        Value::Null => println!(),
        other => print!("{}", serde_yaml_ng::to_string(other)?),
    }
    Ok(())
}

fn edit(path: &Path, list: &str, key: &str, value: Option<Result<Value, String>>) -> CliResult {
    let value = value.transpose().map_err(anyhow::Error::msg)?;
    let config = load_config(path)?;
    let name = list_name(&config, list)?;
    let file = config.lists[&name].path.clone();
    let before = std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
    let edited = edit_list_key(&before, key, value.clone())
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(&name)
        .to_string();
    check_list_text(&file, &stem, &edited.text).map_err(|e| match &value {
        Some(v) if !v.is_string() => e.context(format!(
            "VALUE was read as YAML ({}); `--string` sets it as text",
            serde_yaml_ng::to_string(v).unwrap_or_default().trim_end()
        )),
        _ => e,
    })?;
    if edited.text == before {
        println!("{name}: {key} unchanged");
        return Ok(());
    }
    crate::config::replace_list_file(&file, &before, &edited.text).map_err(anyhow::Error::msg)?;
    if !edited.kept_layout {
        eprintln!(
            "warning: {}: rewritten whole (its comments are gone): the edit could not be made in place",
            file.display()
        );
    }
    match value {
        Some(_) => println!("{name}: {key} set"),
        None => println!("{name}: {key} unset (its default applies)"),
    }
    ask_reload(&config);
    Ok(())
}

/// Asks a daemon running on this data directory to re-read its
/// configuration, and says whether one was there.
fn ask_reload(config: &crate::config::Config) {
    if crate::control::reload(&config.data_dir) {
        println!("the running daemon was asked to reload");
    } else {
        println!(
            "no daemon is running on {}; it applies at the next start",
            config.data_dir.display()
        );
    }
}

/// Checks a list file's text as loading would, reporting every error (with
/// lines of the text as it would have been written).
fn check_list_text(file: &Path, name: &str, text: &str) -> CliResult {
    match ListConfig::parse(file, name, text) {
        Ok(_) => Ok(()),
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            bail!(
                "nothing written; the file would read:\n{}",
                lines.join("\n")
            )
        }
    }
}
