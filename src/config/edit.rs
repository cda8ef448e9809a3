//! The changes the CLI makes to adapter files — create, rotate a key, delete — done the way a
//! running proxy can watch safely: written to a temporary file and renamed into place
//! (never half-written), mode 0600 (files may hold provider keys), and edited in place so
//! comments and fields the command did not touch survive.

use super::adapter::{AdapterFile, KeyFile, SourceProtocol, parse_adapter};
use super::keys::{Secret, generate_key, hash_hex, hash_key};
use super::presets;
use super::server::ServerConfig;
use super::snapshot::is_adapter_file;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{0}")]
    Invalid(String),
    #[error("no adapter named `{0}` in {1}")]
    NotFound(String, String),
    #[error("{0}")]
    Io(String),
}

fn io(context: &str, path: &Path, e: std::io::Error) -> EditError {
    EditError::Io(format!("{context} {}: {e}", path.display()))
}

/// What `adapter create` needs.
#[derive(Debug, Clone, Default)]
pub struct CreateSpec {
    pub name: String,
    pub provider: Option<String>,
    pub base_url: Option<String>,
    /// Exactly one of these: the environment variable holding the provider key, or the key.
    pub api_key_env: Option<String>,
    pub api_key: Option<String>,
    pub model: String,
    pub label: Option<String>,
    /// The source's protocol when no preset says it (`anthropic` for Messages API sources).
    pub protocol: Option<SourceProtocol>,
}

#[derive(Debug)]
pub struct Created {
    pub file: PathBuf,
    pub key: Secret,
    pub protocol: SourceProtocol,
    pub base_url: String,
}

/// Writes `text` to `path` atomically with mode 0600.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), EditError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("adapter");
    // A dot-name: the watcher ignores it while it is being written.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("cannot create", &tmp, e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("cannot move into place", path, e)
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The adapter files in the directory with the adapter name each declares.
pub fn adapter_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, EditError> {
    let entries = std::fs::read_dir(dir).map_err(|e| io("cannot read", dir, e))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !is_adapter_file(&path) {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let declared = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_yaml_ng::from_str::<AdapterFile>(&t).ok())
            .and_then(|f| f.name);
        out.push((declared.unwrap_or(stem), path));
    }
    out.sort();
    Ok(out)
}

fn find(server: &ServerConfig, name: &str) -> Result<PathBuf, EditError> {
    adapter_files(&server.adapters_dir)?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p)
        .ok_or_else(|| {
            EditError::NotFound(name.to_owned(), server.adapters_dir.display().to_string())
        })
}

fn yaml_str(s: &str) -> String {
    // JSON strings are valid YAML scalars and escape everything that needs it.
    serde_json::to_string(s).unwrap_or_default()
}

pub fn create(server: &ServerConfig, spec: &CreateSpec) -> Result<Created, EditError> {
    if !valid_name(&spec.name) {
        return Err(EditError::Invalid(format!(
            "adapter name `{}` may only contain letters, digits, `-`, `_` and `.`",
            spec.name
        )));
    }
    std::fs::create_dir_all(&server.adapters_dir)
        .map_err(|e| io("cannot create", &server.adapters_dir, e))?;
    let existing = adapter_files(&server.adapters_dir)?;
    if existing.iter().any(|(n, _)| n == &spec.name) {
        return Err(EditError::Invalid(format!(
            "an adapter named `{}` already exists",
            spec.name
        )));
    }
    if let Some(max) = server.max_adapters
        && existing.len() >= max
    {
        return Err(EditError::Invalid(format!(
            "cannot create `{}`: the maximum of {max} adapters (max_adapters in {}) is reached; delete one first",
            spec.name,
            server.path.display()
        )));
    }
    let file = server.adapters_dir.join(format!("{}.yaml", spec.name));
    let preset = match &spec.provider {
        Some(p) => Some(presets::by_name(p).ok_or_else(|| {
            EditError::Invalid(format!(
                "unknown provider `{p}` (known: {})",
                presets::names().join(", ")
            ))
        })?),
        None => None,
    };
    let base_url = spec
        .base_url
        .clone()
        .or_else(|| preset.as_ref().map(|p| p.base_url.to_owned()))
        .ok_or_else(|| EditError::Invalid("give --base-url or --provider".to_owned()))?;
    let api_key = match (&spec.api_key_env, &spec.api_key) {
        (Some(var), None) => format!("${{{var}}}"),
        (None, Some(key)) => key.clone(),
        _ => {
            return Err(EditError::Invalid(
                "give exactly one of --api-key-env or --api-key".to_owned(),
            ));
        }
    };
    let key =
        generate_key().map_err(|e| EditError::Io(format!("no random numbers from the OS: {e}")))?;
    let label = spec.label.clone().unwrap_or_else(|| "default".to_owned());
    let mut text = format!(
        "# Adapter `{name}`, created by `flexiproxy adapter create`. Edit freely: the proxy reloads\n\
         # this file when it changes. The client key itself is never stored, only its SHA-256.\n\n\
         source:\n",
        name = spec.name
    );
    if let Some(p) = &preset {
        text.push_str(&format!("  preset: {}\n", p.name));
    }
    if let Some(protocol) = spec.protocol {
        text.push_str(match protocol {
            SourceProtocol::OpenAi => "  protocol: openai\n",
            SourceProtocol::Anthropic => "  protocol: anthropic\n",
            SourceProtocol::Responses => "  protocol: responses\n",
            SourceProtocol::Gemini => "  protocol: gemini\n",
        });
    }
    text.push_str(&format!(
        "  base_url: {}\n  api_key: {}\n  model: {}\n",
        yaml_str(&base_url),
        yaml_str(&api_key),
        yaml_str(&spec.model)
    ));
    text.push_str(
        "  # model_map:                      # first matching glob on the client's model wins\n\
         \x20 #   - { match: \"claude-*haiku*\", model: a-cheaper-model }\n\n",
    );
    text.push_str(&format!(
        "keys:\n  - sha256: {}\n    label: {}\n",
        hash_hex(&hash_key(key.expose())),
        yaml_str(&label)
    ));
    // Validate what we are about to write, as the proxy will.
    let adapter =
        parse_adapter(&file, &text, &|_| None).map_err(|e| EditError::Invalid(e.message))?;
    write_atomic(&file, &text)?;
    Ok(Created {
        file,
        key,
        protocol: adapter.source.protocol,
        base_url,
    })
}

/// Issues a new key. Old keys (those with `label`, or all when `None`) stop working at once,
/// or after `grace` (recorded as `expires`). Keys already expired are dropped.
pub fn rotate(
    server: &ServerConfig,
    name: &str,
    grace: Option<Duration>,
    label: Option<&str>,
) -> Result<(PathBuf, Secret), EditError> {
    let path = find(server, name)?;
    let text = std::fs::read_to_string(&path).map_err(|e| io("cannot read", &path, e))?;
    let file: AdapterFile = serde_yaml_ng::from_str(&text)
        .map_err(|e| EditError::Invalid(super::ConfigError::yaml(&path, &e).to_string()))?;
    let now = SystemTime::now();
    let key =
        generate_key().map_err(|e| EditError::Io(format!("no random numbers from the OS: {e}")))?;
    let mut keys: Vec<KeyFile> = Vec::new();
    let mut new_label = label.map(str::to_owned);
    for mut k in file.keys {
        if k.expires.is_some_and(|e| e <= now) {
            continue;
        }
        let rotated = label.is_none_or(|l| k.label.as_deref() == Some(l));
        if rotated {
            if new_label.is_none() {
                new_label = k.label.clone();
            }
            match grace {
                None => continue,
                Some(g) => {
                    let until = now + g;
                    k.expires = Some(k.expires.map_or(until, |e| e.min(until)));
                }
            }
        }
        keys.push(k);
    }
    keys.push(KeyFile {
        sha256: hash_hex(&hash_key(key.expose())),
        label: new_label,
        expires: None,
        limits: None,
    });
    let updated = replace_keys_section(&text, &keys)?;
    parse_adapter(&path, &updated, &|_| None).map_err(|e| EditError::Invalid(e.to_string()))?;
    write_atomic(&path, &updated)?;
    Ok((path, key))
}

pub fn delete(server: &ServerConfig, name: &str) -> Result<PathBuf, EditError> {
    let path = find(server, name)?;
    std::fs::remove_file(&path).map_err(|e| io("cannot delete", &path, e))?;
    Ok(path)
}

/// Replaces the top-level `keys:` block of an adapter file (or appends one), leaving every
/// other line as it was.
pub fn replace_keys_section(text: &str, keys: &[KeyFile]) -> Result<String, EditError> {
    #[derive(serde::Serialize)]
    struct Keys<'a> {
        keys: &'a [KeyFile],
    }
    let block = serde_yaml_ng::to_string(&Keys { keys })
        .map_err(|e| EditError::Invalid(format!("cannot write keys: {e}")))?;
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| l.starts_with("keys:")) else {
        let mut out = text.trim_end().to_owned();
        out.push_str("\n\n");
        out.push_str(&block);
        return Ok(out);
    };
    // The block runs until the next line at column 0 that is not a list item (a top-level
    // key or comment); blank lines just before that stay where they are.
    let mut end = lines[start + 1..]
        .iter()
        .position(|l| {
            !(l.is_empty() || l.starts_with(' ') || l.starts_with('\t') || l.starts_with('-'))
        })
        .map_or(lines.len(), |i| start + 1 + i);
    while end > start + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    let mut out = String::with_capacity(text.len() + block.len());
    for l in &lines[..start] {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&block);
    for l in &lines[end..] {
        out.push_str(l);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(dir: &Path, max: Option<usize>) -> ServerConfig {
        let mut text = "listen: 127.0.0.1:8787\n".to_owned();
        if let Some(m) = max {
            text.push_str(&format!("max_adapters: {m}\n"));
        }
        let path = dir.join("flexiproxy.yaml");
        std::fs::write(&path, &text).unwrap();
        ServerConfig::parse(&path, &text).unwrap()
    }

    fn spec(name: &str) -> CreateSpec {
        CreateSpec {
            name: name.into(),
            provider: Some("deepseek".into()),
            api_key_env: Some("DEEPSEEK_API_KEY".into()),
            model: "deepseek-chat".into(),
            ..CreateSpec::default()
        }
    }

    #[test]
    fn create_writes_a_valid_private_file_with_only_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path(), None);
        let c = create(&s, &spec("ds")).unwrap();
        let text = std::fs::read_to_string(&c.file).unwrap();
        assert!(
            !text.contains(c.key.expose()),
            "the key itself is never stored"
        );
        assert!(text.contains(&hash_hex(&hash_key(c.key.expose()))));
        assert!(text.contains("${DEEPSEEK_API_KEY}"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&c.file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(c.base_url, "https://api.deepseek.com/v1");
        assert!(create(&s, &spec("ds")).is_err(), "names are unique");
        assert!(create(&s, &spec("../evil")).is_err());
    }

    #[test]
    fn anthropic_preset_sets_protocol_and_base_url() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path(), None);
        let mut sp = spec("dsa");
        sp.provider = Some("deepseek-anthropic".into());
        let c = create(&s, &sp).unwrap();
        assert_eq!(c.protocol, SourceProtocol::Anthropic);
        assert_eq!(c.base_url, "https://api.deepseek.com/anthropic");
    }

    #[test]
    fn create_respects_max_adapters() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path(), Some(1));
        create(&s, &spec("a")).unwrap();
        let e = create(&s, &spec("b")).unwrap_err().to_string();
        assert!(e.contains("maximum of 1 adapters"), "{e}");
    }

    #[test]
    fn rotate_keeps_comments_and_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path(), None);
        let c = create(&s, &spec("ds")).unwrap();
        let mut text = std::fs::read_to_string(&c.file).unwrap();
        text.push_str("# trailing note\nmodels: [claude-x]\n");
        std::fs::write(&c.file, &text).unwrap();
        let (_, new_key) = rotate(&s, "ds", None, None).unwrap();
        let after = std::fs::read_to_string(&c.file).unwrap();
        assert!(after.starts_with("# Adapter `ds`"));
        assert!(after.contains("# trailing note") && after.contains("models: [claude-x]"));
        assert!(
            !after.contains(&hash_hex(&hash_key(c.key.expose()))),
            "old key removed"
        );
        assert!(after.contains(&hash_hex(&hash_key(new_key.expose()))));
        // With a grace period the old key stays, with an expiry.
        let (_, newer) = rotate(&s, "ds", Some(Duration::from_secs(3600)), None).unwrap();
        let f: AdapterFile =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&c.file).unwrap()).unwrap();
        assert_eq!(f.keys.len(), 2);
        assert!(f.keys[0].expires.is_some());
        assert_eq!(f.keys[1].sha256, hash_hex(&hash_key(newer.expose())));
    }

    #[test]
    fn delete_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path(), None);
        let c = create(&s, &spec("ds")).unwrap();
        delete(&s, "ds").unwrap();
        assert!(!c.file.exists());
        assert!(matches!(delete(&s, "ds"), Err(EditError::NotFound(..))));
    }
}
