//! Requests for sources that cannot read images or documents: each image or document of the
//! decoded request (tool results included) becomes a short text note naming the model, so a
//! text-only model gets the conversation instead of answering 400 and ending the session.

use crate::protocol::json::Text;
use crate::protocol::notes::{Change, Field, Notes};
use crate::protocol::pivot::{Conversation, Part};

/// Replaces every image and document with a placeholder; returns how many were replaced.
pub fn omit_media(conversation: &mut Conversation<'_>, model: &str) -> usize {
    let image = Text::from_plain(&format!("[image omitted: {model} cannot read images]"));
    let document = Text::from_plain(&format!(
        "[document omitted: {model} cannot read documents]"
    ));
    let mut count = 0;
    for turn in &mut conversation.turns {
        let notes = &mut conversation.notes;
        omit_in(&mut turn.parts, &image, &document, &mut count, notes);
    }
    count
}

fn omit_in(
    parts: &mut [Part<'_>],
    image: &Text<'static>,
    document: &Text<'static>,
    count: &mut usize,
    notes: &mut Notes,
) {
    for part in parts {
        match part {
            Part::Image(_) => {
                *part = Part::Text(image.clone());
                *count += 1;
                notes.field(Field::Image, None, Change::Omitted);
            }
            Part::Document { .. } => {
                *part = Part::Text(document.clone());
                *count += 1;
                notes.field(Field::Document, None, Change::Omitted);
            }
            Part::ToolResult { content, .. } => omit_in(content, image, document, count, notes),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::anthropic::decode_request::decode_request;

    #[test]
    fn images_and_documents_become_notes_everywhere() {
        let body = r#"{"model":"m","max_tokens":9,"messages":[
          {"role":"user","content":[{"type":"text","text":"look"},
            {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]},
          {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"read","input":{}}]},
          {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[
            {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
            {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}}]}]}]}"#;
        let mut c = decode_request(body).unwrap();
        assert_eq!(omit_media(&mut c, "deepseek-v4-pro"), 3);
        let texts: Vec<String> = c
            .turns
            .iter()
            .flat_map(|t| &t.parts)
            .flat_map(|p| match p {
                Part::ToolResult { content, .. } => content.iter().collect::<Vec<_>>(),
                p => vec![p],
            })
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.decoded().to_string()),
                _ => None,
            })
            .collect();
        assert!(texts.contains(&"[image omitted: deepseek-v4-pro cannot read images]".to_owned()));
        assert!(texts.iter().any(|t| t.starts_with("[document omitted")));
        assert_eq!(omit_media(&mut c, "m"), 0, "nothing left to omit");
    }
}
