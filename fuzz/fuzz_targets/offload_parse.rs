//! Fuzz target: `vnet_harness::fuzzing::offload_parse` (the test suite runs the same body as a smoke test).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vnet_harness::fuzzing::offload_parse(data);
});
