//! The driver's TraceLogging provider: the core's [`Event`]s as self-describing ETW events that
//! Windows Performance Analyzer shows by name and field (Generic Events table), recorded with
//! `virtionet.wprp`.
//!
//! Built on Microsoft's `tracelogging` crate, whose macros lay the TraceLogging metadata out at
//! compile time; on Windows with its `kernel_mode` feature it registers through `EtwRegister` and
//! writes through `EtwWriteTransfer`. Elsewhere the provider never registers and every write is
//! a no-op, so this module compiles, and its encoding of every event is exercised, on Linux.
//!
//! The provider's GUID is fixed: it is the standard ETW hash of the provider name (what
//! `wpr`, `tracelog -guid *Name` and EventSource compute), so tools can name or number it.

use tracelogging as tlg;

use crate::events::{Event, EventSink};

/// The provider name, as WPA and `virtionet.wprp` show it.
pub const PROVIDER_NAME: &str = "Virtionet.Driver";
/// The provider GUID (`Guid::from_name(PROVIDER_NAME)`; a test checks it).
pub const PROVIDER_GUID: &str = "df6e0fff-8627-5cfe-3b72-087f70866b13";

tlg::define_provider!(
    VIRTIONET,
    "Virtionet.Driver",
    id("df6e0fff-8627-5cfe-3b72-087f70866b13")
);

/// Keywords (event categories) for filtering in a recording profile.
pub mod keyword {
    /// Bring-up, capabilities, reset and restore.
    pub const LIFECYCLE: u64 = 0x1;
    /// Link changes.
    pub const LINK: u64 = 0x2;
    /// Faults: device contract violations, failed control commands, removal.
    pub const FAULT: u64 = 0x4;
    /// Per-queue counters (on the glue's timer).
    pub const COUNTERS: u64 = 0x8;
}

/// Registers the provider (DriverEntry). Returns the Win32 error code of the registration
/// (0 on success; elsewhere than Windows, nothing is registered).
///
/// # Safety
///
/// [`unregister`] must be called before the driver image unloads (DriverUnload), or ETW would
/// call into unloaded code.
pub unsafe fn register() -> u32 {
    // SAFETY: the caller unregisters before unload.
    unsafe { VIRTIONET.register() }
}

/// Unregisters the provider (DriverUnload, and DriverEntry's failure path).
pub fn unregister() {
    VIRTIONET.unregister();
}

/// Whether any session listens (so callers can skip gathering counters nobody records).
pub fn enabled(keyword: u64) -> bool {
    VIRTIONET.enabled(tlg::Level::Verbose, keyword)
}

/// Writes events to the provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct EtwSink;

impl EventSink for EtwSink {
    fn event(&mut self, e: &Event) {
        write(e);
    }
}

/// Writes one event. Never allocates; safe at DISPATCH_LEVEL (EtwWriteTransfer is).
pub fn write(e: &Event) {
    match *e {
        Event::BringUp {
            offered,
            negotiated,
            queue_pairs,
            max_queue_pairs,
            msix,
        } => {
            tlg::write_event!(
                VIRTIONET,
                "BringUp",
                level(Informational),
                keyword(keyword::LIFECYCLE),
                u64_hex("OfferedFeatures", &offered),
                u64_hex("NegotiatedFeatures", &negotiated),
                u16("QueuePairs", &queue_pairs),
                u16("MaxQueuePairs", &max_queue_pairs),
                bool8("MsiX", &msix),
            );
        }
        Event::Capabilities(c) => {
            let tx_csum = u8::from(c.tx_checksum.ipv4)
                | u8::from(c.tx_checksum.tcp) << 1
                | u8::from(c.tx_checksum.udp) << 2;
            let rx_csum = u8::from(c.rx_checksum.ipv4)
                | u8::from(c.rx_checksum.tcp) << 1
                | u8::from(c.rx_checksum.udp) << 2;
            let gso = u8::from(c.gso.lso_v4)
                | u8::from(c.gso.lso_v6) << 1
                | u8::from(c.gso.uso_v4) << 2
                | u8::from(c.gso.uso_v6) << 3;
            let rsc = u8::from(c.rsc_v4) | u8::from(c.rsc_v6) << 1;
            tlg::write_event!(
                VIRTIONET,
                "Capabilities",
                level(Informational),
                keyword(keyword::LIFECYCLE),
                u32("Mtu", &c.mtu),
                u8_slice("CurrentAddress", &c.current_address),
                u8_slice("PermanentAddress", &c.permanent_address),
                u64("LinkSpeed", &c.link_speed),
                u8_hex("TxChecksum", &tx_csum),
                u8_hex("RxChecksum", &rx_csum),
                bool8("RxChecksumInSoftware", &c.rx_checksum_in_software),
                u8_hex("Gso", &gso),
                u32("MaxOffloadSize", &c.gso.max_offload_size),
                u8_hex("Rsc", &rsc),
                bool8("PriorityTagging", &c.priority_tagging),
                bool8("VlanTagging", &c.vlan_tagging),
                u32("RxBufferSize", &c.rx_buffer_size),
                u32("RxBuffers", &c.rx_buffers),
                u32("TxBuffers", &c.tx_buffers),
                u32("TxMaxFragments", &c.tx_max_fragments),
                bool8("Confidential", &c.confidential),
            );
        }
        Event::LinkChanged { up } => {
            tlg::write_event!(
                VIRTIONET,
                "LinkChanged",
                level(Informational),
                keyword(keyword::LINK),
                bool8("Up", &up),
            );
        }
        Event::Quiesced { reset } => {
            tlg::write_event!(
                VIRTIONET,
                "Quiesced",
                level(Error),
                keyword(keyword::LIFECYCLE | keyword::FAULT),
                bool8("Reset", &reset),
            );
        }
        Event::DeviceReset => {
            tlg::write_event!(
                VIRTIONET,
                "DeviceReset",
                level(Warning),
                keyword(keyword::LIFECYCLE | keyword::FAULT),
            );
        }
        Event::Restored { ok } => {
            tlg::write_event!(
                VIRTIONET,
                "Restored",
                level(Warning),
                keyword(keyword::LIFECYCLE),
                bool8("Ok", &ok),
            );
        }
        Event::ControlTimeout { ticks } => {
            tlg::write_event!(
                VIRTIONET,
                "ControlTimeout",
                level(Error),
                keyword(keyword::FAULT),
                u32("Ticks", &ticks),
            );
        }
        Event::ControlCommandsFailed { count } => {
            tlg::write_event!(
                VIRTIONET,
                "ControlCommandsFailed",
                level(Warning),
                keyword(keyword::FAULT),
                u32("Count", &count),
            );
        }
        Event::QueueFault { pair, transmit } => {
            tlg::write_event!(
                VIRTIONET,
                "QueueFault",
                level(Error),
                keyword(keyword::FAULT),
                u16("Pair", &pair),
                bool8("Transmit", &transmit),
            );
        }
        Event::SurpriseRemoved => {
            tlg::write_event!(
                VIRTIONET,
                "SurpriseRemoved",
                level(Error),
                keyword(keyword::FAULT | keyword::LIFECYCLE),
            );
        }
        Event::QueueCounters { pair, tx, rx } => {
            let (tx_frames, tx_bytes) = (tx.sent.frames(), tx.sent.bytes());
            let (rx_frames, rx_bytes) = (rx.received.frames(), rx.received.bytes());
            let faults = tx.device_faults + rx.device_faults;
            tlg::write_event!(
                VIRTIONET,
                "QueueCounters",
                level(Verbose),
                keyword(keyword::COUNTERS),
                u16("Pair", &pair),
                u64("TxFrames", &tx_frames),
                u64("TxBytes", &tx_bytes),
                u64("TxIgnored", &tx.ignored),
                u64("TxBadPackets", &tx.bad_packets),
                u64("TxOffloadErrors", &tx.offload_errors),
                u64("TxKicks", &tx.kicks),
                u64("RxFrames", &rx_frames),
                u64("RxBytes", &rx_bytes),
                u64("RxChecksumErrors", &rx.checksum_errors),
                u64("RxCoalesced", &rx.coalesced_packets),
                u64("RxChecksumsCompleted", &rx.checksums_completed),
                u64("RxRunts", &rx.runts),
                u64("RxFiltered", &rx.filtered),
                u64("RxOsRingExhausted", &rx.os_ring_exhausted),
                u64("RxBadReturns", &rx.bad_returns),
                u64("DeviceFaults", &faults),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_is_the_etw_name_hash() {
        // The GUID literal in define_provider! and PROVIDER_GUID must both be the name's hash, so
        // `wpr`/`tracelog -guid *Virtionet.Driver` and the .wprp's GUID find the same provider.
        let want = tlg::Guid::from_name(PROVIDER_NAME);
        let text = want.to_utf8_bytes();
        assert_eq!(core::str::from_utf8(&text).unwrap(), PROVIDER_GUID);
        assert_eq!(*VIRTIONET.id(), want);
        assert_eq!(VIRTIONET.name(), PROVIDER_NAME);
    }
}
