//! OpenAI (non-streaming) response body → Anthropic message, plus the error-body
//! translations and the message rendered as SSE.
//! Input: two bytes of HTTP status (for the error path), then the response body.
#![no_main]

use flexiproxy_fuzz::{Input, checks};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let status = input.u16();
    let body = input.rest();
    let names = checks::tool_names();
    if let Err(e) = checks::check_response(body, &names, status) {
        panic!("{e}");
    }
});
