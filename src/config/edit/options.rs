//! Writing adapter options (`source.options`, or a route's) in place — what the provider
//! check's `--apply` and the panel's Apply do. Each option is set on its own line inside a
//! block-style `options:` (other lines and comments kept); a flow-style `options: { … }` is
//! rewritten as a block with its old values kept. A route's options go through the whole
//! `routes:` list, as the management API's PATCH writes it.

use super::{
    EditError, ServerConfig, find, find_block, modify, parse_adapter, set_block, splice, tree,
    yaml_block, yaml_write,
};
use crate::config::adapter::AdapterFile;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// Whose options change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionsAt {
    Source,
    Route(usize),
}

/// The adapter file before and after setting the options.
#[derive(Debug, Clone)]
pub struct OptionsEdit {
    pub path: PathBuf,
    pub before: String,
    pub after: String,
}

impl OptionsEdit {
    /// The lines that differ, `-` before and `+` after (the run between the unchanged start
    /// and end of the file); empty when nothing changes.
    pub fn diff(&self) -> String {
        let before: Vec<&str> = self.before.lines().collect();
        let after: Vec<&str> = self.after.lines().collect();
        let same_start = before
            .iter()
            .zip(&after)
            .take_while(|(a, b)| a == b)
            .count();
        let same_end = before[same_start..]
            .iter()
            .rev()
            .zip(after[same_start..].iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        let mut out = String::new();
        if before.len() == after.len() && same_start == before.len() {
            return out;
        }
        out.push_str(&format!("@@ line {} @@\n", same_start + 1));
        for l in &before[same_start..before.len() - same_end] {
            out.push_str(&format!("-{l}\n"));
        }
        for l in &after[same_start..after.len() - same_end] {
            out.push_str(&format!("+{l}\n"));
        }
        out
    }
}

/// How the audit log describes setting `options` (`options=images,stream_usage`, after
/// `route=N ` for a route's): their names, as the panel and the CLI record an apply.
pub fn audit_detail(at: OptionsAt, options: &Map<String, Value>) -> String {
    let names: Vec<&str> = options.keys().map(String::as_str).collect();
    let route = match at {
        OptionsAt::Source => String::new(),
        OptionsAt::Route(i) => format!("route={i} "),
    };
    format!("{route}options={}", names.join(","))
}

/// What setting `options` would make of the file, nothing written.
pub fn preview_options(
    server: &ServerConfig,
    name: &str,
    at: OptionsAt,
    options: &Map<String, Value>,
) -> Result<OptionsEdit, EditError> {
    let path = find(server, name)?;
    let before = std::fs::read_to_string(&path)
        .map_err(|e| EditError::Io(format!("cannot read {}: {e}", path.display())))?;
    let mut intended = yaml_write::parse(&before)
        .map_err(|e| EditError::Invalid(format!("adapter `{name}` does not parse: {e}")))?;
    let after = with_options(&before, at, options, &mut intended)?;
    yaml_write::verify(&after, &intended).map_err(EditError::Invalid)?;
    parse_adapter(&path, &after, &|_| None).map_err(|e| EditError::Invalid(e.message))?;
    Ok(OptionsEdit {
        path,
        before,
        after,
    })
}

/// Sets `options` in the file, under the directory's edit lock; refused as stale when the
/// file is no longer at `expect_version`.
pub fn set_options(
    server: &ServerConfig,
    name: &str,
    at: OptionsAt,
    options: &Map<String, Value>,
    expect_version: Option<&str>,
) -> Result<OptionsEdit, EditError> {
    let mut before = String::new();
    let mut after = String::new();
    let path = modify(server, name, expect_version, |text, intended| {
        before = text.to_owned();
        after = with_options(text, at, options, intended)?;
        Ok(after.clone())
    })?;
    Ok(OptionsEdit {
        path,
        before,
        after,
    })
}

/// `text` with `options` set, and `intended` (the parsed document) changed to match.
fn with_options(
    text: &str,
    at: OptionsAt,
    options: &Map<String, Value>,
    intended: &mut serde_yaml_ng::Value,
) -> Result<String, EditError> {
    match at {
        OptionsAt::Source => source_options(text, options, intended),
        OptionsAt::Route(index) => route_options(text, index, options, intended),
    }
}

fn source_options(
    text: &str,
    options: &Map<String, Value>,
    intended: &mut serde_yaml_ng::Value,
) -> Result<String, EditError> {
    for (k, v) in options {
        yaml_write::set_path(intended, &["source", "options", k], Some(v));
    }
    let lines: Vec<&str> = text.lines().collect();
    let (start, end) = find_block(&lines, 0, lines.len(), 0, "source")
        .ok_or_else(|| EditError::Invalid("the file has no `source:` block".to_owned()))?;
    let block = find_block(&lines, start + 1, end, 2, "options");
    match block {
        Some((o_start, _)) if lines[o_start].trim_end() == "  options:" => {
            // Block style: each option replaced or added on its own lines.
            let mut text = text.to_owned();
            for (k, v) in options {
                let lines: Vec<&str> = text.lines().collect();
                let (s, e) = find_block(&lines, 0, lines.len(), 0, "source").unwrap_or_default();
                let (os, oe) = find_block(&lines, s + 1, e, 2, "options").unwrap_or_default();
                let (ks, ke) = find_block(&lines, os + 1, oe, 4, k).unwrap_or((oe, oe));
                text = splice(&lines, ks, ke, &yaml_block(k, v, 4));
            }
            Ok(text)
        }
        _ => {
            // None yet, or flow style: the whole block, the old values kept.
            let merged = intended["source"]["options"].clone();
            let merged: Value = serde_yaml_ng::from_value(merged)
                .map_err(|e| EditError::Invalid(format!("source.options: {e}")))?;
            set_block(text, Some("source"), "options", Some(&merged))
        }
    }
}

fn route_options(
    text: &str,
    index: usize,
    options: &Map<String, Value>,
    intended: &mut serde_yaml_ng::Value,
) -> Result<String, EditError> {
    let file: AdapterFile =
        serde_yaml_ng::from_str(text).map_err(|e| EditError::Invalid(e.to_string()))?;
    let mut routes = file.routes;
    let route = routes
        .get_mut(index)
        .ok_or_else(|| EditError::Invalid(format!("routes[{index}]: no such route")))?;
    let mut current = tree("options", &route.source.options)?;
    if !current.is_object() {
        current = Value::Object(Map::new());
    }
    for (k, v) in options {
        current[k] = v.clone();
    }
    route.source.options = Some(
        serde_json::from_value(current)
            .map_err(|e| EditError::Invalid(format!("routes[{index}].source.options: {e}")))?,
    );
    let routes = tree("routes", &routes)?;
    yaml_write::set_path(intended, &["routes"], Some(&routes));
    set_block(text, None, "routes", Some(&routes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(text: &str) -> serde_yaml_ng::Value {
        yaml_write::parse(text).unwrap()
    }

    fn set(text: &str, at: OptionsAt, options: Value) -> String {
        let mut intended = doc(text);
        let options = options.as_object().unwrap().clone();
        let after = with_options(text, at, &options, &mut intended).unwrap();
        yaml_write::verify(&after, &intended).unwrap();
        after
    }

    const FILE: &str = "# my provider\nsource:\n  base_url: https://x.example/v1\n  model: m # the model\n  options:\n    # keep this\n    stream_usage: true\n    top_k: true\nkeys: []\n";

    #[test]
    fn options_are_set_in_place_comments_kept() {
        let after = set(
            FILE,
            OptionsAt::Source,
            json!({"stream_usage": false, "echo_reasoning": true}),
        );
        assert_eq!(
            after,
            "# my provider\nsource:\n  base_url: https://x.example/v1\n  model: m # the model\n  options:\n    # keep this\n    stream_usage: false\n    top_k: true\n    echo_reasoning: true\nkeys: []\n"
        );
    }

    #[test]
    fn the_diff_is_the_changed_run_of_lines() {
        let edit = OptionsEdit {
            path: PathBuf::new(),
            before: FILE.to_owned(),
            after: set(FILE, OptionsAt::Source, json!({"stream_usage": false})),
        };
        assert_eq!(
            edit.diff(),
            "@@ line 7 @@\n-    stream_usage: true\n+    stream_usage: false\n"
        );
        let same = OptionsEdit {
            after: FILE.to_owned(),
            ..edit
        };
        assert_eq!(same.diff(), "");
    }

    #[test]
    fn an_options_block_is_added_or_a_flow_one_rewritten() {
        let bare = "source:\n  model: m # mine\nkeys: []\n";
        let after = set(bare, OptionsAt::Source, json!({"images": false}));
        assert_eq!(
            after,
            "source:\n  model: m # mine\n  options:\n    images: false\nkeys: []\n"
        );
        let flow = "source:\n  model: m\n  options: { top_k: true }\nkeys: []\n";
        let after = set(flow, OptionsAt::Source, json!({"json_schema": false}));
        assert_eq!(
            doc(&after)["source"]["options"],
            doc("top_k: true\njson_schema: false\n")
        );
    }

    #[test]
    fn a_routes_options_are_set() {
        let text = "# top\nsource:\n  base_url: https://a.example/v1\n  model: m\nroutes:\n  - name: r\n    when: { model: \"x*\" }\n    source: { base_url: \"https://b.example/v1\", model: n }\nkeys: []\n";
        let after = set(text, OptionsAt::Route(0), json!({"stream_usage": false}));
        assert!(after.starts_with("# top\n"), "{after}");
        assert_eq!(
            doc(&after)["routes"][0]["source"]["options"],
            doc("stream_usage: false\n")
        );
        let mut intended = doc(text);
        let none = with_options(text, OptionsAt::Route(3), &Map::new(), &mut intended);
        assert!(none.unwrap_err().to_string().contains("routes[3]"));
    }
}
