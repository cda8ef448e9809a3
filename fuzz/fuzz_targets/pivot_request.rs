//! OpenAI Chat request → pivot → Anthropic request, and Anthropic answers → Chat answers.
//! Byte 0 picks which: even = request, odd = complete response.
#![no_main]

use flexiproxy_fuzz::{Input, pivot_checks};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let which = input.byte();
    let body = input.rest();
    let result = if which % 2 == 0 {
        pivot_checks::check_chat_request(body)
    } else {
        pivot_checks::check_anthropic_response(body)
    };
    if let Err(e) = result {
        panic!("{e}");
    }
});
