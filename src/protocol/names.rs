//! Names and ids that must change on the way between protocols: tool names a source refuses
//! (shortened, restored in answers) and tool-call ids a client refuses (sanitised).

use sha2::{Digest, Sha256};

/// Tool names as the provider sees them. OpenAI-style APIs accept `^[A-Za-z0-9_-]{1,64}$`;
/// longer or odd names are shortened deterministically and restored in responses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ToolNames {
    /// (provider name, client name) for every name that had to change.
    renamed: Vec<(String, String)>,
}

const MAX_TOOL_NAME: usize = 64;

fn is_valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOOL_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether a tool name must be shortened for OpenAI-style APIs.
pub fn needs_renaming(name: &str) -> bool {
    !is_valid_tool_name(name)
}

impl ToolNames {
    /// The provider-side name for a client tool name, remembering any change.
    pub fn to_provider(&mut self, name: &str) -> String {
        if is_valid_tool_name(name) {
            return name.to_owned();
        }
        if let Some((short, _)) = self.renamed.iter().find(|(_, full)| full == name) {
            return short.clone();
        }
        let short = shorten_tool_name(name);
        self.renamed.push((short.clone(), name.to_owned()));
        short
    }

    /// The client's name for a name the provider used.
    pub fn to_client<'n>(&'n self, name: &'n str) -> &'n str {
        self.renamed
            .iter()
            .find(|(short, _)| short == name)
            .map_or(name, |(_, full)| full.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.renamed.is_empty()
    }
}

/// `prefix_` + 8 hex digits of the SHA-256 of the full name: stable across requests, so a
/// conversation's history keeps matching its tools.
pub fn shorten_tool_name(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let hash = hex::encode(&digest[..4]);
    let prefix: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TOOL_NAME - 9)
        .collect();
    format!("{prefix}_{hash}")
}

/// Anthropic tool-use ids must match `^[A-Za-z0-9_-]+$`; providers send ids like
/// `functions.Bash:0` or none at all.
pub fn sanitize_tool_id(id: Option<&str>, message_id: &str, position: usize) -> String {
    match id {
        Some(id) if !id.is_empty() => {
            if id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                id.to_owned()
            } else {
                id.chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect()
            }
        }
        _ => {
            let base = message_id.strip_prefix("msg_").unwrap_or(message_id);
            format!("toolu_{base}_{position}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tool_names_round_trip() {
        let long = format!("mcp__server__{}", "x".repeat(80));
        let mut names = ToolNames::default();
        let short = names.to_provider(&long);
        assert!(short.len() <= 64, "{short}");
        assert!(is_valid_tool_name(&short));
        assert_eq!(names.to_provider(&long), short, "stable");
        assert_eq!(names.to_client(&short), long);
        assert_eq!(names.to_provider("Bash"), "Bash");
        assert_eq!(names.to_client("Bash"), "Bash");
    }

    #[test]
    fn odd_characters_are_renamed_and_restored() {
        let mut names = ToolNames::default();
        let short = names.to_provider("mcp.server/tool");
        assert!(is_valid_tool_name(&short));
        assert_eq!(names.to_client(&short), "mcp.server/tool");
    }

    #[test]
    fn tool_ids_are_sanitized() {
        assert_eq!(
            sanitize_tool_id(Some("functions.Bash:0"), "msg_x", 0),
            "functions_Bash_0"
        );
        assert_eq!(sanitize_tool_id(Some("call_abc"), "msg_x", 0), "call_abc");
        assert_eq!(sanitize_tool_id(None, "msg_x", 2), "toolu_x_2");
        assert_eq!(sanitize_tool_id(Some(""), "msg_x", 1), "toolu_x_1");
    }
}
