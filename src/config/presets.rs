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
    /// The model `adapter create` and the panel suggest: the first of `models`.
    pub example_model: &'static str,
    /// Models (globs, any case) that cannot read images or documents: requests that carry
    /// them get a placeholder instead (`options.images` overrides). From the providers'
    /// model pages and the errors they answer (docs/routing.md).
    pub text_only: &'static [&'static str],
    /// The provider's current models and what routing and the provider check need to know
    /// about them (`flexiproxy presets` lists them).
    pub models: &'static [ModelFacts],
}

/// What a provider says about one of its models, with where and when it was read. `None`
/// is "unverified": no provider page said so.
#[derive(Debug, Clone, Copy)]
pub struct ModelFacts {
    pub id: &'static str,
    /// Reads images.
    pub images: Option<bool>,
    /// Context window, in tokens.
    pub context: Option<u32>,
    /// Longest answer, in tokens.
    pub max_output: Option<u32>,
    /// The provider searches the web itself on this API (a request flag or tool).
    pub web_search: Option<bool>,
    /// How reasoning is switched on and off.
    pub reasoning: &'static str,
    /// When the facts were checked (`YYYY-MM-DD`), or `unverified`.
    pub verified: &'static str,
    /// The page they come from.
    pub source: &'static str,
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

    /// The facts about `model`, if it is one of the preset's models.
    pub fn model(&self, model: &str) -> Option<&ModelFacts> {
        self.models
            .iter()
            .find(|m| m.id.eq_ignore_ascii_case(model))
    }
}

fn dialect(reasoning: ReasoningStyle) -> Dialect {
    Dialect {
        reasoning,
        ..Dialect::default()
    }
}

/// The day the model facts below were last checked against the pages named.
const CHECKED: &str = "2026-12-07";

const DEEPSEEK_PRICING: &str = "https://api-docs.deepseek.com/quick_start/pricing";
const DEEPSEEK_THINKING: &str =
    "`thinking: {type: enabled|disabled}` request parameter (on by default)";

/// DeepSeek V4 (2026-04-24); `deepseek-chat` and `deepseek-reasoner` were retired on
/// 2026-07-24 (they had become the two modes of `deepseek-v4-flash`).
const DEEPSEEK_MODELS: &[ModelFacts] = &[
    ModelFacts {
        id: "deepseek-v4-flash",
        // The pricing page lists text only; third parties report V4 reading images on the
        // API since 2026-06, which no DeepSeek page says.
        images: None,
        context: Some(1_000_000),
        max_output: Some(384_000),
        web_search: Some(false),
        reasoning: DEEPSEEK_THINKING,
        verified: CHECKED,
        source: DEEPSEEK_PRICING,
    },
    ModelFacts {
        id: "deepseek-v4-pro",
        images: Some(false),
        context: Some(1_000_000),
        max_output: Some(384_000),
        web_search: Some(false),
        reasoning: DEEPSEEK_THINKING,
        verified: CHECKED,
        source: DEEPSEEK_PRICING,
    },
];

const QWEN_MARKET: &str =
    "https://bailian.console.alibabacloud.com/?tab=model#/model-market (Model Studio model cards)";
const QWEN_THINKING: &str = "`enable_thinking` (streaming requests only), `thinking_budget`";

const DASHSCOPE_MODELS: &[ModelFacts] = &[
    ModelFacts {
        id: "qwen3-coder-plus",
        images: Some(false),
        context: Some(1_000_000),
        max_output: Some(65_536),
        web_search: Some(false),
        reasoning: "none (a non-thinking coder model)",
        verified: CHECKED,
        source: "https://help.aliyun.com/zh/model-studio/qwen-coder",
    },
    ModelFacts {
        id: "qwen3-max",
        images: Some(false),
        context: Some(262_144),
        max_output: Some(65_536),
        web_search: Some(true),
        reasoning: QWEN_THINKING,
        verified: CHECKED,
        source: QWEN_MARKET,
    },
    ModelFacts {
        id: "qwen-flash",
        images: Some(false),
        context: Some(1_000_000),
        max_output: Some(32_768),
        web_search: Some(true),
        reasoning: QWEN_THINKING,
        verified: CHECKED,
        source: QWEN_MARKET,
    },
    ModelFacts {
        id: "qwen3-vl-plus",
        images: Some(true),
        context: Some(262_144),
        max_output: Some(32_768),
        web_search: Some(false),
        reasoning: QWEN_THINKING,
        verified: CHECKED,
        source: QWEN_MARKET,
    },
];

const DEEPINFRA_MODELS: &[ModelFacts] = &[
    ModelFacts {
        id: "zai-org/GLM-4.6",
        images: Some(false),
        context: Some(202_752),
        max_output: None,
        web_search: Some(false),
        reasoning: "`reasoning_effort` (GLM thinks by default)",
        verified: CHECKED,
        source: "https://deepinfra.ai/zai-org/GLM-4.6/api",
    },
    ModelFacts {
        id: "zai-org/GLM-4.5V",
        images: Some(true),
        context: Some(65_536),
        max_output: None,
        web_search: Some(false),
        reasoning: "`reasoning_effort`",
        verified: CHECKED,
        source: "https://deepinfra.ai/zai-org/GLM-4.5V/api",
    },
];

const XAI_GROK_420: &str = "https://docs.x.ai/developers/models (read through docs.oracle.com/en-us/iaas/Content/generative-ai/xai-grok-4-20.htm)";

const XAI_MODELS: &[ModelFacts] = &[
    ModelFacts {
        id: "grok-4.20-0309-reasoning",
        images: Some(true),
        context: Some(2_000_000),
        max_output: None,
        web_search: Some(false),
        reasoning: "by model: the -reasoning model always reasons (no `reasoning_effort`)",
        verified: CHECKED,
        source: XAI_GROK_420,
    },
    ModelFacts {
        id: "grok-4.20-0309-non-reasoning",
        images: Some(true),
        context: Some(2_000_000),
        max_output: None,
        web_search: Some(false),
        reasoning: "by model: the -non-reasoning model never does",
        verified: CHECKED,
        source: XAI_GROK_420,
    },
];

/// OpenRouter routes to other providers; these ids were seen in its real traffic
/// (`../shared/real-recordings/`), their limits are the serving provider's.
const OPENROUTER_MODELS: &[ModelFacts] = &[
    ModelFacts {
        id: "z-ai/glm-5-turbo",
        images: None,
        context: None,
        max_output: None,
        web_search: Some(true),
        reasoning: "`reasoning: {effort}` or `reasoning_effort`",
        verified: "unverified",
        source: "",
    },
    ModelFacts {
        id: "moonshotai/kimi-k2.5",
        images: None,
        context: None,
        max_output: None,
        web_search: Some(true),
        reasoning: "`reasoning: {effort}` or `reasoning_effort`",
        verified: "unverified",
        source: "",
    },
];

const OPENAI_MODELS: &[ModelFacts] = &[
    ModelFacts {
        id: "gpt-5.5",
        images: Some(true),
        context: Some(1_050_000),
        max_output: Some(128_000),
        // Hosted web search is a Responses API tool; Chat Completions has none for it.
        web_search: Some(false),
        reasoning: "`reasoning_effort` none to xhigh",
        verified: CHECKED,
        source: "https://platform.openai.com/docs/models/gpt-5.5 (read through runware.ai/docs/models/openai-gpt-5-5)",
    },
    ModelFacts {
        id: "gpt-5-mini",
        images: Some(true),
        context: Some(400_000),
        max_output: Some(128_000),
        web_search: Some(false),
        reasoning: "`reasoning_effort` minimal to high",
        verified: "unverified",
        source: "",
    },
];

/// A local server serves whatever model it was started with: nothing to verify here.
const fn local(id: &'static str) -> ModelFacts {
    ModelFacts {
        id,
        images: None,
        context: None,
        max_output: None,
        web_search: Some(false),
        reasoning: "`reasoning_effort` where the model's chat template takes it",
        verified: "unverified",
        source: "",
    }
}

const OLLAMA_MODELS: &[ModelFacts] = &[local("qwen3-coder:30b")];
const VLLM_MODELS: &[ModelFacts] = &[local("Qwen/Qwen3-Coder-30B-A3B-Instruct")];

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
            example_model: "deepseek-v4-flash",
            models: DEEPSEEK_MODELS,
        },
        Preset {
            name: "deepseek-anthropic",
            protocol: SourceProtocol::Anthropic,
            base_url: "https://api.deepseek.com/anthropic",
            host_suffix: "",
            dialect: Dialect::default(),
            text_only: &["deepseek-chat", "deepseek-reasoner", "deepseek-v4-pro*"],
            example_model: "deepseek-v4-flash",
            models: DEEPSEEK_MODELS,
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
            example_model: "zai-org/GLM-4.6",
            models: DEEPINFRA_MODELS,
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
            text_only: &[
                "qwen3-coder*",
                "qwen3.7-max*",
                "qwen3-max*",
                "qwen-flash*",
                "qwen-turbo*",
            ],
            example_model: "qwen3-coder-plus",
            models: DASHSCOPE_MODELS,
        },
        Preset {
            name: "xai",
            protocol: SourceProtocol::OpenAi,
            base_url: "https://api.x.ai/v1",
            host_suffix: "api.x.ai",
            // Grok reasoning models reject `reasoning_effort`; the model id decides.
            dialect: dialect(ReasoningStyle::None),
            text_only: &[],
            example_model: "grok-4.20-0309-reasoning",
            models: XAI_MODELS,
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
            example_model: "z-ai/glm-5-turbo",
            models: OPENROUTER_MODELS,
        },
        Preset {
            name: "ollama",
            protocol: SourceProtocol::OpenAi,
            base_url: "http://127.0.0.1:11434/v1",
            host_suffix: "",
            dialect: dialect(ReasoningStyle::Effort),
            text_only: &[],
            example_model: "qwen3-coder:30b",
            models: OLLAMA_MODELS,
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
            models: VLLM_MODELS,
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
            example_model: "gpt-5.5",
            models: OPENAI_MODELS,
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

    #[test]
    fn every_preset_names_current_models_with_their_facts() {
        for p in all() {
            assert!(!p.models.is_empty(), "{}", p.name);
            assert_eq!(p.models[0].id, p.example_model, "{}", p.name);
            for m in p.models {
                // Facts either come from a page, dated, or say they are unverified.
                if m.verified == "unverified" {
                    assert!(m.source.is_empty(), "{}", m.id);
                } else {
                    assert_eq!(m.verified.len(), 10, "{}: {}", m.id, m.verified);
                    assert!(m.source.starts_with("https://"), "{}", m.id);
                }
                // Routing agrees with the facts about images.
                match m.images {
                    Some(false) => assert!(p.text_only(m.id), "{}: text-only", m.id),
                    Some(true) => assert!(!p.text_only(m.id), "{}: reads images", m.id),
                    None => {}
                }
            }
        }
        // DeepSeek retired these on 2026-07-24: no preset suggests them.
        for p in all() {
            for retired in ["deepseek-chat", "deepseek-reasoner"] {
                assert!(p.model(retired).is_none() && p.example_model != retired);
            }
        }
        assert_eq!(
            by_name("deepseek")
                .unwrap()
                .model("DeepSeek-V4-Pro")
                .unwrap()
                .context,
            Some(1_000_000)
        );
    }
}
