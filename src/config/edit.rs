//! The changes the CLI makes to adapter files — create, rotate a key, delete — done the way a
//! running proxy can watch safely: written to a temporary file and renamed into place
//! (never half-written), mode 0600 (files may hold provider keys), and edited in place so
//! comments and fields the command did not touch survive. The CLI, the management API and
//! every instance sharing the directory take one lock file (`.flexiproxy.lock`) around each
//! read-modify-write, so caps hold under concurrency; a caller that read a `version` (the
//! file's hash) gets [`EditError::Stale`] if the file changed since, so no edit — hand edit
//! included — is silently overwritten.

use super::adapter::{
    AdapterFile, AdapterLimitsFile, KeyFile, ModelRuleFile, OptionsFile, PoolKeyFile, RouteFile,
    SourceFile, SourceProtocol, parse_adapter,
};
use super::keys::{KEY_PREFIX, Secret, generate_key, hash_hex, hash_key};
use super::presets;
use super::server::ServerConfig;
use super::snapshot::is_adapter_file;
use super::yaml_write;
use crate::routing::Balance;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub mod options;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{0}")]
    Invalid(String),
    #[error("no adapter named `{0}` in {1}")]
    NotFound(String, String),
    /// The adapter has no issued key with that id.
    #[error("{0}")]
    NoKey(String),
    #[error("{0}")]
    Io(String),
    /// The name is taken.
    #[error("{0}")]
    Exists(String),
    /// Over a cap (the server's `max_adapters` or the user's).
    #[error("{0}")]
    Cap(String),
    /// The file changed since the caller read it.
    #[error("{0}")]
    Stale(String),
    /// The adapter name is malformed or too long.
    #[error("{0}")]
    BadName(String),
}

/// Held while one edit of a directory runs; dropping it releases the lock.
pub struct DirLock(#[allow(dead_code)] std::fs::File);

/// Takes the directory's edit lock (`flock`), waiting for another editor to finish.
pub fn lock_dir(dir: &Path) -> Result<DirLock, EditError> {
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
    let path = dir.join(".flexiproxy.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io("cannot open", &path, e))?;
    file.lock().map_err(|e| io("cannot lock", &path, e))?;
    Ok(DirLock(file))
}

/// A file's version: the first 16 hex digits of the SHA-256 of its text.
pub fn version_of(text: &str) -> String {
    hex::encode(&hash_key(text)[..8])
}

fn check_version(name: &str, text: &str, expected: Option<&str>) -> Result<(), EditError> {
    match expected {
        Some(v) if v != version_of(text) => Err(EditError::Stale(format!(
            "adapter `{name}` changed since it was read (version {v}, now {}); reload and try again",
            version_of(text)
        ))),
        _ => Ok(()),
    }
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
    /// Exactly one of these: the environment variable holding the provider key, the key, or
    /// a pool of keys (`api_keys:`).
    pub api_key_env: Option<String>,
    pub api_key: Option<String>,
    pub api_keys: Vec<PoolKeyFile>,
    pub model: String,
    pub label: Option<String>,
    /// The source's protocol when no preset says it (`anthropic` for Messages API sources).
    pub protocol: Option<SourceProtocol>,
    pub model_map: Vec<ModelRuleFile>,
    pub options: Option<OptionsFile>,
    /// How the pool spreads requests (`balance:`); the default (sticky) is not written.
    pub balance: Option<Balance>,
    /// Complete sources tried in order when the source fails (`fallbacks:`).
    pub fallbacks: Vec<SourceFile>,
    /// Checked before the source, in order (`routes:`).
    pub routes: Vec<RouteFile>,
    /// The panel user the adapter belongs to, and how many adapters that user may own.
    pub owner: Option<String>,
    pub owner_cap: Option<usize>,
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

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// An adapter file as it is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The adapter name it declares (or its file name).
    pub name: String,
    pub path: PathBuf,
    pub owner: Option<String>,
    /// [`version_of`] its text.
    pub version: String,
}

/// The adapter files in the directory, sorted by name.
pub fn entries(dir: &Path) -> Result<Vec<Entry>, EditError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("cannot read", dir, e)),
    };
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
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let parsed = serde_yaml_ng::from_str::<AdapterFile>(&text).ok();
        let (name, owner) = parsed.map_or((None, None), |f| (f.name, f.owner));
        out.push(Entry {
            name: name.unwrap_or(stem),
            path,
            owner,
            version: version_of(&text),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One adapter's entry by name.
pub fn entry(server: &ServerConfig, name: &str) -> Result<Entry, EditError> {
    entries(&server.adapters_dir)?
        .into_iter()
        .find(|e| e.name == name)
        .ok_or_else(|| {
            EditError::NotFound(name.to_owned(), server.adapters_dir.display().to_string())
        })
}

fn find(server: &ServerConfig, name: &str) -> Result<PathBuf, EditError> {
    entry(server, name).map(|e| e.path)
}

/// Longest adapter name: it becomes a file name (with a temporary-file prefix and suffix).
pub const MAX_NAME: usize = 64;

fn yaml_str(s: &str) -> String {
    yaml_write::quoted(s)
}

/// The YAML lines of `key: value` indented by `indent` spaces, with every string quoted.
fn yaml_block(key: &str, value: &serde_json::Value, indent: usize) -> String {
    yaml_write::block(key, value, indent)
}

fn tree<T: serde::Serialize>(key: &str, value: &T) -> Result<serde_json::Value, EditError> {
    yaml_write::to_tree(value).map_err(|e| EditError::Invalid(format!("{key}: {e}")))
}

/// Refuses a one-line field holding control characters or separators, or too long.
fn check_line(field: &str, value: &str, max: usize) -> Result<(), EditError> {
    yaml_write::check_line(field, value, max).map_err(EditError::Invalid)
}

/// The checks every text an editor writes into a source passes (CLI, API and panel alike);
/// `at` names the source (`source`, `routes[1].source`).
fn check_source_fields(
    at: &str,
    model: Option<&str>,
    api_key: Option<&str>,
    base_url: Option<&str>,
    model_map: Option<&[ModelRuleFile]>,
) -> Result<(), EditError> {
    if let Some(m) = model {
        check_line(&format!("{at}.model"), m, 256)?;
    }
    if let Some(k) = api_key {
        check_line(&format!("{at}.api_key"), k, 4096)?;
    }
    if let Some(u) = base_url {
        check_line(&format!("{at}.base_url"), u, 2048)?;
    }
    for (i, rule) in model_map.unwrap_or_default().iter().enumerate() {
        check_line(&format!("{at}.model_map[{i}].match"), &rule.pattern, 256)?;
        check_line(&format!("{at}.model_map[{i}].model"), &rule.model, 256)?;
    }
    Ok(())
}

/// A pool's keys and labels pass the same checks as a single key and a client key's label.
fn check_pool(at: &str, keys: &[PoolKeyFile]) -> Result<(), EditError> {
    for (i, k) in keys.iter().enumerate() {
        let (key, label) = match k {
            PoolKeyFile::Plain(key) => (key, None),
            PoolKeyFile::Labeled { key, label } => (key, label.as_ref()),
        };
        check_line(&format!("{at}.api_keys[{i}]"), key, 4096)?;
        if let Some(l) = label {
            check_line(&format!("{at}.api_keys[{i}].label"), l, 64)?;
        }
    }
    Ok(())
}

/// Every text of a complete source block (and its fallbacks).
fn check_source_file(at: &str, s: &SourceFile) -> Result<(), EditError> {
    check_source_fields(
        at,
        Some(&s.model),
        Some(&s.api_key),
        s.base_url.as_deref(),
        Some(&s.model_map),
    )?;
    if let Some(p) = &s.preset {
        check_line(&format!("{at}.preset"), p, 64)?;
    }
    check_pool(at, &s.api_keys)?;
    for (i, fb) in s.fallbacks.iter().enumerate() {
        check_source_file(&format!("{at}.fallbacks[{i}]"), fb)?;
    }
    Ok(())
}

/// Every text of the default source's `fallbacks:`.
fn check_fallbacks(fallbacks: &[SourceFile]) -> Result<(), EditError> {
    for (i, fb) in fallbacks.iter().enumerate() {
        check_source_file(&format!("source.fallbacks[{i}]"), fb)?;
    }
    Ok(())
}

/// Every text of `routes:`: names, model patterns and sources.
fn check_routes(routes: &[RouteFile]) -> Result<(), EditError> {
    for (i, r) in routes.iter().enumerate() {
        if let Some(n) = &r.name {
            check_line(&format!("routes[{i}].name"), n, 64)?;
        }
        if let Some(m) = r.when.as_ref().and_then(|w| w.model.as_deref()) {
            check_line(&format!("routes[{i}].when.model"), m, 256)?;
        }
        check_source_file(&format!("routes[{i}].source"), &r.source)?;
    }
    Ok(())
}

fn check_caps(
    server: &ServerConfig,
    spec: &CreateSpec,
    existing: &[Entry],
) -> Result<(), EditError> {
    if existing.iter().any(|e| e.name == spec.name) {
        return Err(EditError::Exists(format!(
            "an adapter named `{}` already exists",
            spec.name
        )));
    }
    if let Some(max) = server.max_adapters
        && existing.len() >= max
    {
        return Err(EditError::Cap(format!(
            "cannot create `{}`: the maximum of {max} adapters (max_adapters in {}) is reached; delete one first",
            spec.name,
            server.path.display()
        )));
    }
    if let (Some(owner), Some(cap)) = (&spec.owner, spec.owner_cap) {
        let owned = existing
            .iter()
            .filter(|e| e.owner.as_ref() == Some(owner))
            .count();
        if owned >= cap {
            return Err(EditError::Cap(format!(
                "cannot create `{}`: user `{owner}` already has {owned} of at most {cap} adapters; delete one first",
                spec.name
            )));
        }
    }
    Ok(())
}

pub fn create(server: &ServerConfig, spec: &CreateSpec) -> Result<Created, EditError> {
    if !valid_name(&spec.name) {
        return Err(EditError::BadName(format!(
            "name: adapter names are 1 to {MAX_NAME} letters, digits, `-`, `_` and `.`, not starting with `.`"
        )));
    }
    check_source_fields(
        "source",
        Some(&spec.model),
        spec.api_key.as_deref(),
        spec.base_url.as_deref(),
        Some(&spec.model_map),
    )?;
    check_pool("source", &spec.api_keys)?;
    check_fallbacks(&spec.fallbacks)?;
    check_routes(&spec.routes)?;
    if let Some(label) = &spec.label {
        check_line("label", label, 64)?;
    }
    if let Some(owner) = &spec.owner {
        check_line("owner", owner, 256)?;
    }
    if let Some(var) = &spec.api_key_env
        && (var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(EditError::Invalid(
            "--api-key-env: an environment variable name (letters, digits, `_`)".to_owned(),
        ));
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
        .filter(|u| !u.trim().is_empty())
        .or_else(|| preset.as_ref().map(|p| p.base_url.to_owned()))
        .ok_or_else(|| EditError::Invalid("give --base-url or --provider".to_owned()))?;
    let api_key = match (&spec.api_key_env, &spec.api_key, spec.api_keys.is_empty()) {
        (Some(var), None, true) => Some(format!("${{{var}}}")),
        (None, Some(key), true) => Some(key.clone()),
        (None, None, false) => None,
        _ => {
            return Err(EditError::Invalid(
                "give exactly one of --api-key-env, --api-key or a pool (api_keys)".to_owned(),
            ));
        }
    };
    let key =
        generate_key().map_err(|e| EditError::Io(format!("no random numbers from the OS: {e}")))?;
    let label = spec.label.clone().unwrap_or_else(|| "default".to_owned());
    let (text, intended) = create_text(
        spec,
        preset.map(|p| p.name),
        &base_url,
        api_key.as_deref(),
        &key,
        &label,
    )?;
    yaml_write::verify(&text, &intended).map_err(EditError::Invalid)?;
    check_env_refs(server, &file, &text)?;
    // Validate what we are about to write, as the proxy will.
    let adapter =
        parse_adapter(&file, &text, &|_| None).map_err(|e| EditError::Invalid(e.message))?;
    let _lock = lock_dir(&server.adapters_dir)?;
    check_caps(server, spec, &entries(&server.adapters_dir)?)?;
    write_atomic(&file, &text)?;
    Ok(Created {
        file,
        key,
        protocol: adapter.source.protocol,
        base_url,
    })
}

/// Refuses to write a file the proxy would refuse to load: `${VAR}` in a file owned by a
/// user who is not an admin.
fn check_env_refs(server: &ServerConfig, path: &Path, text: &str) -> Result<(), EditError> {
    let users = super::users::read_or_empty(&server.users_file);
    super::adapter::check_owner_env_refs(path, text, &|owner| users.is_admin(owner))
        .map_err(|e| EditError::Invalid(e.message))
}

/// A new adapter file's text, and the document it must parse to.
fn create_text(
    spec: &CreateSpec,
    preset: Option<&str>,
    base_url: &str,
    api_key: Option<&str>,
    key: &Secret,
    label: &str,
) -> Result<(String, serde_yaml_ng::Value), EditError> {
    use serde_json::json;
    let mut intended = serde_yaml_ng::Value::Mapping(Default::default());
    let mut text = format!(
        "# Adapter `{name}`, created by FlexiProxy (CLI or panel). Edit freely: the proxy reloads\n\
         # this file when it changes. The client key itself is never stored, only its SHA-256.\n\n",
        name = spec.name
    );
    if let Some(owner) = &spec.owner {
        text.push_str(&format!("owner: {}\n\n", yaml_str(owner)));
        yaml_write::set_path(&mut intended, &["owner"], Some(&json!(owner)));
    }
    text.push_str("source:\n");
    if let Some(p) = preset {
        text.push_str(&format!("  preset: {}\n", yaml_str(p)));
        yaml_write::set_path(&mut intended, &["source", "preset"], Some(&json!(p)));
    }
    if let Some(protocol) = spec.protocol {
        text.push_str(&format!("  protocol: {}\n", protocol.name()));
        let name = json!(protocol.name());
        yaml_write::set_path(&mut intended, &["source", "protocol"], Some(&name));
    }
    text.push_str(&format!("  base_url: {}\n", yaml_str(base_url)));
    let key_field = match api_key {
        Some(k) => {
            text.push_str(&format!("  api_key: {}\n", yaml_str(k)));
            ("api_key", json!(k))
        }
        None => {
            let pool = tree("api_keys", &spec.api_keys)?;
            text.push_str(&yaml_block("api_keys", &pool, 2));
            ("api_keys", pool)
        }
    };
    text.push_str(&format!("  model: {}\n", yaml_str(&spec.model)));
    for (field, value) in [
        ("base_url", json!(base_url)),
        key_field,
        ("model", json!(spec.model)),
    ] {
        yaml_write::set_path(&mut intended, &["source", field], Some(&value));
    }
    if spec.model_map.is_empty() {
        text.push_str(
            "  # model_map:                      # first matching glob on the client's model wins\n\
             \x20 #   - { match: \"claude-*haiku*\", model: a-cheaper-model }\n",
        );
    } else {
        let map = tree("model_map", &spec.model_map)?;
        text.push_str(&yaml_block("model_map", &map, 2));
        yaml_write::set_path(&mut intended, &["source", "model_map"], Some(&map));
    }
    if let Some(options) = &spec.options {
        let options = tree("options", options)?;
        text.push_str(&yaml_block("options", &options, 2));
        yaml_write::set_path(&mut intended, &["source", "options"], Some(&options));
    }
    if let Some(balance) = spec.balance {
        let balance = tree("balance", &balance)?;
        text.push_str(&yaml_block("balance", &balance, 2));
        yaml_write::set_path(&mut intended, &["source", "balance"], Some(&balance));
    }
    if !spec.fallbacks.is_empty() {
        let fallbacks = tree("fallbacks", &spec.fallbacks)?;
        text.push_str(&yaml_block("fallbacks", &fallbacks, 2));
        yaml_write::set_path(&mut intended, &["source", "fallbacks"], Some(&fallbacks));
    }
    if !spec.routes.is_empty() {
        let routes = tree("routes", &spec.routes)?;
        text.push('\n');
        text.push_str(&yaml_block("routes", &routes, 0));
        yaml_write::set_path(&mut intended, &["routes"], Some(&routes));
    }
    let keys = json!([{
        "sha256": hash_hex(&hash_key(key.expose())),
        "prefix": key_prefix(key),
        "label": label,
        "created": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    }]);
    text.push('\n');
    text.push_str(&yaml_block("keys", &keys, 0));
    yaml_write::set_path(&mut intended, &["keys"], Some(&keys));
    Ok((text, intended))
}

/// Reads an adapter file under the directory lock, checks the caller's version, and writes
/// what `change` makes of its text (validated first). `change` also applies the intended
/// edit to the parsed document it is given; the new text must parse to exactly that.
fn modify(
    server: &ServerConfig,
    name: &str,
    expect_version: Option<&str>,
    change: impl FnOnce(&str, &mut serde_yaml_ng::Value) -> Result<String, EditError>,
) -> Result<PathBuf, EditError> {
    let _lock = lock_dir(&server.adapters_dir)?;
    let path = find(server, name)?;
    let text = std::fs::read_to_string(&path).map_err(|e| io("cannot read", &path, e))?;
    check_version(name, &text, expect_version)?;
    let mut intended = yaml_write::parse(&text)
        .map_err(|e| EditError::Invalid(format!("adapter `{name}` does not parse: {e}")))?;
    let updated = change(&text, &mut intended)?;
    yaml_write::verify(&updated, &intended).map_err(EditError::Invalid)?;
    check_env_refs(server, &path, &updated)?;
    parse_adapter(&path, &updated, &|_| None).map_err(|e| EditError::Invalid(e.message))?;
    // A hand edit can land between our read and our rename; look again just before it.
    let again = std::fs::read_to_string(&path).map_err(|e| io("cannot read", &path, e))?;
    check_version(name, &again, Some(&version_of(&text)))?;
    write_atomic(&path, &updated)?;
    Ok(path)
}

/// Issues a new key. Old keys (those with `label`, or all when `None`) stop working at once,
/// or after `grace` (recorded as `expires`). Keys already expired are dropped.
pub fn rotate(
    server: &ServerConfig,
    name: &str,
    grace: Option<Duration>,
    label: Option<&str>,
) -> Result<(PathBuf, Secret), EditError> {
    rotate_checked(server, name, grace, label, None, None)
}

/// [`rotate`], refused with [`EditError::Stale`] unless the file still has `expect_version`.
/// `new_label` names the new key (else it takes the rotated key's label).
pub fn rotate_checked(
    server: &ServerConfig,
    name: &str,
    grace: Option<Duration>,
    label: Option<&str>,
    new_label: Option<&str>,
    expect_version: Option<&str>,
) -> Result<(PathBuf, Secret), EditError> {
    let key =
        generate_key().map_err(|e| EditError::Io(format!("no random numbers from the OS: {e}")))?;
    for l in [label, new_label].into_iter().flatten() {
        check_line("label", l, 64)?;
    }
    let path = modify(server, name, expect_version, |text, intended| {
        let file: AdapterFile = serde_yaml_ng::from_str(text)
            .map_err(|e| EditError::Invalid(format!("adapter `{name}`: {e}")))?;
        let keys = rotated_keys(file.keys, &key, grace, label, new_label);
        yaml_write::set_path(intended, &["keys"], Some(&tree("keys", &keys)?));
        replace_keys_section(text, &keys)
    })?;
    Ok((path, key))
}

fn rotated_keys(
    old: Vec<KeyFile>,
    key: &Secret,
    grace: Option<Duration>,
    label: Option<&str>,
    new_label: Option<&str>,
) -> Vec<KeyFile> {
    let now = SystemTime::now();
    let mut keys: Vec<KeyFile> = Vec::new();
    let mut new_label = new_label.or(label).map(str::to_owned);
    for mut k in old {
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
        prefix: Some(key_prefix(key)),
        label: new_label,
        created: Some(now),
        expires: None,
        limits: None,
    });
    keys
}

/// The first characters of an issued key kept in the file to tell keys apart: `fp-` and four
/// of its 43 random characters (24 of its 256 bits).
fn key_prefix(key: &Secret) -> String {
    key.expose().chars().take(KEY_PREFIX.len() + 4).collect()
}

/// How listings and edits name an issued key: the first 12 hex digits of its SHA-256.
pub fn key_id(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

/// Changes the keys section: `change` gets the keys and the index of the one `id` names.
fn change_key(
    server: &ServerConfig,
    name: &str,
    id: &str,
    expect_version: Option<&str>,
    change: impl FnOnce(&mut Vec<KeyFile>, usize) -> Result<(), EditError>,
) -> Result<PathBuf, EditError> {
    modify(server, name, expect_version, |text, intended| {
        let mut keys = serde_yaml_ng::from_str::<AdapterFile>(text)
            .map_err(|e| EditError::Invalid(format!("adapter `{name}`: {e}")))?
            .keys;
        let at = keys
            .iter()
            .position(|k| key_id(&k.sha256).eq_ignore_ascii_case(id) && id.len() == 12)
            .ok_or_else(|| EditError::NoKey(format!("adapter `{name}` has no key `{id}`")))?;
        change(&mut keys, at)?;
        yaml_write::set_path(intended, &["keys"], Some(&tree("keys", &keys)?));
        replace_keys_section(text, &keys)
    })
}

/// Revokes one issued key at once; the adapter's last working key stays (rotate instead).
pub fn revoke_key(
    server: &ServerConfig,
    name: &str,
    id: &str,
    expect_version: Option<&str>,
) -> Result<PathBuf, EditError> {
    change_key(server, name, id, expect_version, |keys, at| {
        let now = SystemTime::now();
        let working = |k: &KeyFile| k.expires.is_none_or(|e| e > now);
        if working(&keys[at]) && keys.iter().filter(|k| working(k)).count() == 1 {
            return Err(EditError::Invalid(
                "the adapter's only working key; rotate it instead, or delete the adapter"
                    .to_owned(),
            ));
        }
        keys.remove(at);
        Ok(())
    })
}

/// Sets (or with `None` removes) one issued key's label.
pub fn relabel_key(
    server: &ServerConfig,
    name: &str,
    id: &str,
    label: Option<&str>,
    expect_version: Option<&str>,
) -> Result<PathBuf, EditError> {
    if let Some(l) = label {
        check_line("label", l, 64)?;
    }
    change_key(server, name, id, expect_version, |keys, at| {
        keys[at].label = label.map(str::to_owned);
        Ok(())
    })
}

/// What `PATCH /admin/api/adapters/{name}` may change; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct PatchSpec {
    pub model: Option<String>,
    pub model_map: Option<Vec<ModelRuleFile>>,
    /// `Some(None)` removes the adapter's limits.
    pub limits: Option<Option<AdapterLimitsFile>>,
    /// The provider key (or `${VAR}`); replaces a pool.
    pub api_key: Option<String>,
    /// A pool of provider keys; replaces `api_key` (or the pool there was).
    pub api_keys: Option<Vec<PoolKeyFile>>,
    pub base_url: Option<String>,
    /// The whole `routes:` list; empty removes it.
    pub routes: Option<Vec<RouteFile>>,
    /// The default source's `balance:`; `Some(None)` removes it (sticky again).
    pub balance: Option<Option<Balance>>,
    /// The default source's whole `fallbacks:` list; empty removes it.
    pub fallbacks: Option<Vec<SourceFile>>,
}

/// Changes the given fields in place, keeping every other line (and comment) as it was.
pub fn patch(
    server: &ServerConfig,
    name: &str,
    spec: &PatchSpec,
    expect_version: Option<&str>,
) -> Result<PathBuf, EditError> {
    check_source_fields(
        "source",
        spec.model.as_deref(),
        spec.api_key.as_deref(),
        spec.base_url.as_deref(),
        spec.model_map.as_deref(),
    )?;
    check_pool("source", spec.api_keys.as_deref().unwrap_or_default())?;
    check_routes(spec.routes.as_deref().unwrap_or_default())?;
    check_fallbacks(spec.fallbacks.as_deref().unwrap_or_default())?;
    if spec.api_key.is_some() && spec.api_keys.is_some() {
        return Err(EditError::Invalid(
            "give api_key (one key) or api_keys (a pool), not both".to_owned(),
        ));
    }
    modify(server, name, expect_version, |text, intended| {
        let mut text = text.to_owned();
        let mut set = |parent: Option<&str>, key: &str, value: Option<serde_json::Value>| {
            let path: Vec<&str> = parent.into_iter().chain([key]).collect();
            yaml_write::set_path(intended, &path, value.as_ref());
            text = set_block(&text, parent, key, value.as_ref())?;
            Ok::<(), EditError>(())
        };
        if let Some(m) = &spec.model {
            set(Some("source"), "model", Some(tree("model", m)?))?;
        }
        if let Some(k) = &spec.api_key {
            set(Some("source"), "api_key", Some(tree("api_key", k)?))?;
            set(Some("source"), "api_keys", None)?;
        }
        if let Some(keys) = &spec.api_keys {
            set(Some("source"), "api_keys", Some(tree("api_keys", keys)?))?;
            set(Some("source"), "api_key", None)?;
        }
        if let Some(u) = &spec.base_url {
            set(Some("source"), "base_url", Some(tree("base_url", u)?))?;
        }
        if let Some(map) = &spec.model_map {
            let map = if map.is_empty() {
                None
            } else {
                Some(tree("model_map", map)?)
            };
            set(Some("source"), "model_map", map)?;
        }
        if let Some(limits) = &spec.limits {
            let limits = limits.as_ref().map(|l| tree("limits", l)).transpose()?;
            set(None, "limits", limits)?;
        }
        if let Some(routes) = &spec.routes {
            let routes = if routes.is_empty() {
                None
            } else {
                Some(tree("routes", routes)?)
            };
            set(None, "routes", routes)?;
        }
        if let Some(balance) = &spec.balance {
            let balance = balance.as_ref().map(|b| tree("balance", b)).transpose()?;
            set(Some("source"), "balance", balance)?;
        }
        if let Some(fallbacks) = &spec.fallbacks {
            let fallbacks = if fallbacks.is_empty() {
                None
            } else {
                Some(tree("fallbacks", fallbacks)?)
            };
            set(Some("source"), "fallbacks", fallbacks)?;
        }
        Ok(text)
    })
}

pub fn delete(server: &ServerConfig, name: &str) -> Result<PathBuf, EditError> {
    delete_checked(server, name, None)
}

/// [`delete`], refused with [`EditError::Stale`] unless the file still has `expect_version`.
pub fn delete_checked(
    server: &ServerConfig,
    name: &str,
    expect_version: Option<&str>,
) -> Result<PathBuf, EditError> {
    let _lock = lock_dir(&server.adapters_dir)?;
    let path = find(server, name)?;
    let text = std::fs::read_to_string(&path).map_err(|e| io("cannot read", &path, e))?;
    check_version(name, &text, expect_version)?;
    std::fs::remove_file(&path).map_err(|e| io("cannot delete", &path, e))?;
    Ok(path)
}

/// The line range of the block `key:` at `indent` spaces within `lines[from..to]`: its
/// first line and every following line indented deeper (or a list item at its indent).
fn find_block(
    lines: &[&str],
    from: usize,
    to: usize,
    indent: usize,
    key: &str,
) -> Option<(usize, usize)> {
    let prefix = format!("{}{key}:", " ".repeat(indent));
    let start = (from..to).find(|&i| lines[i].starts_with(&prefix))?;
    let mut end = start + 1;
    while end < to {
        let line = lines[end];
        let trimmed = line.trim_start();
        let depth = line.len() - trimmed.len();
        let inside =
            trimmed.is_empty() || depth > indent || (depth == indent && trimmed.starts_with('-'));
        if !inside {
            break;
        }
        end += 1;
    }
    while end > start + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    Some((start, end))
}

/// Sets (or with `None` removes) `key` at the top level or in the top-level block `parent`,
/// editing only its lines.
fn set_block(
    text: &str,
    parent: Option<&str>,
    key: &str,
    value: Option<&serde_json::Value>,
) -> Result<String, EditError> {
    let lines: Vec<&str> = text.lines().collect();
    let (from, to, indent) = match parent {
        None => (0, lines.len(), 0),
        Some(p) => {
            let (start, end) = find_block(&lines, 0, lines.len(), 0, p).ok_or_else(|| {
                EditError::Invalid(format!("the file has no top-level `{p}:` block to edit"))
            })?;
            if lines[start].trim_end() != format!("{p}:") {
                return Err(EditError::Invalid(format!(
                    "`{p}:` is written in flow style; edit this file by hand"
                )));
            }
            (start + 1, end, 2)
        }
    };
    let block = match value {
        Some(v) => yaml_block(key, v, indent),
        None => String::new(),
    };
    let (start, end) = find_block(&lines, from, to, indent, key).unwrap_or((to, to));
    Ok(splice(&lines, start, end, &block))
}

/// The lines with `lines[start..end]` replaced by `block`.
fn splice(lines: &[&str], start: usize, end: usize, block: &str) -> String {
    let mut out =
        String::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + block.len());
    for l in &lines[..start] {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(block);
    for l in &lines[end..] {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Replaces the top-level `keys:` block of an adapter file (or appends one), leaving every
/// other line as it was.
pub fn replace_keys_section(text: &str, keys: &[KeyFile]) -> Result<String, EditError> {
    let block = yaml_block("keys", &tree("keys", &keys)?, 0);
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
    Ok(splice(&lines, start, end, &block))
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
            model: "deepseek-v4-flash".into(),
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

    fn route(name: &str, pattern: &str, model: &str) -> RouteFile {
        serde_yaml_ng::from_str(&format!(
            "{{ name: {name:?}, when: {{ model: {pattern:?} }}, source: {{ base_url: \"https://r.example/v1\", api_keys: [k1, {{ key: k2, label: team }}], model: {model:?} }} }}"
        ))
        .unwrap()
    }

    #[test]
    fn pools_and_routes_are_written_and_replaced_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path(), None);
        let mut sp = spec("r");
        sp.api_key_env = None;
        sp.api_keys = vec![
            PoolKeyFile::Plain("sk-1".into()),
            PoolKeyFile::Labeled {
                key: "sk-2".into(),
                label: Some("b".into()),
            },
        ];
        sp.routes = vec![route("cheap", "claude-*haiku*", "flash")];
        let c = create(&s, &sp).unwrap();
        let adapter = parse_adapter(&c.file, &std::fs::read_to_string(&c.file).unwrap(), &|_| {
            None
        })
        .unwrap();
        assert_eq!(adapter.source.keys.len(), 2);
        assert_eq!(adapter.source.keys[1].label.as_deref(), Some("b"));
        assert_eq!(adapter.routes[0].name, "cheap");
        assert_eq!(adapter.routes[0].source.keys.len(), 2);

        // Replace the routes and go back to one key; the comment stays.
        let spec = PatchSpec {
            api_key: Some("sk-3".into()),
            routes: Some(vec![route("a", "x*", "m1"), route("b", "y*", "m2")]),
            ..PatchSpec::default()
        };
        patch(&s, "r", &spec, None).unwrap();
        let text = std::fs::read_to_string(&c.file).unwrap();
        assert!(
            text.starts_with("# Adapter `r`") && !text.contains("sk-1"),
            "{text}"
        );
        let adapter = parse_adapter(&c.file, &text, &|_| None).unwrap();
        let names: Vec<&str> = adapter.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(adapter.source.keys.len(), 1);

        // An empty list removes them; a pool replaces the key.
        let spec = PatchSpec {
            api_keys: Some(vec![PoolKeyFile::Plain("sk-4".into())]),
            routes: Some(Vec::new()),
            ..PatchSpec::default()
        };
        patch(&s, "r", &spec, None).unwrap();
        let text = std::fs::read_to_string(&c.file).unwrap();
        let f: AdapterFile = serde_yaml_ng::from_str(&text).unwrap();
        assert!(f.routes.is_empty() && f.source.api_key.is_empty(), "{text}");
        assert_eq!(f.source.api_keys.len(), 1);

        // A route's text is checked like the source's, naming the field.
        let mut hostile = route("a", "x*", "m");
        hostile.name = Some("a\u{2028}b".into());
        let spec = PatchSpec {
            routes: Some(vec![hostile]),
            ..PatchSpec::default()
        };
        let e = patch(&s, "r", &spec, None).unwrap_err().to_string();
        assert!(e.starts_with("routes[0].name"), "{e}");
        assert_eq!(std::fs::read_to_string(&c.file).unwrap(), text);
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
