//! Anthropic request body → OpenAI request body, under every dialect.
//! Input: one dialect byte (see `checks::dialect_from_byte`), then the request body.
#![no_main]

use flexiproxy_fuzz::{Input, checks};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let dialect = checks::dialect_from_byte(input.byte());
    let body = input.rest();
    if let Err(e) = checks::check_request(body, &dialect) {
        panic!("{e}\ndialect: {dialect:?}");
    }
});
