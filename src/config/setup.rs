//! The copy-paste client setup shown with a new key — by `adapter create`, the management
//! API and the panel alike: one base URL for every client, in each client's own terms.

use serde_json::{Value, json};

/// The variable Codex reads the key from (its `env_key`).
pub const CODEX_KEY_ENV: &str = "FLEXIPROXY_API_KEY";

/// Codex CLI's provider block. `gpt-5.5` is a model Codex knows (context window, the
/// `apply_patch` tool); the adapter maps it like any client model name.
pub fn codex_config(base: &str) -> String {
    format!(
        "model = \"gpt-5.5\"\nmodel_provider = \"flexiproxy\"\n\n[model_providers.flexiproxy]\n\
         name = \"FlexiProxy\"\nbase_url = \"{base}/v1\"\nenv_key = \"{CODEX_KEY_ENV}\"\n\
         wire_api = \"responses\"\n"
    )
}

/// Claude Code's `.claude/settings.json`.
pub fn claude_settings(base: &str, key: &str) -> Value {
    json!({"env": {"ANTHROPIC_BASE_URL": base, "ANTHROPIC_AUTH_TOKEN": key}})
}

/// Without `selectedType`, a custom base URL makes Gemini CLI pick an auth type `-p` rejects.
pub fn gemini_settings() -> Value {
    json!({"security": {"auth": {"selectedType": "gemini-api-key"}}})
}

/// Every client's setup for `key` on the base URL `base`.
pub fn client_setup(base: &str, key: &str) -> Value {
    json!({
        "claude_code": {
            "env": {"ANTHROPIC_BASE_URL": base, "ANTHROPIC_AUTH_TOKEN": key},
            "shell": format!("export ANTHROPIC_BASE_URL={base}\nexport ANTHROPIC_AUTH_TOKEN={key}"),
            "settings_json": claude_settings(base, key),
        },
        "cline": {"anthropic": {"base_url": base}, "openai_compatible": {"base_url": base}},
        "codex": {"config_toml": codex_config(base), "env": {CODEX_KEY_ENV: key}},
        "gemini_cli": {
            "env": {"GEMINI_API_KEY": key, "GOOGLE_GEMINI_BASE_URL": base},
            "shell": format!("export GOOGLE_GEMINI_BASE_URL={base}\nexport GEMINI_API_KEY={key}"),
            "settings_json": gemini_settings(),
        },
        "openai_sdk": format!("from openai import OpenAI\nclient = OpenAI(base_url=\"{base}/v1\", api_key=\"{key}\")"),
        "anthropic_sdk": format!("from anthropic import Anthropic\nclient = Anthropic(base_url=\"{base}\", api_key=\"{key}\")"),
        "google_genai": format!("from google import genai\nclient = genai.Client(api_key=\"{key}\", http_options={{\"base_url\": \"{base}\"}})"),
    })
}
