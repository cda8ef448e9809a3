//! Source SSE → pivot events → Gemini chunks (SSE and JSON array), in a fuzzed read schedule.
//! Byte 0: read size (`b + 1`); two bytes (little endian): where the `fail` run stops.
#![no_main]

use flexiproxy_fuzz::{Input, gemini_checks};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let size = usize::from(input.byte()) + 1;
    let fail_at = usize::from(input.u16());
    if let Err(e) = gemini_checks::check_stream(input.rest(), &[size, 1], fail_at) {
        panic!("{e}");
    }
});
