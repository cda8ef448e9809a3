//! Property tests of what the panel and management API parse and edit: adapter files edited
//! in place (`config::edit::patch`, `rotate`) whatever a human left in them, users files, the
//! egress allow-list. Nothing may panic; an edit either fails with an error or leaves a file
//! the proxy loads with the new value.

#[path = "common/fuzz_support.rs"]
mod fuzz_support;

use flexiproxy::config::adapter::parse_adapter;
use flexiproxy::config::edit::{self, PatchSpec};
use flexiproxy::config::egress::EgressPolicy;
use flexiproxy::config::server::ServerConfig;
use flexiproxy::config::users;
use fuzz_support::{check, config, mutate};
use proptest::prelude::*;
use std::path::Path;

const SEED: &str = "# Adapter `a`, by hand\nowner: \"alice\"\n\nsource:\n  # the provider\n  base_url: https://api.deepseek.com/v1\n  api_key: sk-x\n  model: deepseek-chat\n  model_map:\n    - { match: \"claude-*haiku*\", model: deepseek-chat }\n  options:\n    stream_usage: true\n\nkeys:\n  - sha256: 508c150016734230a0167aa3a44cae5bdea67a764534abc473e06cbc6a7ea7a4\n    label: demo\nlimits:\n  requests_per_minute: 5\n# trailing\n";

fn server(dir: &Path) -> ServerConfig {
    let path = dir.join("flexiproxy.yaml");
    std::fs::create_dir_all(dir.join("adapters")).unwrap();
    ServerConfig::parse(&path, "listen: 127.0.0.1:8787\n").unwrap()
}

fn patch_keeps_files_loadable(text: &[u8], model: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = server(dir.path());
    let file = dir.path().join("adapters/a.yaml");
    std::fs::write(&file, text).map_err(|e| e.to_string())?;
    let spec = PatchSpec {
        model: Some(model.to_owned()),
        limits: Some(None),
        ..PatchSpec::default()
    };
    if edit::patch(&server, "a", &spec, None).is_ok() {
        let after = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
        let adapter = parse_adapter(&file, &after, &|_| None)
            .map_err(|e| format!("patched file does not load: {e}\n{after}"))?;
        if adapter.source.model != model {
            return Err(format!("model not set: {after}"));
        }
    }
    if edit::rotate(&server, "a", None, None).is_ok() {
        let after = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
        parse_adapter(&file, &after, &|_| None)
            .map_err(|e| format!("rotated file does not load: {e}\n{after}"))?;
    }
    Ok(())
}

#[test]
fn the_seed_itself_patches() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    std::fs::write(dir.path().join("adapters/a.yaml"), SEED).unwrap();
    let spec = PatchSpec {
        model: Some("m2".into()),
        limits: Some(None),
        ..PatchSpec::default()
    };
    edit::patch(&server, "a", &spec, None).unwrap();
    let after = std::fs::read_to_string(dir.path().join("adapters/a.yaml")).unwrap();
    assert!(after.contains("model: m2") && !after.contains("requests_per_minute"));
    assert!(
        after.contains("# the provider") && after.contains("# trailing"),
        "{after}"
    );
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn patching_mutated_adapter_files_never_breaks_them(
        ops in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6),
        model in "[a-zA-Z0-9:/ #'\"{}_-]{1,20}",
    ) {
        check(patch_keeps_files_loadable(&mutate(SEED.as_bytes(), &ops), &model))?;
    }

    #[test]
    fn patching_arbitrary_text_never_panics(text in ".{0,300}", model in "[a-z]{1,8}") {
        check(patch_keeps_files_loadable(text.as_bytes(), &model))?;
    }

    #[test]
    fn users_files_and_allow_lists_parse_or_refuse(text in ".{0,300}", entries in prop::collection::vec(".{0,30}", 0..4)) {
        let _ = users::parse(Path::new("users.yaml"), &text);
        let _ = EgressPolicy::parse(&entries);
    }
}
