//! The INF advanced properties, read with NetAdapterOpenConfiguration and
//! NetConfigurationQueryUlong / QueryLinkLayerAddress (RtEthSample's configuration.cpp, table
//! driven by the core's [`UserSettings::from_keywords`], which does every range check).

use super::netcx::*;
use crate::config::UserSettings;

/// A registry value name as a counted string over `wide` (ASCII names, short).
fn unicode(name: &str, wide: &mut [u16; 64]) -> UNICODE_STRING {
    let n = name.len().min(wide.len() - 1);
    for (w, b) in wide.iter_mut().zip(name.bytes().take(n)) {
        *w = u16::from(b);
    }
    UNICODE_STRING {
        Length: (n * 2) as u16,
        MaximumLength: (wide.len() * 2) as u16,
        Buffer: wide.as_ptr(),
    }
}

/// Where the random address of a device without a MAC of its own is kept: bytes 0–3 and 4–5,
/// little-endian, in the adapter's registry key (not a keyword: the INF shows no such value).
const RANDOM_ADDRESS_VALUES: [&str; 2] = ["VirtionetRandomAddress0", "VirtionetRandomAddress1"];

/// The random permanent address of `adapter`: the one kept in its registry key, or `fresh`
/// — kept there now — if there is none. A device without VIRTIO_NET_F_MAC then has the same
/// permanent address across every restart of the stack, as a NIC with a burnt-in one would.
/// If the registry cannot be read or written, `fresh` (made locally administered unicast).
///
/// # Safety
///
/// `adapter` must be a created adapter, at PASSIVE_LEVEL.
pub unsafe fn persistent_random_address(adapter: NETADAPTER, fresh: [u8; 6]) -> [u8; 6] {
    let fresh = [(fresh[0] & 0xFC) | 0x02, fresh[1], fresh[2], fresh[3], fresh[4], fresh[5]];
    let mut cfg: NETCONFIGURATION = core::ptr::null_mut();
    // SAFETY: the caller's contract; no object attributes.
    let st = unsafe { NetAdapterOpenConfiguration(adapter, core::ptr::null_mut(), &mut cfg) };
    if st != STATUS_SUCCESS || cfg.is_null() {
        return fresh;
    }
    let mut words = [0u32; 2];
    let mut found = true;
    for (name, w) in RANDOM_ADDRESS_VALUES.iter().zip(words.iter_mut()) {
        let mut wide = [0u16; 64];
        let us = unicode(name, &mut wide);
        // SAFETY: `cfg` is open; the name and value outlive the call.
        found &= unsafe { NetConfigurationQueryUlong(cfg, 0, &us, w) } == STATUS_SUCCESS;
    }
    let [a, b, c, d] = words[0].to_le_bytes();
    let [e, f, ..] = words[1].to_le_bytes();
    let kept = [a, b, c, d, e, f];
    let address = if found && kept[0] & 3 == 2 {
        kept
    } else {
        let values = [
            u32::from_le_bytes([fresh[0], fresh[1], fresh[2], fresh[3]]),
            u32::from(u16::from_le_bytes([fresh[4], fresh[5]])),
        ];
        for (name, v) in RANDOM_ADDRESS_VALUES.iter().zip(values) {
            let mut wide = [0u16; 64];
            let us = unicode(name, &mut wide);
            // SAFETY: `cfg` is open; the name outlives the call. A failed write only means
            // the next start makes a new address.
            let _ = unsafe { NetConfigurationAssignUlong(cfg, &us, v) };
        }
        fresh
    };
    // SAFETY: opened above.
    unsafe { NetConfigurationClose(cfg) };
    address
}

/// Reads the keywords of `adapter` (PASSIVE_LEVEL, in PrepareHardware). Missing or unreadable
/// values give the defaults; the configuration object is always closed.
///
/// # Safety
///
/// `adapter` must be a created adapter, at PASSIVE_LEVEL.
pub unsafe fn read(adapter: NETADAPTER) -> UserSettings {
    let mut cfg: NETCONFIGURATION = core::ptr::null_mut();
    // SAFETY: the caller's contract; no object attributes.
    let st = unsafe { NetAdapterOpenConfiguration(adapter, core::ptr::null_mut(), &mut cfg) };
    if st != STATUS_SUCCESS || cfg.is_null() {
        return UserSettings::default();
    }
    let get = |name: &str| -> Option<u32> {
        // Keyword names are ASCII and short: widen them on the stack.
        let mut wide = [0u16; 64];
        let us = unicode(name, &mut wide);
        let mut v = 0u32;
        // SAFETY: `cfg` is open; the name and value outlive the call.
        let st = unsafe { NetConfigurationQueryUlong(cfg, 0, &us, &mut v) };
        (st == STATUS_SUCCESS).then_some(v)
    };
    let mut settings = UserSettings::from_keywords(get, None);
    let mut address = NET_ADAPTER_LINK_LAYER_ADDRESS::ethernet([0; 6]);
    // SAFETY: `cfg` is open; `address` is ours. Reads the `NetworkAddress` keyword.
    if unsafe { NetConfigurationQueryLinkLayerAddress(cfg, &mut address) } == STATUS_SUCCESS {
        settings.network_address = address
            .as_ethernet()
            .filter(|m| m[0] & 1 == 0 && *m != [0; 6]);
    }
    // SAFETY: opened above.
    unsafe { NetConfigurationClose(cfg) };
    settings
}
