//! Provider presets: the base URL, wire protocol and dialect of the providers people use most,
//! so an adapter only needs a key and a model. An adapter names a preset with
//! `source.preset`, or gets one from its base URL's host; its own `source.options` win.

use super::adapter::SourceProtocol;
use crate::protocol::openai_chat::dialect::{Dialect, MaxTokensField, ReasoningStyle};

#[derive(Debug, Clone)]
pub struct Preset {
    pub name: &'static str,
    pub protocol: SourceProtocol,
    pub base_url: &'static str,
    /// Recognises the provider from a base URL host.
    pub host_suffix: &'static str,
    pub dialect: Dialect,
    pub example_model: &'static str,
    /// Models (globs, any case) that cannot read images or documents: requests that carry
    /// them get a placeholder instead (`options.images` overrides). From the providers'
    /// model pages and the errors they answer (docs/routing.md).
    pub text_only: &'static [&'static str],
}

impl Preset {
    /// Whether `model` is one of the preset's text-only models.
    pub fn text_only(&self, model: &str) -> bool {
        self.text_only.iter().any(|pattern| {
            globset::GlobBuilder::new(pattern)
                .case_insensitive(true)
                .build()
                .is_ok_and(|g| g.compile_matcher().is_match(model))
        })
    }
}

fn dialect(reasoning: ReasoningStyle) -> Dialect {
    Dialect {
        reasoning,
        ..Dialect::default()
    }
}

pub fn all() -> Vec<Preset> {
    vec![
        Preset {
            name: "deepseek",
            protocol: SourceProtocol::OpenAi,
            base_url: "https://api.deepseek.com/v1",
            host_suffix: "api.deepseek.com",
            dialect: Dialect {
                // DeepSeek's `response_format` takes `json_object` only.
                json_schema: false,
                ..dialect(ReasoningStyle::DeepSeek)
            },
            text_only: &["deepseek-chat", "deepseek-reasoner", "deepseek-v4-pro*"],
            example_model: "deepseek-chat",
        },
        Preset {
            name: "deepseek-anthropic",
            protocol: SourceProtocol::Anthropic,
            base_url: "https://api.deepseek.com/anthropic",
            host_suffix: "",
            dialect: Dialect::default(),
            text_only: &["deepseek-chat", "deepseek-reasoner", "deepseek-v4-pro*"],
            example_model: "deepseek-chat",
        },
        Preset {
            name: "deepinfra",
            protocol: SourceProtocol::OpenAi,
            base_url: "https://api.deepinfra.com/v1/openai",
            host_suffix: "deepinfra.com",
            dialect: dialect(ReasoningStyle::Effort),
            text_only: &[
                "deepseek-ai/*",
                "zai-org/GLM-4.5",
                "zai-org/GLM-4.6",
                "zai-org/GLM-4.7*",
                "moonshotai/Kimi-K2-Instruct*",
            ],
            example_model: "zai-org/GLM-4.5",
        },
        Preset {
            name: "dashscope",
            protocol: SourceProtocol::OpenAi,
            base_url: "https://dashscope.aliyuncs.com/compatible-mode/v1",
            host_suffix: "aliyuncs.com",
            dialect: Dialect {
                top_k: true,
                ..dialect(ReasoningStyle::Qwen)
            },
            text_only: &["qwen3-coder*", "qwen3.7-max*", "qwen-turbo*"],
            example_model: "qwen3-coder-plus",
        },
        Preset {
            name: "xai",
            protocol: SourceProtocol::OpenAi,
            base_url: "https://api.x.ai/v1",
            host_suffix: "api.x.ai",
            // grok-4 rejects `reasoning_effort`; it reasons on its own.
            dialect: dialect(ReasoningStyle::None),
            text_only: &[],
            example_model: "grok-4",
        },
        Preset {
            name: "openrouter",
            protocol: SourceProtocol::OpenAi,
            base_url: "https://openrouter.ai/api/v1",
            host_suffix: "openrouter.ai",
            dialect: Dialect {
                top_k: true,
                ..dialect(ReasoningStyle::Effort)
            },
            text_only: &[
                "deepseek/*",
                "z-ai/glm-4.5",
                "z-ai/glm-4.6",
                "moonshotai/kimi-k2",
            ],
            example_model: "deepseek/deepseek-chat-v3.1",
        },
        Preset {
            name: "ollama",
            protocol: SourceProtocol::OpenAi,
            base_url: "http://127.0.0.1:11434/v1",
            host_suffix: "",
            dialect: dialect(ReasoningStyle::Effort),
            text_only: &[],
            example_model: "qwen3-coder:30b",
        },
        Preset {
            name: "vllm",
            protocol: SourceProtocol::OpenAi,
            base_url: "http://127.0.0.1:8000/v1",
            host_suffix: "",
            dialect: Dialect {
                top_k: true,
                ..dialect(ReasoningStyle::Effort)
            },
            text_only: &[],
            example_model: "Qwen/Qwen3-Coder-30B-A3B-Instruct",
        },
        Preset {
            name: "openai",
            protocol: SourceProtocol::OpenAi,
            base_url: "https://api.openai.com/v1",
            host_suffix: "api.openai.com",
            dialect: Dialect {
                max_tokens_field: MaxTokensField::MaxCompletionTokens,
                ..dialect(ReasoningStyle::Effort)
            },
            text_only: &[],
            example_model: "gpt-5-mini",
        },
    ]
}

pub fn by_name(name: &str) -> Option<Preset> {
    all().into_iter().find(|p| p.name == name)
}

pub fn names() -> Vec<&'static str> {
    all().iter().map(|p| p.name).collect()
}

/// The preset whose host matches a base URL's host, if any.
pub fn for_host(host: &str) -> Option<Preset> {
    all().into_iter().find(|p| {
        !p.host_suffix.is_empty()
            && (host == p.host_suffix || host.ends_with(&format!(".{}", p.host_suffix)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_providers_are_present_with_their_urls() {
        for (name, url) in [
            ("deepseek", "https://api.deepseek.com/v1"),
            ("deepinfra", "https://api.deepinfra.com/v1/openai"),
            (
                "dashscope",
                "https://dashscope.aliyuncs.com/compatible-mode/v1",
            ),
            ("xai", "https://api.x.ai/v1"),
        ] {
            assert_eq!(by_name(name).unwrap().base_url, url);
        }
        assert!(by_name("ollama").is_some() && by_name("openrouter").is_some());
    }

    #[test]
    fn host_detection() {
        assert_eq!(for_host("api.deepseek.com").unwrap().name, "deepseek");
        assert_eq!(
            for_host("dashscope-intl.aliyuncs.com").unwrap().name,
            "dashscope"
        );
        assert!(for_host("example.com").is_none());
        assert!(for_host("evilapi.deepseek.com.example").is_none());
    }

    #[test]
    fn text_only_models() {
        let ds = by_name("deepseek").unwrap();
        assert!(ds.text_only("deepseek-v4-pro") && ds.text_only("DeepSeek-Chat"));
        assert!(!ds.text_only("deepseek-v4-flash"));
        assert!(!by_name("xai").unwrap().text_only("grok-4"));
    }
}
