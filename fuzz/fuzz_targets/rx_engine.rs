//! The RX engine with device completions the input chooses (ids, lengths, header and frame
//! bytes) and OS ring sizes, posts and returns. The body is
//! `vnet_harness::fuzzing::rx_engine_with_device_completions`, which the test suite also runs
//! as a bounded smoke test.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vnet_harness::dma::GuestRam;

static RAM: OnceLock<GuestRam> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let ram = RAM.get_or_init(|| GuestRam::new(8 << 20));
    vnet_harness::fuzzing::rx_engine_with_device_completions(ram, data);
});
