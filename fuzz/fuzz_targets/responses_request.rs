//! Any bytes as a Responses request (and as a request to a Responses source).
#![no_main]

use flexiproxy_fuzz::responses_checks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = responses_checks::check_request(data) {
        panic!("{e}");
    }
});
