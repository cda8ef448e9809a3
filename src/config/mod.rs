//! Configuration: the file formats (`server`, `adapter`), their validation into the model the
//! proxy uses, the live [`Snapshot`](snapshot::Snapshot) swapped in on every change
//! (`snapshot`, `watch`), issued keys (`keys`), provider presets (`presets`) and the file
//! edits the CLI and the management API make (`edit`), panel accounts (`users`), who may sign up
//! (`accounts`) and with which codes (`invites`), what
//! users' sources may reach (`egress`) and the client setup shown for a new key (`setup`).

pub mod accounts;
pub mod adapter;
pub mod edit;
pub mod egress;
pub mod invites;
pub mod keys;
pub mod presets;
pub mod prices;
pub mod reasoning_key;
pub mod resets;
pub mod server;
pub mod setup;
pub mod snapshot;
pub mod sso;
pub mod users;
pub mod watch;
pub mod yaml_write;

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration problem, located as precisely as we can: `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column.
    pub location: Option<(usize, usize)>,
    pub message: String,
}

impl ConfigError {
    pub fn at(file: &Path, location: Option<(usize, usize)>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_owned(),
            location,
            message: message.into(),
        }
    }

    pub fn yaml(file: &Path, e: &serde_yaml_ng::Error) -> Self {
        let location = e.location().map(|l| (l.line(), l.column()));
        // serde_yaml's message repeats the location at its end; keep just the reason.
        let message = e.to_string();
        let message = match message.find(" at line ") {
            Some(i) => message[..i].to_owned(),
            None => message,
        };
        ConfigError::at(file, location, message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.file.display(), self.message)
            }
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The 1-based line and column of the first occurrence of `needle` in `text`, for errors found
/// after parsing (serde does not keep positions).
pub fn line_of(text: &str, needle: &str) -> Option<(usize, usize)> {
    if needle.is_empty() {
        return None;
    }
    let offset = text.find(needle)?;
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    Some((line, col))
}
