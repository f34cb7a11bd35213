//! The INF advanced properties, read with NetAdapterOpenConfiguration and
//! NetConfigurationQueryUlong / QueryLinkLayerAddress (RtEthSample's configuration.cpp, table
//! driven by the core's [`UserSettings::from_keywords`], which does every range check).

use super::netcx::*;
use crate::config::UserSettings;

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
        let n = name.len().min(wide.len() - 1);
        for (w, b) in wide.iter_mut().zip(name.bytes().take(n)) {
            *w = u16::from(b);
        }
        let us = UNICODE_STRING {
            Length: (n * 2) as u16,
            MaximumLength: (wide.len() * 2) as u16,
            Buffer: wide.as_ptr(),
        };
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
