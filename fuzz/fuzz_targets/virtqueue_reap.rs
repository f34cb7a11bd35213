//! Reaping a virtqueue while arbitrary bytes are written into the ring memory the device owns.
//! The body is `vnet_harness::fuzzing::reap_with_device_writes`, which the test suite also runs
//! on random inputs as a bounded smoke test.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vnet_harness::dma::GuestRam;

static RAM: OnceLock<GuestRam> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let ram = RAM.get_or_init(|| GuestRam::new(2 << 20));
    vnet_harness::fuzzing::reap_with_device_writes(ram, data);
});
