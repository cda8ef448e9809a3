//! Passthrough model replacement: only the top-level `model` may change.
//! Input: one byte choosing the mapped model name, then the request body.
#![no_main]

use flexiproxy_fuzz::{Input, checks};
use libfuzzer_sys::fuzz_target;

const MODELS: [&str; 6] = [
    "gpt-4o",
    "",
    "provider/model:free",
    "quote\" backslash\\ newline\n",
    "ünïcödé 😀",
    "\u{0}\u{1f}\u{7f}\u{2028}",
];

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let model = MODELS[usize::from(input.byte()) % MODELS.len()];
    if let Err(e) = checks::check_replace_model(input.rest(), model) {
        panic!("{e}");
    }
});
