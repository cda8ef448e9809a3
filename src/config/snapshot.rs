//! The live configuration: a [`Snapshot`] of every adapter with a key index, and the
//! [`Loader`] that builds new snapshots from the adapters directory.
//!
//! The loader remembers the last good version of every file, so a file that stops parsing
//! (a half-written save, a typo) keeps serving its previous version while its error is
//! reported. Files that did not change are placed first, so a changed file can never push out
//! a live adapter by claiming its name or key, or by exceeding `max_adapters`.

use super::ConfigError;
use super::adapter::{Adapter, KeyEntry, check_owner_env_refs, parse_adapter};
use super::keys::{KeyHash, hash_key};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// One consistent view of all adapters. Requests load it once and keep it to the end.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Bumped whenever the set of adapters changes.
    pub generation: u64,
    /// Sorted by name.
    pub adapters: Vec<Arc<Adapter>>,
    keys: HashMap<KeyHash, (usize, usize)>,
}

/// The result of looking up a client key.
#[derive(Debug)]
pub enum KeyLookup<'s> {
    Found(&'s Arc<Adapter>, &'s KeyEntry),
    Expired,
    Unknown,
}

impl Snapshot {
    pub fn new(generation: u64, mut adapters: Vec<Arc<Adapter>>) -> Snapshot {
        adapters.sort_by(|a, b| a.name.cmp(&b.name));
        let mut keys = HashMap::new();
        for (a, adapter) in adapters.iter().enumerate() {
            for (k, key) in adapter.keys.iter().enumerate() {
                keys.insert(key.hash, (a, k));
            }
        }
        Snapshot {
            generation,
            adapters,
            keys,
        }
    }

    /// Finds the adapter for a client key: one SHA-256 and one map lookup.
    pub fn lookup(&self, key: &str, now: SystemTime) -> KeyLookup<'_> {
        let hash = hash_key(key);
        let Some(&(a, k)) = self.keys.get(&hash) else {
            return KeyLookup::Unknown;
        };
        let adapter = &self.adapters[a];
        let entry = &adapter.keys[k];
        match entry.expires {
            Some(expires) if expires <= now => KeyLookup::Expired,
            _ => KeyLookup::Found(adapter, entry),
        }
    }

    pub fn adapter(&self, name: &str) -> Option<&Arc<Adapter>> {
        self.adapters.iter().find(|a| a.name == name)
    }
}

#[derive(Debug, Default)]
struct FileState {
    fingerprint: Option<[u8; 32]>,
    /// The version currently live.
    live: Option<Arc<Adapter>>,
    /// The newest successful parse of the file's current content (may equal `live`).
    parsed: Option<Arc<Adapter>>,
    /// Why the current content does not parse or validate.
    parse_error: Option<ConfigError>,
    /// Why `parsed` could not go live next to the other adapters.
    fit_error: Option<ConfigError>,
}

impl FileState {
    /// A parsed version that is not live yet.
    fn candidate(&self) -> Option<&Arc<Adapter>> {
        self.parsed
            .as_ref()
            .filter(|p| !self.live.as_ref().is_some_and(|l| Arc::ptr_eq(l, p)))
    }
}

/// What a reload found.
#[derive(Debug)]
pub struct ReloadReport {
    pub snapshot: Arc<Snapshot>,
    /// The set of live adapters changed.
    pub changed: bool,
    /// Every current problem, one per file.
    pub errors: Vec<ConfigError>,
    /// Some file changed too recently to be trusted complete; reload again shortly.
    pub unsettled: bool,
}

/// Looks up environment variables (injectable for tests).
pub type EnvLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Tells whether a panel user is an admin (whose adapter files may read the environment).
pub type AdminLookup = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// Builds snapshots from an adapters directory, keeping each file's last good version.
pub struct Loader {
    dir: PathBuf,
    max_adapters: Option<usize>,
    env: EnvLookup,
    /// Files with an `owner` who is not an admin never read `${VAR}`; by default no owner is.
    is_admin: AdminLookup,
    files: BTreeMap<PathBuf, FileState>,
    generation: u64,
    current: Arc<Snapshot>,
    /// A changed file is only read once it has been left alone this long, so a file being
    /// written in several steps is not taken half-written.
    settle: std::time::Duration,
    unsettled: bool,
}

/// Adapter files: `*.yaml`/`*.yml`, not hidden (editors' temp files and Kubernetes' `..data`
/// directories start with a dot).
pub fn is_adapter_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

impl Loader {
    pub fn new(dir: impl Into<PathBuf>, max_adapters: Option<usize>) -> Loader {
        Self::with_env(dir, max_adapters, Box::new(|var| std::env::var(var).ok()))
    }

    pub fn with_env(
        dir: impl Into<PathBuf>,
        max_adapters: Option<usize>,
        env: EnvLookup,
    ) -> Loader {
        Loader {
            dir: dir.into(),
            max_adapters,
            env,
            is_admin: Box::new(|_| false),
            files: BTreeMap::new(),
            generation: 0,
            current: Arc::new(Snapshot::default()),
            settle: std::time::Duration::ZERO,
            unsettled: false,
        }
    }

    /// The loader for a server's adapters directory, with admin owners as its users file
    /// says (re-read when it changes).
    pub fn for_server(config: &super::server::ServerConfig) -> Loader {
        let users = super::users::UsersStore::open(&config.users_file);
        Loader::new(&config.adapters_dir, config.max_adapters)
            .with_admins(Box::new(move |owner| users.current().is_admin(owner)))
    }

    /// Who counts as an admin owner (see [`check_owner_env_refs`]).
    pub fn with_admins(mut self, is_admin: AdminLookup) -> Loader {
        self.is_admin = is_admin;
        self
    }

    /// Waits for changed files to be quiet for `settle` before reading them (for watching a
    /// live directory; one-off loads read everything at once).
    pub fn with_settle(mut self, settle: std::time::Duration) -> Loader {
        self.settle = settle;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.current.clone()
    }

    /// Rescans the directory and builds the next snapshot.
    pub fn reload(&mut self) -> ReloadReport {
        self.unsettled = false;
        let mut dir_error = None;
        let mut seen = Vec::new();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if is_adapter_file(&path) {
                        seen.push(path);
                    }
                }
            }
            Err(e) => {
                dir_error = Some(ConfigError::at(
                    &self.dir,
                    None,
                    format!("cannot read the adapters directory: {e}"),
                ));
            }
        }
        if dir_error.is_none() {
            self.files.retain(|path, _| seen.contains(path));
        }
        for path in seen {
            self.refresh_file(path);
        }

        let accepted = self.assemble();
        let changed = accepted.len() != self.current.adapters.len()
            || accepted.iter().any(|a| {
                !self
                    .current
                    .adapters
                    .iter()
                    .any(|live| Arc::ptr_eq(live, a))
            });
        if changed {
            self.generation += 1;
            self.current = Arc::new(Snapshot::new(self.generation, accepted));
        }
        let mut errors: Vec<ConfigError> = dir_error.into_iter().collect();
        errors.extend(
            self.files
                .values()
                .filter_map(|f| f.parse_error.clone().or_else(|| f.fit_error.clone())),
        );
        ReloadReport {
            snapshot: self.current.clone(),
            changed,
            errors,
            unsettled: self.unsettled,
        }
    }

    /// Reads and parses one file if its content changed since the last look.
    fn refresh_file(&mut self, path: PathBuf) {
        if !self.settle.is_zero()
            && let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified())
        {
            let now = SystemTime::now();
            // Recently modified (but not absurdly in the future): maybe still being written.
            let recent =
                modified + self.settle > now && modified < now + std::time::Duration::from_secs(1);
            if recent {
                self.unsettled = true;
                return;
            }
        }
        let state = self.files.entry(path.clone()).or_default();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                state.parse_error = Some(ConfigError::at(&path, None, format!("cannot read: {e}")));
                return;
            }
        };
        let fingerprint = hash_key(&text);
        if state.fingerprint == Some(fingerprint) {
            return;
        }
        state.fingerprint = Some(fingerprint);
        let parsed = check_owner_env_refs(&path, &text, &*self.is_admin)
            .and_then(|()| parse_adapter(&path, &text, &*self.env));
        match parsed {
            Ok(mut adapter) => {
                // A key that stays keeps its last use across edits of the file.
                if let Some(old) = &state.live {
                    for k in &mut adapter.keys {
                        if let Some(o) = old.keys.iter().find(|o| o.hash == k.hash) {
                            k.last_used = o.last_used.clone();
                        }
                    }
                }
                state.parsed = Some(Arc::new(adapter));
                state.parse_error = None;
            }
            Err(e) => {
                // The live version (if any) stays; the broken content is not retried until
                // the file changes again.
                state.parsed = state.live.clone();
                state.parse_error = Some(e);
            }
        }
    }

    /// Chooses the live adapters: unchanged ones first, then new versions that fit.
    fn assemble(&mut self) -> Vec<Arc<Adapter>> {
        let mut accepted: Vec<Arc<Adapter>> = Vec::new();
        let mut key_owner: HashMap<KeyHash, String> = HashMap::new();
        let fits = |a: &Adapter,
                    accepted: &[Arc<Adapter>],
                    key_owner: &HashMap<KeyHash, String>|
         -> Result<(), String> {
            if let Some(other) = accepted.iter().find(|o| o.name == a.name) {
                return Err(format!(
                    "adapter name `{}` is already used by {}",
                    a.name,
                    other.file.display()
                ));
            }
            if let Some(owner) = a.keys.iter().find_map(|k| key_owner.get(&k.hash)) {
                return Err(format!(
                    "a key hash in this file is already used by adapter `{owner}`"
                ));
            }
            Ok(())
        };
        let admit = |a: &Arc<Adapter>,
                     accepted: &mut Vec<Arc<Adapter>>,
                     key_owner: &mut HashMap<KeyHash, String>| {
            for k in &a.keys {
                key_owner.insert(k.hash, a.name.clone());
            }
            accepted.push(a.clone());
        };
        // Pass 1: live versions of files that have no new candidate.
        for state in self.files.values_mut() {
            state.fit_error = None;
            if state.candidate().is_none()
                && let Some(live) = &state.live
                && fits(live, &accepted, &key_owner).is_ok()
            {
                admit(live, &mut accepted, &mut key_owner);
            }
        }
        // Pass 2: new versions of live adapters, then brand-new adapters (so the cap counts
        // every live adapter before a new one is let in).
        let max = self.max_adapters;
        for brand_new in [false, true] {
            for (path, state) in self.files.iter_mut() {
                if state.live.is_none() != brand_new {
                    continue;
                }
                let Some(candidate) = state.candidate().cloned() else {
                    continue;
                };
                let outcome = match max {
                    Some(m) if brand_new && accepted.len() >= m => Err(format!(
                        "max_adapters ({m}) reached: this adapter is not loaded"
                    )),
                    _ => fits(&candidate, &accepted, &key_owner),
                };
                match outcome {
                    Ok(()) => {
                        admit(&candidate, &mut accepted, &mut key_owner);
                        state.live = Some(candidate);
                    }
                    Err(message) => {
                        let line = candidate
                            .keys
                            .iter()
                            .find(|k| key_owner.contains_key(&k.hash))
                            .and_then(|k| {
                                let text = std::fs::read_to_string(path).ok()?;
                                super::line_of(&text, &super::keys::hash_hex(&k.hash))
                            });
                        state.fit_error = Some(ConfigError::at(path, line, message));
                        if let Some(live) = &state.live
                            && fits(live, &accepted, &key_owner).is_ok()
                        {
                            admit(live, &mut accepted, &mut key_owner);
                        }
                    }
                }
            }
        }
        accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keys::hash_hex;

    fn adapter_yaml(model: &str, keys: &[&str]) -> String {
        let mut s = format!(
            "source:\n  base_url: http://127.0.0.1:9/v1\n  api_key: k\n  model: {model}\nkeys:\n"
        );
        for k in keys {
            s.push_str(&format!("  - sha256: {}\n", hash_hex(&hash_key(k))));
        }
        s
    }

    fn loader(dir: &Path, max: Option<usize>) -> Loader {
        Loader::with_env(dir, max, Box::new(|_| None))
    }

    fn found_model(s: &Snapshot, key: &str) -> Option<String> {
        match s.lookup(key, SystemTime::now()) {
            KeyLookup::Found(a, _) => Some(a.source.model.clone()),
            _ => None,
        }
    }

    #[test]
    fn broken_file_keeps_last_good_version() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, adapter_yaml("m1", &["fp-a"])).unwrap();
        let mut l = loader(dir.path(), None);
        let r = l.reload();
        assert!(r.changed && r.errors.is_empty());
        assert_eq!(found_model(&r.snapshot, "fp-a").as_deref(), Some("m1"));

        std::fs::write(&file, "source: [unclosed").unwrap();
        let r = l.reload();
        assert!(!r.changed);
        assert_eq!(r.errors.len(), 1);
        assert!(
            r.errors[0].to_string().contains("a.yaml:1:"),
            "{}",
            r.errors[0]
        );
        assert_eq!(found_model(&r.snapshot, "fp-a").as_deref(), Some("m1"));

        std::fs::write(&file, adapter_yaml("m2", &["fp-b"])).unwrap();
        let r = l.reload();
        assert!(r.changed && r.errors.is_empty());
        assert_eq!(
            found_model(&r.snapshot, "fp-a"),
            None,
            "removed key revoked"
        );
        assert_eq!(found_model(&r.snapshot, "fp-b").as_deref(), Some("m2"));

        std::fs::remove_file(&file).unwrap();
        let r = l.reload();
        assert!(r.changed && r.snapshot.adapters.is_empty());
    }

    #[test]
    fn duplicate_names_and_keys_keep_the_live_adapter() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            adapter_yaml("ma", &["fp-shared"]),
        )
        .unwrap();
        let mut l = loader(dir.path(), None);
        l.reload();
        // A new file claiming a live key is refused; the live adapter keeps its key.
        std::fs::write(
            dir.path().join("b.yaml"),
            adapter_yaml("mb", &["fp-shared", "fp-b"]),
        )
        .unwrap();
        let r = l.reload();
        assert_eq!(found_model(&r.snapshot, "fp-shared").as_deref(), Some("ma"));
        assert_eq!(found_model(&r.snapshot, "fp-b"), None);
        let e = r.errors[0].to_string();
        assert!(
            e.contains("b.yaml:6:") && e.contains("already used by adapter `a`"),
            "{e}"
        );
        // Once the conflict is gone, the waiting file goes live without being touched.
        std::fs::write(dir.path().join("a.yaml"), adapter_yaml("ma", &["fp-a"])).unwrap();
        let r = l.reload();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(found_model(&r.snapshot, "fp-b").as_deref(), Some("mb"));

        std::fs::write(
            dir.path().join("c.yaml"),
            format!("name: a\n{}", adapter_yaml("mc", &["fp-c"])),
        )
        .unwrap();
        let r = l.reload();
        assert!(
            r.errors[0].to_string().contains("name `a` is already used"),
            "{:?}",
            r.errors
        );
    }

    #[test]
    fn max_adapters_caps_new_adapters_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yaml"), adapter_yaml("m", &["fp-b"])).unwrap();
        std::fs::write(dir.path().join("c.yaml"), adapter_yaml("m", &["fp-c"])).unwrap();
        let mut l = loader(dir.path(), Some(2));
        assert_eq!(l.reload().snapshot.adapters.len(), 2);
        // A new file sorting first must not push out a live one.
        std::fs::write(dir.path().join("a.yaml"), adapter_yaml("m", &["fp-a"])).unwrap();
        std::fs::write(dir.path().join("c.yaml"), adapter_yaml("m2", &["fp-c"])).unwrap();
        let r = l.reload();
        assert_eq!(r.snapshot.adapters.len(), 2);
        assert_eq!(found_model(&r.snapshot, "fp-c").as_deref(), Some("m2"));
        assert_eq!(found_model(&r.snapshot, "fp-a"), None);
        assert!(r.errors[0].to_string().contains("max_adapters (2)"));
    }

    #[test]
    fn hidden_and_other_files_are_ignored() {
        assert!(is_adapter_file(Path::new("/x/deepseek.yaml")));
        assert!(is_adapter_file(Path::new("/x/a.yml")));
        assert!(!is_adapter_file(Path::new("/x/.deepseek.yaml.swp")));
        assert!(!is_adapter_file(Path::new("/x/..data")));
        assert!(!is_adapter_file(Path::new("/x/a.yaml~")));
        assert!(!is_adapter_file(Path::new("/x/.#a.yaml")));
    }

    #[test]
    fn expired_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = adapter_yaml("m", &["fp-old"]);
        text.push_str("    expires: 2020-01-01T00:00:00Z\n");
        std::fs::write(dir.path().join("a.yaml"), text).unwrap();
        let mut l = loader(dir.path(), None);
        let r = l.reload();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(matches!(
            r.snapshot.lookup("fp-old", SystemTime::now()),
            KeyLookup::Expired
        ));
    }
}
