//! A fake OpenAI-compatible provider with switchable quirks — each one a way a real provider
//! departs from OpenAI's Chat Completions (no usage in streams, `stream_options` refused,
//! reasoning in `reasoning` or `reasoning_content` and required back on tool turns,
//! `max_completion_tokens` only, `json_object` only, system messages or images refused, no
//! tools). Refusals are 400s in OpenAI's error shape naming what was refused, as the real
//! providers' are. Otherwise it answers like [`crate::scenario::tool_loop`]: a tool offered
//! and not yet answered is called (`Write` with the given file, else the first tool, twice
//! when the prompt names Tokyo too), a tool result gets `final_text`, anything else `pong`.

use serde_json::{Value, json};

use crate::{RecordedRequest, Reply, estimate_tokens, openai};

/// The quirks the fake has; [`Quirks::default`] has none.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quirks {
    /// Streams never carry usage, `stream_options` or not.
    pub no_stream_usage: bool,
    /// A request with `stream_options` is refused.
    pub refuse_stream_options: bool,
    /// The field reasoning comes in (`reasoning_content` or `reasoning`); none without.
    pub reasoning_field: Option<&'static str>,
    /// An assistant tool-call turn sent back without its `reasoning_content` is refused.
    pub require_reasoning_back: bool,
    /// `max_tokens` is refused (`max_completion_tokens` only).
    pub max_completion_tokens_only: bool,
    /// `response_format: json_schema` is refused (`json_object` only).
    pub json_object_only: bool,
    /// A `system` message after the first message is refused.
    pub refuse_system_messages: bool,
    /// Image parts are refused.
    pub refuse_images: bool,
    /// Requests with `tools` are refused.
    pub no_tools: bool,
}

/// The model list's one model and its limits.
pub const CONTEXT_LENGTH: u64 = 65536;
/// The reasoning the fake gives with each answer, when it reasons.
pub const REASONING: &str = "The user wants the tool; calling it.";

/// The fake's handler. `write` (a path and a content) is what a `Write` tool call writes.
pub fn chat(
    quirks: Quirks,
    write: Option<(&str, &str)>,
    final_text: &str,
) -> impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static {
    let write = write.map(|(path, content)| json!({"file_path": path, "content": content}));
    let final_text = final_text.to_owned();
    move |request| {
        if request.method == "GET" && request.path.ends_with("/models") {
            return Reply::json(
                200,
                json!({"object": "list", "data": [
                    {"id": openai::MODEL, "object": "model", "context_length": CONTEXT_LENGTH}
                ]}),
            );
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return refuse("request body is not JSON");
        };
        if let Some(why) = refusal(&quirks, &body) {
            return refuse(why);
        }
        let stream = body["stream"].as_bool().unwrap_or(false);
        let usage = !quirks.no_stream_usage && body["stream_options"]["include_usage"] == true;
        let answer = answer(&body, write.as_ref(), &final_text);
        let reasoning = quirks.reasoning_field.map(|f| (f, REASONING));
        if stream {
            Reply::sse(stream_events(&answer, reasoning, usage))
        } else {
            Reply::json(200, whole(&answer, reasoning))
        }
    }
}

fn refuse(message: &str) -> Reply {
    Reply::json(
        400,
        openai::error_body(message, "invalid_request_error", None),
    )
}

/// Why a quirk refuses `body`, in the provider's words.
fn refusal(q: &Quirks, body: &Value) -> Option<&'static str> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let has_image = messages.iter().any(|m| {
        m["content"]
            .as_array()
            .is_some_and(|parts| parts.iter().any(|p| p["type"] == "image_url"))
    });
    let unechoed = messages.iter().any(|m| {
        m["role"] == "assistant"
            && m["tool_calls"].is_array()
            && m["reasoning_content"].as_str().is_none_or(str::is_empty)
    });
    let checks: [(bool, &'static str); 7] = [
        (
            q.max_completion_tokens_only && body.get("max_tokens").is_some(),
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
        ),
        (
            q.refuse_stream_options && body.get("stream_options").is_some(),
            "Unrecognized request argument supplied: stream_options",
        ),
        (
            q.json_object_only && body["response_format"]["type"] == "json_schema",
            "This response_format type is unavailable now; use json_object",
        ),
        (
            q.refuse_system_messages && messages.iter().skip(1).any(|m| m["role"] == "system"),
            "System message must be at the beginning.",
        ),
        (
            q.refuse_images && has_image,
            "Image input is not supported for this model",
        ),
        (
            q.no_tools && body.get("tools").is_some(),
            "tools are not supported by this model",
        ),
        (
            q.require_reasoning_back && unechoed,
            "The reasoning_content in the thinking mode must be passed back to the API.",
        ),
    ];
    checks.into_iter().find(|(hit, _)| *hit).map(|(_, why)| why)
}

/// What the model says: text, or tool calls `(id, name, arguments)`.
enum Answer {
    Text(String),
    Calls(Vec<(String, String, String)>),
}

fn answer(body: &Value, write: Option<&Value>, final_text: &str) -> Answer {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let tools: Vec<String> = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
        .collect();
    if messages.iter().any(|m| m["role"] == "tool") {
        return Answer::Text(final_text.to_owned());
    }
    if let Some(args) = write.filter(|_| tools.iter().any(|t| t == "Write")) {
        let id = crate::scenario::WRITE_CALL_ID.to_owned();
        return Answer::Calls(vec![(id, "Write".to_owned(), args.to_string())]);
    }
    if let Some(tool) = tools.first() {
        let asked = messages
            .last()
            .map(|m| m["content"].to_string())
            .unwrap_or_default();
        let mut cities = vec!["Paris"];
        if asked.contains("Tokyo") {
            cities.push("Tokyo");
        }
        let calls = cities
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    format!("call_fake_{i}"),
                    tool.clone(),
                    json!({"city": c}).to_string(),
                )
            })
            .collect();
        return Answer::Calls(calls);
    }
    if body["response_format"].is_object() {
        return Answer::Text(json!({"word": "pong"}).to_string());
    }
    Answer::Text(if write.is_some() {
        crate::scenario::SIDE_REPLY.to_owned()
    } else {
        "pong".to_owned()
    })
}

fn whole(answer: &Answer, reasoning: Option<(&str, &str)>) -> Value {
    let mut v = match answer {
        Answer::Text(t) => openai::chat_completion(t),
        Answer::Calls(calls) => {
            let calls: Vec<(&str, &str, &str)> = calls
                .iter()
                .map(|(i, n, a)| (i.as_str(), n.as_str(), a.as_str()))
                .collect();
            openai::tool_call_completion(&calls)
        }
    };
    if let Some((field, text)) = reasoning {
        v["choices"][0]["message"][field] = json!(text);
    }
    v
}

fn stream_events(answer: &Answer, reasoning: Option<(&str, &str)>, usage: bool) -> Vec<String> {
    let mut events = vec![openai::sse_chunk(
        json!({"role": "assistant", "content": ""}),
        None,
    )];
    if let Some((field, text)) = reasoning {
        events.push(openai::sse_chunk(json!({field: text}), None));
    }
    let (finish, tokens) = match answer {
        Answer::Text(t) => {
            for piece in crate::split_text(t, 3) {
                events.push(openai::sse_chunk(json!({"content": piece}), None));
            }
            ("stop", estimate_tokens(t))
        }
        Answer::Calls(calls) => {
            for (index, (id, name, arguments)) in calls.iter().enumerate() {
                events.push(openai::sse_chunk(
                    json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                                           "function": {"name": name, "arguments": ""}}]}),
                    None,
                ));
                events.push(openai::sse_chunk(
                    json!({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]}),
                    None,
                ));
            }
            ("tool_calls", 20)
        }
    };
    events.push(openai::sse_chunk(json!({}), Some(finish)));
    if usage {
        events.push(openai::sse_usage_chunk(openai::PROMPT_TOKENS, tokens));
    }
    events.push(openai::SSE_DONE.to_owned());
    events
}
