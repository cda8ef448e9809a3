//! The shipped deployment examples are valid configurations: `deploy/conf/` (Docker
//! Compose) and the ConfigMaps of `deploy/kubernetes.yaml`, laid out as a pod sees them.

use serde::Deserialize;
use std::path::Path;

fn check(config: &Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flexiproxy"))
        .args(["check", "--config"])
        .arg(config)
        .env("DEEPSEEK_API_KEY", "sk-test")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}{}",
        config.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compose_config_is_valid() {
    check(&Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/conf/flexiproxy.yaml"));
}

#[test]
fn kubernetes_config_maps_are_valid_where_the_pod_mounts_them() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes.yaml"),
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut found = 0;
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde_yaml_ng::Value::deserialize(doc).unwrap();
        if value["kind"] != "ConfigMap" {
            continue;
        }
        let name = value["metadata"]["name"].as_str().unwrap();
        let dir = match name {
            "flexiproxy-config" => root.path().join("config"),
            "flexiproxy-adapters" => root.path().join("adapters"),
            other => panic!("unexpected ConfigMap {other}"),
        };
        std::fs::create_dir_all(&dir).unwrap();
        for (file, content) in value["data"].as_mapping().unwrap() {
            // The pod's absolute paths, moved under the temp dir.
            let content = content
                .as_str()
                .unwrap()
                .replace("/etc/flexiproxy/", &format!("{}/", root.path().display()))
                // A placeholder an operator replaces; any 64 hex digits stand in for it.
                .replace("REPLACE-WITH-THE-SHA256-OF-AN-ISSUED-KEY", &"ab".repeat(32));
            std::fs::write(dir.join(file.as_str().unwrap()), content).unwrap();
        }
        found += 1;
    }
    assert_eq!(found, 2);
    check(&root.path().join("config/flexiproxy.yaml"));
}
