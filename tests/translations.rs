//! Every refusal the panel can show has its words in both languages: each `coded("…")` in the
//! source, each code an adapter-file edit error maps to, and each failure code the usage page
//! explains. A new code without `err_<code>` (or `usage_err_<code>`) in the tables, or with
//! a Chinese text that is not Chinese, fails here — before a user meets "?".

use flexiproxy::admin::i18n::Lang;
use flexiproxy::admin::manage::ApiError;
use flexiproxy::config::edit::EditError;
use flexiproxy::telemetry::usage::error_code;
use std::path::Path;

fn is_chinese(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// Both languages say `key`, the Chinese in Chinese and neither with developer text.
fn assert_translated(key: &str, origin: &str) {
    let (en, zh) = (Lang::En.t(key), Lang::Zh.t(key));
    assert!(en != "?" && zh != "?", "{key} (from {origin}) has no words");
    assert!(
        is_chinese(zh),
        "{key}: the Chinese text is not Chinese: {zh}"
    );
    for text in [en, zh] {
        assert!(!text.contains('`'), "{key}: backticks in {text}");
    }
}

/// The `coded("…")` calls of every source file under `dir`.
fn codes_in(dir: &Path, found: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            codes_in(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split("coded(\"").skip(1) {
                let code = piece.split('"').next().unwrap();
                found.push((code.to_owned(), path.display().to_string()));
            }
        }
    }
}

#[test]
fn every_coded_refusal_is_translated() {
    let mut found = Vec::new();
    codes_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(found.len() > 20, "the scan found the codes: {found:?}");
    for (code, file) in &found {
        assert_translated(&format!("err_{code}"), file);
    }
}

#[test]
fn every_edit_error_is_translated() {
    let errors = [
        EditError::Invalid("model: control characters are not allowed".into()),
        EditError::Invalid("label: at most 64 characters".into()),
        EditError::Invalid("the only working key cannot be revoked".into()),
        EditError::BadName("x".into()),
        EditError::Exists("x".into()),
        EditError::NotFound("x".into(), "dir".into()),
        EditError::NoKey("x".into()),
        EditError::Cap("x".into()),
        EditError::Stale("x".into()),
    ];
    for e in errors {
        let what = format!("{e:?}");
        let api = ApiError::from(e);
        assert!(!api.code.is_empty(), "{what} has no code");
        assert_translated(&format!("err_{}", api.code), &what);
    }
    // A refusal without a code says the generic words.
    assert_translated("err_generic", "ApiError::new");
}

#[test]
fn every_usage_failure_is_explained() {
    let kinds = [
        Some("connect"),
        Some("timeout"),
        Some("tls"),
        Some("reset"),
        Some("protocol"),
        Some("stream_error"),
        Some("shutdown"),
        Some("status_5xx"),
        Some("status_4xx"),
        None,
    ];
    for kind in kinds {
        for (status, upstream) in [(502, Some(502)), (429, None), (500, Some(200)), (200, None)] {
            let code = error_code(status, kind, upstream);
            if !code.is_empty() {
                assert_translated(&format!("usage_err_{code}"), &format!("{kind:?} {status}"));
            }
        }
    }
}
