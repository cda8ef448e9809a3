//! A pivot [`Response`] → a Gemini `GenerateContentResponse`: one candidate whose parts are
//! text, reasoning as `thought: true` text, and `functionCall`s with their ids (arguments as a
//! JSON object, mended when the model left them broken). The reasoning a provider needs
//! back is sealed into the `thoughtSignature` of the part after it, which Gemini clients send
//! back with that part. A call of the structured-output tool is the answer's text.

use super::{finish_reason, write_usage};
use crate::protocol::json::{Arr, Obj, is_valid_json, repair_json_object};
use crate::protocol::pivot::{AnswerFacts, ExchangeContext, Part, Response};
use crate::protocol::responses::seal::Sealed;

/// A function call's `args`: the arguments if they are a JSON object, mended or `{}` if not.
pub(crate) fn args_object(arguments: &str) -> std::borrow::Cow<'_, str> {
    let trimmed = arguments.trim();
    if trimmed.starts_with('{') && is_valid_json(trimmed) {
        return std::borrow::Cow::Borrowed(trimmed);
    }
    repair_json_object(trimmed).map_or(std::borrow::Cow::Borrowed("{}"), std::borrow::Cow::Owned)
}

/// Seals reasoning for a `thoughtSignature`; `None` without a key.
pub(crate) fn seal(ctx: &ExchangeContext, sealed: &Sealed) -> Option<String> {
    Some(ctx.reasoning_key.as_ref()?.seal(sealed))
}

pub fn encode_response(response: &Response<'_>, ctx: &ExchangeContext) -> (Vec<u8>, AnswerFacts) {
    let mut out = Vec::with_capacity(512);
    let structured = ctx.structured_output_tool.as_deref();
    let mut o = Obj::new(&mut out);
    o.array("candidates", |c| {
        c.object(|cand| {
            cand.object("content", |content| {
                content.str("role", "model");
                content.array("parts", |parts| {
                    write_parts(parts, response, ctx, structured)
                });
            });
            cand.str("finishReason", finish_reason(response.stop));
            cand.u64("index", 0);
        });
    });
    write_usage(response.usage.unwrap_or_default(), o.key("usageMetadata"));
    o.str("modelVersion", &ctx.client_model);
    o.str("responseId", &ctx.message_id);
    o.end();
    let facts = AnswerFacts {
        usage: response.usage.unwrap_or_default(),
        usage_reported: response.usage.is_some(),
        errored: false,
    };
    (out, facts)
}

fn write_parts(
    parts: &mut Arr<'_>,
    response: &Response<'_>,
    ctx: &ExchangeContext,
    structured: Option<&str>,
) {
    // A signature waiting for the next part.
    let mut signature: Option<String> = None;
    let mut written = 0;
    for part in &response.content {
        match part {
            Part::Reasoning(r) => {
                let text = r.text.decoded();
                signature = seal(ctx, &Sealed::from(r));
                if !text.is_empty() {
                    parts.object(|p| {
                        p.str("text", &text);
                        p.bool("thought", true);
                    });
                    written += 1;
                }
            }
            Part::Text(text) => {
                parts.object(|p| {
                    p.text("text", text);
                    if let Some(s) = signature.take() {
                        p.str("thoughtSignature", &s);
                    }
                });
                written += 1;
            }
            Part::ToolCall(call) if Some(&*call.name) == structured => {
                parts.object(|p| p.str("text", &call.arguments));
                written += 1;
            }
            Part::ToolCall(call) => {
                parts.object(|p| {
                    p.object("functionCall", |f| {
                        f.str("id", &call.id);
                        f.str("name", &call.name);
                        f.raw("args", &args_object(&call.arguments));
                    });
                    if let Some(s) = signature.take() {
                        p.str("thoughtSignature", &s);
                    }
                });
                written += 1;
            }
            _ => {}
        }
    }
    if signature.is_some() || written == 0 {
        parts.object(|p| {
            p.str("text", "");
            if let Some(s) = signature.take() {
                p.str("thoughtSignature", &s);
            }
        });
    }
}
