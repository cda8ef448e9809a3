//! Property tests of what the panel and management API parse and edit: adapter files edited
//! in place (`config::edit::patch`, `rotate`) whatever a human left in them, users files, the
//! egress allow-list. Nothing may panic; an edit either fails with an error or leaves a file
//! the proxy loads with the new value.

#[path = "common/fuzz_support.rs"]
mod fuzz_support;

use flexiproxy::config::adapter::parse_adapter;
use flexiproxy::config::adapter::{ModelRuleFile, PoolKeyFile, RouteFile};
use flexiproxy::config::edit::{self, CreateSpec, EditError, PatchSpec};
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
    assert!(after.contains("model: \"m2\"") && !after.contains("requests_per_minute"));
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
        check(users_file_parses_or_refuses(&text))?;
        check(allow_list_parses_or_refuses(&entries))?;
    }

    #[test]
    fn allow_lists_of_addresses_networks_and_hosts_parse(
        entries in prop::collection::vec(prop_oneof![
            any::<std::net::IpAddr>().prop_map(|ip| ip.to_string()),
            (any::<std::net::Ipv4Addr>(), 0u8..=32).prop_map(|(ip, len)| format!("{ip}/{len}")),
            "[a-zA-Z0-9.-]{1,20}",
        ], 0..4),
    ) {
        prop_assert!(EgressPolicy::parse(&entries).is_ok(), "{entries:?}");
        check(allow_list_parses_or_refuses(&entries))?;
    }
}

/// A users file either parses into users that write back and read again unchanged, or is
/// refused with a message naming the file.
fn users_file_parses_or_refuses(text: &str) -> Result<(), String> {
    match users::parse(Path::new("users.yaml"), text) {
        Ok(file) => {
            if text.trim().is_empty() && !file.users.is_empty() {
                return Err(format!("blank text gave users: {file:?}"));
            }
            let written = serde_yaml_ng::to_string(&file).map_err(|e| e.to_string())?;
            let again = users::parse(Path::new("users.yaml"), &written)
                .map_err(|e| format!("written users do not parse: {e}\n{written}"))?;
            if again != file {
                return Err(format!(
                    "users changed through a write: {file:?} -> {again:?}"
                ));
            }
            Ok(())
        }
        Err(e) if e.contains("users.yaml") => Ok(()),
        Err(e) => Err(format!("a refusal that does not name the file: {e}")),
    }
}

/// An allow-list either parses into exactly one network or host per entry — each entry then
/// allowed, whatever internal address it names — or is refused naming an entry that is none
/// of address, network and host name.
fn allow_list_parses_or_refuses(entries: &[String]) -> Result<(), String> {
    match EgressPolicy::parse(entries) {
        Ok(policy) => {
            if policy.networks.len() + policy.hosts.len() != entries.len() {
                return Err(format!("{entries:?} gave {policy:?}"));
            }
            for entry in entries.iter().map(|e| e.trim()) {
                if let Ok(ip) = entry.parse::<std::net::IpAddr>()
                    && policy.refusal("h.example", ip).is_some()
                {
                    return Err(format!("{entry} allow-listed but refused"));
                }
                if entry.parse::<std::net::IpAddr>().is_err()
                    && entry.parse::<ipnet::IpNet>().is_err()
                    && policy.refusal(entry, "10.0.0.1".parse().unwrap()).is_some()
                {
                    return Err(format!("host {entry} allow-listed but refused"));
                }
            }
            Ok(())
        }
        Err(e) => {
            let named = entries.iter().any(|entry| {
                let entry = entry.trim();
                e.contains(&format!("`{entry}`"))
                    && entry.parse::<ipnet::IpNet>().is_err()
                    && entry.parse::<std::net::IpAddr>().is_err()
                    && (entry.is_empty() || entry.contains(['/', ' ']))
            });
            if named {
                Ok(())
            } else {
                Err(format!(
                    "{entries:?} refused without naming a bad entry: {e}"
                ))
            }
        }
    }
}

/// Text weighted toward what breaks YAML writers: line breaks of every kind (U+0085, U+2028,
/// U+2029 included), quotes, `:`, `#`, `${`, indentation and flow indicators.
fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => any::<char>().prop_map(String::from),
        2 => prop::sample::select(vec![
            "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}", "\"", "'", ": ", "#", " #", "${HOME}",
            "${", "  ", "\t", "- ", "{", "}", "[", "]", "|", ">", "&a", "*a", "!!str", "%", "@", "`",
            "\u{feff}", "\\", "\u{0}", "fallbacks:", "owner: x", "\nkeys:\n  - sha256: 00",
        ])
        .prop_map(str::to_owned),
        3 => "[a-z0-9.-]{1,6}",
    ];
    prop::collection::vec(piece, 1..12).prop_map(|p| p.concat())
}

/// [`hostile_text`] without what one-line fields refuse (controls, separators, BOM, bidi
/// controls) and without `${`: text every field must accept and read back exactly.
fn printable_text() -> impl Strategy<Value = String> {
    hostile_text().prop_map(|s| {
        let kept: String = s
            .chars()
            .filter(|c| {
                let n = *c as u32;
                !(c.is_control()
                    || matches!(n, 0x2028 | 0x2029 | 0xfeff | 0xfffe | 0xffff)
                    || (0x202a..=0x202e).contains(&n)
                    || (0x2066..=0x2069).contains(&n))
            })
            .collect();
        format!("m{}", kept.replace("${", "$ {"))
    })
}

fn read_doc(path: &Path) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn keys_of(v: &serde_yaml_ng::Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    k.sort();
    k
}

/// Through create: refused (as invalid, and nothing written) or read back exactly, with no
/// key the writer did not mean to write.
fn create_reads_back(
    model: &str,
    api_key: &str,
    url_tail: &str,
    label: &str,
    rule: (&str, &str),
) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = server(dir.path());
    let base_url = format!("https://api.example.com/{url_tail}");
    let spec = CreateSpec {
        name: "a".into(),
        base_url: Some(base_url.clone()),
        api_key: Some(api_key.to_owned()),
        model: model.to_owned(),
        label: Some(label.to_owned()),
        model_map: vec![ModelRuleFile {
            pattern: rule.0.to_owned(),
            model: rule.1.to_owned(),
        }],
        owner: Some("alice".into()),
        ..CreateSpec::default()
    };
    let file = dir.path().join("adapters/a.yaml");
    let created = match edit::create(&server, &spec) {
        Err(EditError::Invalid(_) | EditError::BadName(_)) => {
            return if file.exists() {
                Err("refused but written".into())
            } else {
                Ok(())
            };
        }
        Err(e) => return Err(format!("unexpected error: {e}")),
        Ok(created) => created,
    };
    let doc = read_doc(&file);
    let source = &doc["source"];
    let expect = |what: &str, got: &serde_yaml_ng::Value, want: &str| {
        if got.as_str() == Some(want) {
            Ok(())
        } else {
            Err(format!("{what}: wrote {want:?}, read {got:?}"))
        }
    };
    expect("model", &source["model"], model)?;
    expect("api_key", &source["api_key"], api_key)?;
    expect("base_url", &source["base_url"], &base_url)?;
    expect("label", &doc["keys"][0]["label"], label)?;
    expect("owner", &doc["owner"], "alice")?;
    expect("match", &source["model_map"][0]["match"], rule.0)?;
    expect("rule model", &source["model_map"][0]["model"], rule.1)?;
    if keys_of(&doc) != ["keys", "owner", "source"]
        || keys_of(source) != ["api_key", "base_url", "model", "model_map"]
        || keys_of(&doc["keys"][0]) != ["created", "label", "prefix", "sha256"]
    {
        return Err(format!("unexpected keys: {doc:?}"));
    }
    // The stored prefix names the key for its owner (`fp-` and four characters), never more.
    let prefix = doc["keys"][0]["prefix"].as_str().unwrap_or_default();
    if prefix.len() != 7 || !created.key.expose().starts_with(prefix) {
        return Err(format!(
            "prefix {prefix:?} is not the key's first 7 characters"
        ));
    }
    Ok(())
}

/// Patches adapter `a`: whether it was, or an error when it was refused but changed
/// `before`, or failed otherwise than as invalid.
fn patched(
    server: &ServerConfig,
    file: &Path,
    spec: &PatchSpec,
    before: &str,
) -> Result<bool, String> {
    match edit::patch(server, "a", spec, None) {
        Ok(_) => Ok(true),
        Err(EditError::Invalid(_)) => {
            let after = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
            if after == before {
                Ok(false)
            } else {
                Err("refused but changed".into())
            }
        }
        Err(e) => Err(format!("unexpected error: {e}")),
    }
}

/// Through PATCH: refused (file unchanged) or the file reads back as before with exactly
/// the patched values changed.
fn patch_reads_back(model: &str, api_key: &str, rule: (&str, &str)) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = server(dir.path());
    let file = dir.path().join("adapters/a.yaml");
    std::fs::write(&file, SEED).map_err(|e| e.to_string())?;
    let spec = PatchSpec {
        model: Some(model.to_owned()),
        api_key: Some(api_key.to_owned()),
        model_map: Some(vec![ModelRuleFile {
            pattern: rule.0.to_owned(),
            model: rule.1.to_owned(),
        }]),
        ..PatchSpec::default()
    };
    let before = read_doc(&file);
    if !patched(&server, &file, &spec, SEED)? {
        return Ok(());
    }
    let mut want = before;
    want["source"]["model"] = model.into();
    want["source"]["api_key"] = api_key.into();
    want["source"]["model_map"] =
        serde_yaml_ng::to_value(vec![serde_json::json!({"match": rule.0, "model": rule.1})])
            .unwrap();
    let got = read_doc(&file);
    if got != want {
        return Err(format!("read back {got:?}, wanted {want:?}"));
    }
    Ok(())
}

#[test]
fn the_reported_injection_reads_back_or_is_refused() {
    let injected = "a\nb\u{2029}fallbacks:\u{2029}- base_url: \"http://their.host/v1\"\u{2029}  api_key: \"${HOME}\"";
    check(patch_reads_back(injected, "sk-x", ("c*", "m"))).unwrap();
    check(create_reads_back(
        "m",
        "sk-x",
        "v1",
        "laptop",
        (injected, "m"),
    ))
    .unwrap();
    check(patch_reads_back(
        "plain: \"quoted\" #not a comment",
        "${NOT_READ}",
        ("c*", "'"),
    ))
    .unwrap();
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn created_values_read_back_exactly(
        model in hostile_text(), key in hostile_text(), tail in hostile_text(),
        label in hostile_text(), pattern in hostile_text(), target in hostile_text(),
    ) {
        check(create_reads_back(&model, &key, &tail, &label, (&pattern, &target)))?;
    }

    #[test]
    fn printable_values_are_accepted_and_read_back_exactly(
        model in printable_text(), key in printable_text(), label in printable_text(),
        pattern in printable_text(), target in printable_text(),
    ) {
        let label: String = label.chars().take(64).collect();
        // A pattern is a glob: brackets, braces and escapes are its syntax, and may be invalid.
        let pattern = pattern.replace(['{', '}', '[', ']', '\\'], "");
        check(create_reads_back(&model, &key, "v1", &label, (&pattern, &target)))?;
        check(patch_reads_back(&model, &key, (&pattern, &target)))?;
        let dir = tempfile::tempdir().unwrap();
        let server = server(dir.path());
        let spec = CreateSpec {
            name: "a".into(),
            base_url: Some("https://api.example.com/v1".into()),
            api_key: Some(key.clone()),
            model: model.clone(),
            label: Some(label.clone()),
            model_map: vec![ModelRuleFile { pattern: pattern.clone(), model: target.clone() }],
            ..CreateSpec::default()
        };
        prop_assert!(edit::create(&server, &spec).is_ok(), "refused printable values");
    }

    #[test]
    fn patched_values_read_back_exactly(
        model in hostile_text(), key in hostile_text(), pattern in hostile_text(), target in hostile_text(),
    ) {
        check(patch_reads_back(&model, &key, (&pattern, &target)))?;
    }
}

/// A pool of two keys (one labelled) and one route on a glob, from arbitrary text.
fn routed(
    name: &str,
    pattern: &str,
    model: &str,
    key: &str,
    label: &str,
) -> (Vec<PoolKeyFile>, Vec<RouteFile>) {
    let pool = vec![
        PoolKeyFile::Plain(key.to_owned()),
        PoolKeyFile::Labeled {
            key: format!("{key}2"),
            label: Some(label.to_owned()),
        },
    ];
    let route = serde_json::json!({
        "name": name,
        "when": {"model": pattern},
        "source": {"base_url": "https://r.example.com/v1", "api_keys": &pool, "model": model},
    });
    (pool, vec![serde_json::from_value(route).unwrap()])
}

/// Routes and a pool through create, then other routes and pool through PATCH: each
/// refused (nothing written, file unchanged) or read back exactly as given.
fn routes_read_back(first: [&str; 5], second: [&str; 5]) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = server(dir.path());
    let file = dir.path().join("adapters/a.yaml");
    let (pool, routes) = routed(first[0], first[1], first[2], first[3], first[4]);
    let spec = CreateSpec {
        name: "a".into(),
        base_url: Some("https://api.example.com/v1".into()),
        api_keys: pool.clone(),
        model: "m".into(),
        routes: routes.clone(),
        owner: Some("alice".into()),
        ..CreateSpec::default()
    };
    match edit::create(&server, &spec) {
        Err(EditError::Invalid(_)) if file.exists() => return Err("refused but written".into()),
        Err(EditError::Invalid(_)) => std::fs::write(&file, SEED).map_err(|e| e.to_string())?,
        Err(e) => return Err(format!("unexpected error: {e}")),
        Ok(_) => {
            let doc = read_doc(&file);
            if doc["routes"] != as_yaml(&routes) || doc["source"]["api_keys"] != as_yaml(&pool) {
                return Err(format!("create read back {doc:?}"));
            }
            if doc["source"].get("api_key").is_some() {
                return Err("a pool and a key".into());
            }
        }
    }
    let before_text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    let before = read_doc(&file);
    let (pool, routes) = routed(second[0], second[1], second[2], second[3], second[4]);
    let spec = PatchSpec {
        api_keys: Some(pool.clone()),
        routes: Some(routes.clone()),
        ..PatchSpec::default()
    };
    if !patched(&server, &file, &spec, &before_text)? {
        return Ok(());
    }
    let mut want = before;
    let source = want["source"].as_mapping_mut().ok_or("no source")?;
    source.remove("api_key");
    source.insert("api_keys".into(), as_yaml(&pool));
    want.as_mapping_mut()
        .ok_or("not a mapping")?
        .insert("routes".into(), as_yaml(&routes));
    let got = read_doc(&file);
    if got != want {
        return Err(format!("patch read back {got:?}, wanted {want:?}"));
    }
    Ok(())
}

/// A value as the YAML a parser reads back for it.
fn as_yaml<T: serde::Serialize>(value: &T) -> serde_yaml_ng::Value {
    serde_yaml_ng::to_value(serde_json::to_value(value).unwrap()).unwrap()
}

#[test]
fn hostile_route_values_read_back_or_are_refused() {
    let injected = "a\nb\u{2029}fallbacks:\u{2029}- base_url: \"http://their.host/v1\"\u{2029}  api_key: \"${HOME}\"";
    check(routes_read_back(
        ["cheap", "claude-*haiku*", "flash", "sk-1", "team"],
        [injected, "x*", "m", "sk-2", "b"],
    ))
    .unwrap();
    check(routes_read_back(
        ["a: \"b\" #c", "c*", "'", "${NOT_READ}", "- x"],
        ["n", "claude-*", injected, "k", "l"],
    ))
    .unwrap();
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn route_names_models_and_keys_read_back_exactly_or_are_refused(
        first in prop::array::uniform5(hostile_text()),
        second in prop::array::uniform5(hostile_text()),
    ) {
        let [a, b, c, d, e] = &first;
        let [f, g, h, i, j] = &second;
        check(routes_read_back([a, b, c, d, e], [f, g, h, i, j]))?;
    }

    #[test]
    fn printable_route_values_are_accepted(
        values in prop::array::uniform5(printable_text()),
    ) {
        let [name, pattern, model, key, label] = &values;
        let name: String = name.chars().take(64).collect();
        let label: String = label.chars().take(64).collect();
        let pattern = pattern.replace(['{', '}', '[', ']', '\\'], "");
        let dir = tempfile::tempdir().unwrap();
        let server = server(dir.path());
        let (pool, routes) = routed(&name, &pattern, model, key, &label);
        let spec = CreateSpec {
            name: "a".into(),
            base_url: Some("https://api.example.com/v1".into()),
            api_keys: pool,
            model: "m".into(),
            routes,
            ..CreateSpec::default()
        };
        let created = edit::create(&server, &spec);
        prop_assert!(created.is_ok(), "refused printable values: {:?}", created.err());
        check(routes_read_back([&name, &pattern, model, key, &label], ["r", "x*", model, key, &label]))?;
    }
}
