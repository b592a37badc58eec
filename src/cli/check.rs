//! `listd check` and `listd lists`.

use super::{load_config, open_store, CliResult};
use std::path::Path;

/// Validates the configuration and the templates, printing every error.
pub fn run(path: &Path) -> CliResult {
    let config = match crate::config::Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            anyhow::bail!("{} error(s) in the configuration", errors.0.len());
        }
    };
    if config.postmaster.is_empty() {
        let to = config.postmaster_recipients();
        if to.is_empty() {
            eprintln!(
                "warning: {}: `postmaster:` is not set and no list has owners; mail to {} will be kept as corrupt (listd queue) until you set it",
                path.display(),
                config.postmaster_address()
            );
        } else {
            eprintln!(
                "warning: {}: `postmaster:` is not set; mail to {} goes to the owners of every list ({})",
                path.display(),
                config.postmaster_address(),
                to.join(", ")
            );
        }
    }
    if let Some(w) = config.web.public_url_warning() {
        eprintln!("warning: {}: {w}", path.display());
    }
    if config.web.public_url.is_none() {
        for list in config.lists.values().filter(|l| l.personalize) {
            eprintln!(
                "warning: {}: `personalize: true` does nothing until web.public_url is set",
                list.path.display()
            );
        }
    }
    let templates = crate::templates::Templates::for_config(&config)?;
    if config.web.listen.is_some() && !templates.has(None, crate::web::PAGE_TEMPLATE) {
        eprintln!(
            "warning: {}: the web page template `{}` is missing; web pages will be plain text",
            config.templates_dir.display(),
            crate::web::PAGE_TEMPLATE
        );
    }
    if config.web.listen.is_some() && !templates.has(None, crate::web::LOGIN_TEMPLATE) {
        eprintln!(
            "warning: {}: the login mail template `{}` is missing; web logins cannot be mailed",
            config.templates_dir.display(),
            crate::web::LOGIN_TEMPLATE
        );
    }
    if config.web.listen.is_some() && !templates.has(None, crate::web::ARCHIVE_TEMPLATE) {
        eprintln!(
            "warning: {}: the archive page template `{}` is missing; archive pages will answer 500",
            config.templates_dir.display(),
            crate::web::ARCHIVE_TEMPLATE
        );
    }
    let missing = crate::robot::missing_templates(&templates, None);
    if !missing.is_empty() {
        eprintln!(
            "warning: {}: the command robot's templates are missing ({}); command mail will wait until they exist",
            config.templates_dir.display(),
            missing.join(", ")
        );
    }
    for list in config.lists.values() {
        warn_list_templates(
            &config,
            list,
            &format!("list `{}`: post templates missing", list.name),
            &crate::posts::distribute::missing_templates(&templates, list),
            "posts that need them will wait until they exist",
        );
        warn_list_templates(
            &config,
            list,
            &format!("moderation templates for `{}` are missing", list.name),
            &crate::moderation::missing_templates(&templates, list),
            "held posts and moderators' replies will wait until they exist",
        );
    }
    let missing = crate::digest::missing_templates(&config, &templates);
    for e in &missing {
        eprintln!("{e}");
    }
    if !missing.is_empty() {
        anyhow::bail!("{} error(s) in the configuration", missing.len());
    }
    println!(
        "{}: ok ({} lists: {})",
        path.display(),
        config.lists.len(),
        config.lists.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// `warning: WHAT (names) in SITE or LIST; CONSEQUENCE` when `missing` is not empty.
fn warn_list_templates(
    config: &crate::config::Config,
    list: &crate::config::ListConfig,
    what: &str,
    missing: &[impl AsRef<str>],
    consequence: &str,
) {
    if missing.is_empty() {
        return;
    }
    let names: Vec<&str> = missing.iter().map(AsRef::as_ref).collect();
    eprintln!(
        "warning: {what} ({}) in {} or {}; {consequence}",
        names.join(", "),
        config.templates_dir.display(),
        config
            .lists_dir
            .join(&list.name)
            .join("templates")
            .display()
    );
}

/// Lists every configured list with its address, policy and member count.
pub fn lists(path: &Path) -> CliResult {
    let config = load_config(path)?;
    let conn = open_store(&config)?;
    for (name, l) in &config.lists {
        let n = crate::store::members::count(&conn, name)?;
        println!(
            "{:<24} {:>7} members  posting={:<9} subscription={:<20} {}",
            config.list_address(name),
            n,
            format!("{:?}", l.posting).to_lowercase(),
            format!("{:?}", l.subscription).to_lowercase(),
            l.description
        );
    }
    Ok(())
}
