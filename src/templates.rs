//! Templates: the handlebars registry for every mail listd writes.
//!
//! Site templates are `templates_dir/NAME.hbs`; a list overrides any of them
//! with `lists_dir/LIST/templates/NAME.hbs`. Templates render plain text, so
//! they are registered with `no_escape`. Template files are trusted to be
//! written by the site admin or list owner; the data rendered into them is not
//! (it is never interpreted as a template).

use handlebars::Handlebars;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Template errors name the template file.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{path}: {message}")]
    Load { path: String, message: String },
    #[error("template `{name}` not found (looked in {looked})")]
    Missing { name: String, looked: String },
    #[error("template `{name}`: {message}")]
    Render { name: String, message: String },
}

/// The loaded templates: the site set and each list's overrides.
pub struct Templates {
    site: Handlebars<'static>,
    lists: HashMap<String, Handlebars<'static>>,
    site_dir: PathBuf,
}

fn registry() -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.register_escape_fn(handlebars::no_escape);
    h.set_strict_mode(false);
    h
}

fn load_dir(h: &mut Handlebars<'static>, dir: &Path) -> Result<(), TemplateError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.extension().and_then(|e| e.to_str()) != Some("hbs") {
            continue;
        }
        let Some(name) = p.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let text = std::fs::read_to_string(&p).map_err(|e| TemplateError::Load {
            path: p.display().to_string(),
            message: e.to_string(),
        })?;
        h.register_template_string(name, text)
            .map_err(|e| TemplateError::Load {
                path: p.display().to_string(),
                message: e.to_string(),
            })?;
    }
    Ok(())
}

impl Templates {
    /// Loads `templates_dir` and every `lists_dir/LIST/templates/`.
    pub fn load(
        templates_dir: &Path,
        lists_dir: &Path,
        lists: &[&str],
    ) -> Result<Templates, TemplateError> {
        let mut site = registry();
        load_dir(&mut site, templates_dir)?;
        let mut per_list = HashMap::new();
        for list in lists {
            let dir = lists_dir.join(list).join("templates");
            if dir.is_dir() {
                let mut h = registry();
                load_dir(&mut h, &dir)?;
                per_list.insert(list.to_string(), h);
            }
        }
        Ok(Templates {
            site,
            lists: per_list,
            site_dir: templates_dir.to_path_buf(),
        })
    }

    /// Loads the templates a configuration names.
    pub fn for_config(config: &crate::config::Config) -> Result<Templates, TemplateError> {
        let names: Vec<&str> = config.lists.keys().map(String::as_str).collect();
        Templates::load(&config.templates_dir, &config.lists_dir, &names)
    }

    /// Whether a template exists for this list (override or site).
    pub fn has(&self, list: Option<&str>, name: &str) -> bool {
        list.and_then(|l| self.lists.get(l))
            .is_some_and(|h| h.has_template(name))
            || self.site.has_template(name)
    }

    /// Renders `name` (an HTML page) with every string in `data`
    /// HTML-escaped first: the registry escapes nothing, so this holds
    /// even for `{{{triple}}}` stashes in an owner's template.
    pub fn render_html(
        &self,
        list: Option<&str>,
        name: &str,
        data: &serde_json::Value,
    ) -> Result<String, TemplateError> {
        self.render(list, name, &html_escaped(data))
    }

    /// Renders `name`, preferring the list's override.
    pub fn render<T: serde::Serialize>(
        &self,
        list: Option<&str>,
        name: &str,
        data: &T,
    ) -> Result<String, TemplateError> {
        let h = match list.and_then(|l| self.lists.get(l)) {
            Some(h) if h.has_template(name) => h,
            _ if self.site.has_template(name) => &self.site,
            _ => {
                return Err(TemplateError::Missing {
                    name: name.to_string(),
                    looked: self.site_dir.display().to_string(),
                })
            }
        };
        h.render(name, data).map_err(|e| TemplateError::Render {
            name: name.to_string(),
            message: e.to_string(),
        })
    }
}

/// `value` with every string in it HTML-escaped.
fn html_escaped(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(handlebars::html_escape(s)),
        Value::Array(a) => Value::Array(a.iter().map(html_escaped).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), html_escaped(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_pages_escape_every_value_even_in_triple_stashes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("page.hbs"),
            "<p>{{a}} {{{b}}} {{#each c}}{{this}}{{/each}}</p>",
        )
        .unwrap();
        let t = Templates::load(dir.path(), dir.path(), &[]).unwrap();
        let data = serde_json::json!({"a": "<script>", "b": "\"&'", "c": ["<i>", 7]});
        assert_eq!(
            t.render_html(None, "page", &data).unwrap(),
            "<p>&lt;script&gt; &quot;&amp;&#x27; &lt;i&gt;7</p>"
        );
    }

    #[test]
    fn list_override_wins_and_nothing_is_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("templates");
        let lists = dir.path().join("lists");
        std::fs::create_dir_all(&site).unwrap();
        std::fs::create_dir_all(lists.join("dev/templates")).unwrap();
        std::fs::write(site.join("help.hbs"), "site help for {{list}} <{{addr}}>").unwrap();
        std::fs::write(site.join("welcome.hbs"), "welcome").unwrap();
        std::fs::write(lists.join("dev/templates/help.hbs"), "dev help").unwrap();
        let t = Templates::load(&site, &lists, &["dev", "ops"]).unwrap();
        let data = serde_json::json!({"list": "ops", "addr": "a&b@example.org"});
        assert_eq!(
            t.render(Some("ops"), "help", &data).unwrap(),
            "site help for ops <a&b@example.org>"
        );
        assert_eq!(t.render(Some("dev"), "help", &data).unwrap(), "dev help");
        assert_eq!(t.render(Some("dev"), "welcome", &data).unwrap(), "welcome");
        assert!(matches!(
            t.render(None, "nope", &data),
            Err(TemplateError::Missing { .. })
        ));
    }

    #[test]
    fn broken_template_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.hbs"), "{{#if}}").unwrap();
        let e = Templates::load(dir.path(), dir.path(), &[]).err().unwrap();
        assert!(e.to_string().contains("bad.hbs"), "{e}");
    }
}
