//! Configuration errors that name the file, the line and column, and the reason.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub line: Option<(usize, usize)>,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &Path, line: Option<(usize, usize)>, message: String) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            line,
            message,
        }
    }

    /// Converts a serde_yaml_ng error, keeping its location.
    pub fn from_yaml(file: &Path, e: &serde_yaml_ng::Error) -> ConfigError {
        let line = e.location().map(|l| (l.line(), l.column()));
        // serde_yaml_ng appends "at line X column Y" to the message; the
        // location is printed separately, so drop the duplicate.
        let mut message = e.to_string();
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        ConfigError::new(file, line, message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some((l, c)) => write!(f, "{}:{}:{}: {}", self.file.display(), l, c, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every error found while loading.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Line and column (1-based) of the first occurrence of `needle` in `text`.
/// Used for errors found after deserializing, where serde no longer has a span.
pub fn find_line(text: &str, needle: &str) -> Option<(usize, usize)> {
    find_line_from(text, 0, needle)
}

/// [`find_line`] for the first `needle` at or after byte `from` (a char
/// boundary of `text`, else nothing is found).
pub fn find_line_from(text: &str, from: usize, needle: &str) -> Option<(usize, usize)> {
    let idx = from + text.get(from..)?.find(needle)?;
    let before = &text[..idx];
    let line = before.matches('\n').count() + 1;
    let col = idx - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    Some((line, col))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_from_an_offset() {
        let text = "a: 1\ndigest:\n  header: x\nheader: y\n";
        assert_eq!(find_line(text, "header:"), Some((3, 3)));
        assert_eq!(find_line_from(text, 0, "a: 1"), Some((1, 1)));
        let after = text.find("header: x").unwrap() + 1;
        assert_eq!(find_line_from(text, after, "header:"), Some((4, 1)));
        assert_eq!(find_line_from(text, text.len() + 5, "x"), None);
        assert_eq!(find_line_from("é:", 1, ":"), None);
    }
}
