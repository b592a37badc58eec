//! The real `listd` binary run as a command: `listd --config PATH ARGS...`,
//! optionally with text on stdin and extra environment variables. The one
//! CLI runner every integration test uses (`run_cli` is its shorthand for
//! a [`super::TestEnv`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// How to run `listd` against one configuration file.
#[derive(Debug, Clone)]
pub struct Listd {
    config: PathBuf,
    stdin: Option<String>,
    vars: Vec<(String, String)>,
}

impl Listd {
    /// `listd --config CONFIG`.
    pub fn at(config: impl AsRef<Path>) -> Listd {
        Listd {
            config: config.as_ref().to_path_buf(),
            stdin: None,
            vars: Vec::new(),
        }
    }

    /// Writes `text` to the command's stdin (then closes it); without it,
    /// stdin is empty.
    pub fn stdin(mut self, text: &str) -> Listd {
        self.stdin = Some(text.to_string());
        self
    }

    /// Sets an environment variable for the command.
    pub fn var(mut self, key: &str, value: &str) -> Listd {
        self.vars.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs `listd --config CONFIG ARGS...` to the end. `LISTD_CONFIG` is
    /// removed from its environment, so only `--config` names the file.
    pub fn output(&self, args: &[&str]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_listd"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("LISTD_CONFIG")
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run listd");
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(self.stdin.as_deref().unwrap_or("").as_bytes())
            .expect("write stdin");
        drop(pipe);
        child.wait_with_output().expect("wait for listd")
    }

    /// [`Listd::output`] as (exit code, or -1 when killed by a signal;
    /// stdout; stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.output(args);
        (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
    }
}

/// A run's stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A run's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
