//! Any bytes as a Gemini request, to every source protocol.
#![no_main]

use flexiproxy_fuzz::gemini_checks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = gemini_checks::check_request(data) {
        panic!("{e}");
    }
});
