//! vnet-lab — runs the virtionet driver core against QEMU's real virtio-net-pci (default) or the
//! in-process device, moves traffic both ways, and prints what a user wants to see: the device
//! and negotiated features, the capabilities the driver would declare to Windows, throughput,
//! latency percentiles, per-queue counters and errors. `--pcap FILE` writes the traffic for
//! Wireshark. `--peer tap` runs TCP streams with the Linux kernel through QEMU's tap backend in a
//! network namespace (root): guest→kernel with LSO, kernel→guest with RSC.
//!
//! ```text
//! vnet-lab [--peer qemu|tap|inproc] [--frames N] [--size BYTES] [--runs K] [--latency N]
//!          [--mib M] [--props virtio-net-pci-properties] [--accel kvm|tcg] [--pcap FILE]
//! ```

//!
//! Linux only: on other targets it says so and exits.

#[cfg(target_os = "linux")]
mod linux;

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("vnet-lab runs on Linux only (QEMU over qtest, shared guest RAM, namespaces)");
    std::process::exit(2);
}
