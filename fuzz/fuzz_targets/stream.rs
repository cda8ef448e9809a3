//! OpenAI SSE stream → Anthropic SSE stream, fed in a fuzzed read schedule.
//!
//! Input layout:
//! - byte 0: bits 0–2 = number of read sizes that follow (0 = one read), bit 3 = call
//!   `begin` first, bits 4–7 = the error kind used by the `fail` run;
//! - that many bytes: read sizes (`b + 1`), used cyclically;
//! - two bytes (little endian): where the `fail` run stops reading;
//! - the rest: the upstream bytes.
#![no_main]

use flexiproxy_fuzz::{Input, checks};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let reads: Vec<usize> = (0..flags & 7)
        .map(|_| usize::from(input.byte()) + 1)
        .collect();
    let fail_at = usize::from(input.u16());
    let stream = input.rest();
    let plan = checks::StreamPlan {
        other_reads: if reads == [1] { vec![2, 1] } else { vec![1] },
        reads,
        begin_first: flags & 8 != 0,
        fail_at,
        fail_kind: checks::ERROR_KINDS[usize::from(flags >> 4) % checks::ERROR_KINDS.len()],
        fail_message: "upstream \"reset\"\n\nby peer".into(),
    };
    if let Err(e) = checks::check_stream_input(stream, &plan) {
        panic!("{e}\nplan: {plan:?}");
    }
    if let Err(e) = checks::check_sse_decoder(stream, &plan.reads) {
        panic!("{e}");
    }
    if let Ok(text) = std::str::from_utf8(stream)
        && text.len() <= 4096
        && let Err(e) = checks::check_json_helpers(text)
    {
        panic!("{e}");
    }
});
