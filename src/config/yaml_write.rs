//! The one way FlexiProxy writes values into YAML files (adapter files, the users file).
//! Text is never spliced into YAML as is: every string becomes a double-quoted scalar with
//! everything a YAML parser could read as structure escaped — C0 and C1 controls, DEL,
//! U+0085/U+2028/U+2029 (line breaks to YAML 1.1 parsers such as libyaml), the byte-order
//! mark and non-characters — so what a parser reads back is exactly the value given. Nested
//! values are written in block style with the same scalars; no block scalars (`|`, `>`) ever.
//! [`verify`] re-reads a document about to be written and refuses it unless it parses to
//! exactly the intended one.

use serde_json::Value;
use std::fmt::Write;

/// `s` as a double-quoted YAML scalar that every YAML 1.1 and 1.2 parser reads back as `s`.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if needs_escape(c) => {
                let n = c as u32;
                let _ = if n <= 0xff {
                    write!(out, "\\x{n:02X}")
                } else if n <= 0xffff {
                    write!(out, "\\u{n:04X}")
                } else {
                    write!(out, "\\U{n:08X}")
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Characters outside YAML's printable set, and those that are printable but break lines
/// or reorder text for some reader.
fn needs_escape(c: char) -> bool {
    let n = c as u32;
    n < 0x20
        || (0x7f..=0x9f).contains(&n)
        || matches!(n, 0x2028 | 0x2029 | 0xfeff | 0xfffe | 0xffff)
        || (0xd800..=0xdfff).contains(&n)
        // Bidirectional overrides and isolates: invisible, and they make a file read
        // differently from what it holds.
        || (0x202a..=0x202e).contains(&n)
        || (0x2066..=0x2069).contains(&n)
}

/// A mapping key: plain when it is a simple identifier, else quoted.
fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && k.as_bytes()[0].is_ascii_alphabetic();
    if plain { k.to_owned() } else { quoted(k) }
}

/// A scalar or an inline (flow) collection.
fn flow(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&quoted(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                out.push_str(if i > 0 { ", " } else { " " });
                out.push_str(&key(k));
                out.push_str(": ");
                flow(item, out);
            }
            out.push_str(if map.is_empty() { "}" } else { " }" });
        }
    }
}

/// The lines of `name: value` at `indent` spaces: mappings nested in block style, list
/// items one per line (an item that is itself a collection written inline).
pub fn block(name: &str, value: &Value, indent: usize) -> String {
    let mut out = String::new();
    write_block(name, value, indent, &mut out);
    out
}

fn write_block(name: &str, value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            let _ = writeln!(out, "{pad}{}:", key(name));
            for (k, v) in map {
                write_block(k, v, indent + 2, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let _ = writeln!(out, "{pad}{}:", key(name));
            for item in items {
                out.push_str(&pad);
                out.push_str("  - ");
                flow(item, out);
                out.push('\n');
            }
        }
        scalar => {
            let _ = write!(out, "{pad}{}: ", key(name));
            flow(scalar, out);
            out.push('\n');
        }
    }
}

/// A serializable value as the JSON tree the writer takes.
pub fn to_tree<T: serde::Serialize>(value: &T) -> Result<Value, String> {
    serde_json::to_value(value).map_err(|e| e.to_string())
}

/// The YAML document `text` parses to, for comparing.
pub fn parse(text: &str) -> Result<serde_yaml_ng::Value, String> {
    serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
}

/// A JSON tree as the YAML value a parser would produce for it.
pub fn as_yaml(value: &Value) -> serde_yaml_ng::Value {
    serde_yaml_ng::to_value(value).unwrap_or(serde_yaml_ng::Value::Null)
}

/// Sets (`Some`) or removes (`None`) `path` in a document, creating mappings on the way.
pub fn set_path(doc: &mut serde_yaml_ng::Value, path: &[&str], value: Option<&Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = doc;
    for p in parents {
        if !node.is_mapping() {
            *node = serde_yaml_ng::Value::Mapping(Default::default());
        }
        let Some(map) = node.as_mapping_mut() else {
            return;
        };
        node = map
            .entry(serde_yaml_ng::Value::String((*p).to_owned()))
            .or_insert(serde_yaml_ng::Value::Null);
    }
    if !node.is_mapping() {
        *node = serde_yaml_ng::Value::Mapping(Default::default());
    }
    if let Some(map) = node.as_mapping_mut() {
        let k = serde_yaml_ng::Value::String((*last).to_owned());
        match value {
            Some(v) => {
                map.insert(k, as_yaml(v));
            }
            None => {
                map.remove(&k);
            }
        }
    }
}

/// Refuses `written` unless it parses to exactly `intended` (same keys, same values).
pub fn verify(written: &str, intended: &serde_yaml_ng::Value) -> Result<(), String> {
    let actual = parse(written).map_err(|e| format!("the edited file would not parse: {e}"))?;
    if &actual == intended {
        Ok(())
    } else {
        Err(
            "the edited file would not read back as the intended values; nothing was written"
                .to_owned(),
        )
    }
}

/// Why a one-line text field (a name, model, label, URL or key) is refused: control
/// characters, line or paragraph separators, byte-order marks and bidirectional controls
/// have no use there; `max` is its longest length in characters.
pub fn check_line(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.chars().any(needs_escape) {
        return Err(format!(
            "{field}: must not contain control characters, line breaks or invisible formatting characters"
        ));
    }
    if value.chars().count() > max {
        return Err(format!("{field}: at most {max} characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn separators_and_controls_are_escaped() {
        let hostile =
            "a\nb\u{2029}fallbacks:\u{2029}- base_url: \"http://x/v1\"\u{2028}\u{85}\u{feff}\t\"\\";
        let q = quoted(hostile);
        for c in ['\n', '\u{2028}', '\u{2029}', '\u{85}', '\u{feff}', '\t'] {
            assert!(!q.contains(c), "{c:?} written raw in {q}");
        }
        let doc = format!("model: {q}\nother: 1\n");
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&doc).unwrap();
        assert_eq!(v["model"].as_str(), Some(hostile));
        assert_eq!(v.as_mapping().unwrap().len(), 2);
    }

    #[test]
    fn blocks_read_back_exactly() {
        let value = json!([{"match": "claude-*\u{2028}x", "model": "m: #1"}, {"match": "${HOME}", "model": "'"}]);
        let text = format!("source:\n{}", block("model_map", &value, 2));
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed["source"]["model_map"], as_yaml(&value));
        let limits = json!({"requests_per_minute": 5, "per_key": false});
        let text = block("limits", &limits, 0);
        assert_eq!(parse(&text).unwrap()["limits"], as_yaml(&limits));
        assert_eq!(block("m", &json!({}), 0), "m: {}\n");
        assert_eq!(
            parse(&block("m", &json!([]), 0)).unwrap()["m"],
            as_yaml(&json!([]))
        );
    }

    #[test]
    fn verify_refuses_a_changed_document() {
        let mut intended = parse("a: 1\nb: x\n").unwrap();
        assert!(verify("a: 1\nb: x\n", &intended).is_ok());
        assert!(verify("a: 1\nb: x\nc: 2\n", &intended).is_err());
        set_path(&mut intended, &["b"], Some(&json!("y")));
        assert!(verify("b: y\na: 1\n", &intended).is_ok());
        set_path(&mut intended, &["s", "t"], Some(&json!(2)));
        assert!(verify("b: y\na: 1\ns:\n  t: 2\n", &intended).is_ok());
    }

    #[test]
    fn line_fields_refuse_what_has_no_use_there() {
        assert!(check_line("model", "deepseek-v4-flash", 256).is_ok());
        for bad in [
            "a\nb",
            "a\u{2028}",
            "\u{85}",
            "x\u{202e}",
            "\u{feff}",
            "\u{7f}",
        ] {
            let e = check_line("source.model", bad, 256).unwrap_err();
            assert!(e.starts_with("source.model:"), "{e}");
        }
        assert!(check_line("name", &"a".repeat(65), 64).is_err());
    }
}
