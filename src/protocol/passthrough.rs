//! Same-protocol pairs: the client's body goes to the provider as it was sent, with only the
//! top-level `model` replaced by the adapter's source model.

use crate::protocol::json::write_json_str;
use crate::protocol::pivot::Refusal;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Replaces the top-level `model` value in a JSON body without re-serialising anything else:
/// the bytes before and after it are copied as the client sent them.
///
/// The body is walked, not parsed: the rest of it goes to a provider that speaks the client's
/// own protocol and answers a malformed document with an error in the client's shape, so
/// validating 75 KB here (~30 µs, most of what a passthrough costs over bare Pingora) buys
/// nothing. A body whose structure cannot be followed, or that is unusual (escaped keys,
/// repeated `model` or `stream`, a `stream` that is not a boolean), is parsed to say exactly
/// what is wrong with it.
pub fn replace_model(
    body: &[u8],
    map: impl FnOnce(&str) -> String,
) -> Result<(Bytes, String, String, bool), Refusal> {
    let (model, stream) = match walk_for_model(body) {
        Some(found) => found,
        None => parse_for_model(body)?,
    };
    let model = model.ok_or_else(|| invalid("model: field required".to_owned()))?;
    let client_model: String = serde_json::from_slice(&body[model.clone()])
        .map_err(|_| invalid("model: expected a string".to_owned()))?;
    let source_model = map(&client_model);
    let mut out = Vec::with_capacity(body.len() + source_model.len());
    out.extend_from_slice(&body[..model.start]);
    write_json_str(&mut out, &source_model);
    out.extend_from_slice(&body[model.end..]);
    Ok((Bytes::from(out), client_model, source_model, stream))
}

type ModelAndStream = (Option<std::ops::Range<usize>>, bool);

fn invalid(message: String) -> Refusal {
    Refusal(message)
}

/// The `model` value's place and the `stream` flag, found without parsing (see
/// [`replace_model`]); `None` leaves the body to [`parse_for_model`].
fn walk_for_model(body: &[u8]) -> Option<ModelAndStream> {
    let mut model = None;
    let mut stream = None;
    let followed = crate::protocol::json::walk_top_level(body, |key, value| {
        if key.contains(&b'\\') {
            return false;
        }
        match key {
            b"model" => model.replace(value).is_none(),
            b"stream" => {
                let flag = match &body[value] {
                    b"true" => true,
                    b"false" | b"null" => false,
                    _ => return false,
                };
                stream.replace(flag).is_none()
            }
            _ => true,
        }
    });
    followed.then(|| (model, stream == Some(true)))
}

/// The same found by parsing the whole document, for the bodies the walk leaves: its errors
/// say what is wrong.
fn parse_for_model(body: &[u8]) -> Result<ModelAndStream, Refusal> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        model: Option<&'a RawValue>,
        #[serde(default)]
        stream: Option<bool>,
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| invalid(format!("request body is not UTF-8: {e}")))?;
    if !crate::protocol::json::is_object_document(text) {
        return Err(invalid(
            "invalid request body: expected a JSON object".to_owned(),
        ));
    }
    let head: Head =
        serde_json::from_str(text).map_err(|e| invalid(format!("invalid request body: {e}")))?;
    // `model` borrows from `text`, so its position is an offset into the body.
    let model = head.model.map(|raw| {
        let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
        start..start + raw.get().len()
    });
    Ok((model, head.stream == Some(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: serde's derived structs take an array of fields in order, so `[""]`
    /// passed as a request with model "".
    #[test]
    fn replace_model_refuses_a_body_that_is_not_an_object() {
        for body in [&b"[\"claude\"]"[..], b"  [\"\", true]", b"\"model\""] {
            let e = replace_model(body, |_| "x".to_owned()).unwrap_err();
            assert!(e.0.contains("expected a JSON object"), "{}", e.0);
        }
    }

    #[test]
    fn replace_model_touches_only_the_model() {
        let body = br#"{ "stream" : true, "model":"claude-x",  "messages":[{"role":"user","content":"hi \u00e9"}]}"#;
        let (out, client, source, stream) =
            replace_model(body, |m| format!("{m}-mapped\"q")).unwrap();
        assert_eq!(client, "claude-x");
        assert_eq!(source, "claude-x-mapped\"q");
        assert!(stream);
        let expected = br#"{ "stream" : true, "model":"claude-x-mapped\"q",  "messages":[{"role":"user","content":"hi \u00e9"}]}"#;
        assert_eq!(&out[..], &expected[..]);
        assert!(replace_model(b"{}", |m| m.to_owned()).is_err());
        assert!(replace_model(b"{\"model\":5}", |m| m.to_owned()).is_err());
        assert!(replace_model(b"nope", |m| m.to_owned()).is_err());
    }

    #[test]
    fn replace_model_parses_unusual_bodies_and_forwards_unchecked_values() {
        let map = |m: &str| format!("{m}!");
        // Left to the parser: an escaped key, a repeated model, a stream that is no boolean.
        let (out, client, _, stream) =
            replace_model(br#"{"mod\u0065l":"c","stream":true}"#, map).unwrap();
        assert_eq!((client.as_str(), stream), ("c", true));
        assert_eq!(&out[..], br#"{"mod\u0065l":"c!","stream":true}"#);
        let e = replace_model(br#"{"model":"a","model":"b"}"#, map).unwrap_err();
        assert!(e.0.contains("duplicate field"), "{}", e.0);
        let e = replace_model(br#"{"model":"a","stream":"yes"}"#, map).unwrap_err();
        assert!(e.0.contains("invalid type"), "{}", e.0);
        // Walked, not validated: a bad value elsewhere is the provider's to refuse.
        let (out, ..) = replace_model(br#"{"model":"a","max_tokens":12x}"#, map).unwrap();
        assert_eq!(&out[..], br#"{"model":"a!","max_tokens":12x}"#);
    }
}
