//! A pivot [`Response`] → a Responses `response` object for a Responses client: text as a
//! `message` item, reasoning as a `reasoning` item with its summary and sealed
//! `encrypted_content`, calls as `function_call` items — `custom_tool_call` for the client's
//! free-form tools, with `namespace` restored for namespaced ones. A call of the
//! structured-output tool is the answer's text. Cut by the output limit →
//! `status: "incomplete"`.

use super::{OutItem, ResponseObject, Status, item_id};
use crate::protocol::pivot::{AnswerFacts, ExchangeContext, Part, Response};

/// The answer's items, in order.
pub(crate) fn items(response: &Response<'_>, ctx: &ExchangeContext) -> Vec<OutItem> {
    let mut items: Vec<OutItem> = Vec::new();
    let structured = ctx.structured_output_tool.as_deref();
    for part in &response.content {
        let n = items.len();
        match part {
            Part::Text(text) => push_text(&mut items, ctx, &text.decoded()),
            Part::ToolCall(call) if Some(&*call.name) == structured => {
                push_text(&mut items, ctx, &call.arguments)
            }
            Part::ToolCall(call) => items.push(OutItem::Call {
                id: item_id(ctx, "fc", n),
                call_id: call.id.to_string(),
                name: call.name.to_string(),
                arguments: call.arguments.to_string(),
            }),
            Part::Reasoning(r) => {
                let mut item = OutItem::Reasoning {
                    id: item_id(ctx, "rs", n),
                    text: r.text.decoded().into_owned(),
                    signature: r.signature.as_ref().map(|(o, s)| (*o, s.to_string())),
                    redacted: r.redacted.as_ref().map(|(o, s)| (*o, s.to_string())),
                    encrypted: None,
                };
                item.seal(ctx.reasoning_key.as_ref());
                items.push(item);
            }
            _ => {}
        }
    }
    items
}

/// Consecutive texts make one message.
fn push_text(items: &mut Vec<OutItem>, ctx: &ExchangeContext, text: &str) {
    if let Some(OutItem::Message { text: last, .. }) = items.last_mut() {
        last.push_str(text);
        return;
    }
    let id = item_id(ctx, "msg", items.len());
    items.push(OutItem::Message {
        id,
        text: text.to_owned(),
    });
}

pub fn encode_response(response: &Response<'_>, ctx: &ExchangeContext) -> (Vec<u8>, AnswerFacts) {
    let items = items(response, ctx);
    let mut out = Vec::with_capacity(256 + items.len() * 128);
    ResponseObject {
        ctx,
        status: Status::of(response.stop),
        items: &items,
        usage: Some(response.usage.unwrap_or_default()),
        error: None,
    }
    .write(&mut out);
    let facts = AnswerFacts {
        usage: response.usage.unwrap_or_default(),
        usage_reported: response.usage.is_some(),
        errored: false,
    };
    (out, facts)
}
