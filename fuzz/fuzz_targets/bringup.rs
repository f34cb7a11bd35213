//! Device bring-up over the virtio-pci register model with every device value from the input
//! (capabilities, BARs, queues, configuration, misbehaviour), through `Adapter::start`,
//! `restore` and `stop`. The body is `vnet_harness::fuzzing::bringup`, which the test suite also
//! runs on random inputs as a bounded smoke test.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vnet_harness::dma::GuestRam;

static RAM: OnceLock<GuestRam> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let ram = RAM.get_or_init(|| GuestRam::new(32 << 20));
    let _ = vnet_harness::fuzzing::bringup(ram, data);
});
