//! Extension names and versions, as the NUL-terminated UTF-16 strings NetAdapterCx matches on.
//!
//! The framework matches a query by exact name and a registered version at least the one asked
//! for. Each [`ExtensionSpec`] here bundles the name, version, element type and the payload's size
//! and alignment (what the framework's layout needs when a simulator registers it).

use core::mem::{align_of, size_of};

use crate::payload::{
    NetFragmentLogicalAddress, NetFragmentMdl, NetFragmentReturnContext, NetFragmentVirtualAddress,
    NetPacketChecksum, NetPacketGso, NetPacketHash, NetPacketIeee8021q, NetPacketLso, NetPacketRsc,
    NetPacketRscTimestamp,
};
use crate::{ExtensionSpec, ExtensionType};

/// Converts an ASCII string into a NUL-terminated UTF-16 array at compile time.
///
/// `N` must be `s.len() + 1` and `s` ASCII; both are checked during constant evaluation (a wrong
/// use fails the build, it cannot fail at run time).
// Evaluated only in constants (every use is a `const`/`static` initialiser): the assertions,
// the indexing (`i < b.len() = N - 1`) and the arithmetic run in the compiler, never in the
// driver.
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]
pub const fn utf16z<const N: usize>(s: &str) -> [u16; N] {
    let b = s.as_bytes();
    assert!(b.len() + 1 == N, "N must be the string length plus one");
    let mut out = [0u16; N];
    let mut i = 0;
    while i < b.len() {
        assert!(b[i].is_ascii(), "extension names are ASCII");
        out[i] = b[i] as u16;
        i += 1;
    }
    out
}

macro_rules! wide {
    ($s:literal) => {{
        const W: [u16; $s.len() + 1] = utf16z($s);
        &W
    }};
}

/// `L"ms_packet_checksum"`.
pub const CHECKSUM_NAME: &[u16] = wide!("ms_packet_checksum");
/// `L"ms_packet_gso"`.
pub const GSO_NAME: &[u16] = wide!("ms_packet_gso");
/// `L"ms_packet_lso"` (SDK 19041; still registered by the framework).
pub const LSO_NAME: &[u16] = wide!("ms_packet_lso");
/// `L"ms_packet_rsc"`.
pub const RSC_NAME: &[u16] = wide!("ms_packet_rsc");
/// `L"ms_packet_rsc_timestamp"`.
pub const RSC_TIMESTAMP_NAME: &[u16] = wide!("ms_packet_rsc_timestamp");
/// `L"ms_packet_ieee8021q"`.
pub const IEEE8021Q_NAME: &[u16] = wide!("ms_packet_ieee8021q");
/// `L"ms_packet_hash"`.
pub const HASH_NAME: &[u16] = wide!("ms_packet_hash");
/// `L"ms_fragment_virtualaddress"`.
pub const VIRTUAL_ADDRESS_NAME: &[u16] = wide!("ms_fragment_virtualaddress");
/// `L"ms_fragment_logicaladdress"`.
pub const LOGICAL_ADDRESS_NAME: &[u16] = wide!("ms_fragment_logicaladdress");
/// `L"ms_fragment_returncontext"`.
pub const RETURN_CONTEXT_NAME: &[u16] = wide!("ms_fragment_returncontext");
/// `L"ms_fragment_mdl"`.
pub const MDL_NAME: &[u16] = wide!("ms_fragment_mdl");

const fn spec<T>(name: &'static [u16], version: u32, ty: ExtensionType) -> ExtensionSpec {
    ExtensionSpec {
        name,
        version,
        ty,
        size: size_of::<T>(),
        align: align_of::<T>(),
    }
}

/// Checksum, `NET_PACKET_EXTENSION_CHECKSUM_VERSION_1`.
pub const CHECKSUM: ExtensionSpec =
    spec::<NetPacketChecksum>(CHECKSUM_NAME, 1, ExtensionType::Packet);
/// GSO (LSO and USO), version 1.
pub const GSO: ExtensionSpec = spec::<NetPacketGso>(GSO_NAME, 1, ExtensionType::Packet);
/// Legacy LSO, version 1.
pub const LSO: ExtensionSpec = spec::<NetPacketLso>(LSO_NAME, 1, ExtensionType::Packet);
/// RSC, version 1 (TCP).
pub const RSC: ExtensionSpec = spec::<NetPacketRsc>(RSC_NAME, 1, ExtensionType::Packet);
/// RSC, version 2 (TCP and UDP; SDK 26100).
pub const RSC_V2: ExtensionSpec = spec::<NetPacketRsc>(RSC_NAME, 2, ExtensionType::Packet);
/// RSC timestamp, version 1.
pub const RSC_TIMESTAMP: ExtensionSpec =
    spec::<NetPacketRscTimestamp>(RSC_TIMESTAMP_NAME, 1, ExtensionType::Packet);
/// IEEE 802.1Q, version 1.
pub const IEEE8021Q: ExtensionSpec =
    spec::<NetPacketIeee8021q>(IEEE8021Q_NAME, 1, ExtensionType::Packet);
/// Hash, version 1.
pub const HASH: ExtensionSpec = spec::<NetPacketHash>(HASH_NAME, 1, ExtensionType::Packet);
/// Fragment virtual address, version 1.
pub const VIRTUAL_ADDRESS: ExtensionSpec =
    spec::<NetFragmentVirtualAddress>(VIRTUAL_ADDRESS_NAME, 1, ExtensionType::Fragment);
/// Fragment logical address, version 1.
pub const LOGICAL_ADDRESS: ExtensionSpec =
    spec::<NetFragmentLogicalAddress>(LOGICAL_ADDRESS_NAME, 1, ExtensionType::Fragment);
/// Fragment return context, version 1.
pub const RETURN_CONTEXT: ExtensionSpec =
    spec::<NetFragmentReturnContext>(RETURN_CONTEXT_NAME, 1, ExtensionType::Fragment);
/// Fragment MDL, version 1.
pub const MDL: ExtensionSpec = spec::<NetFragmentMdl>(MDL_NAME, 1, ExtensionType::Fragment);

#[cfg(test)]
mod tests {
    use super::*;

    fn narrow(w: &[u16]) -> alloc::string::String {
        assert_eq!(w.last(), Some(&0), "NUL-terminated");
        char::decode_utf16(w[..w.len() - 1].iter().copied())
            .map(|c| c.unwrap())
            .collect()
    }

    #[test]
    fn names_are_nul_terminated_utf16() {
        assert_eq!(narrow(CHECKSUM_NAME), "ms_packet_checksum");
        assert_eq!(CHECKSUM_NAME.len(), "ms_packet_checksum".len() + 1);
        assert_eq!(narrow(RSC_TIMESTAMP_NAME), "ms_packet_rsc_timestamp");
        assert_eq!(narrow(LOGICAL_ADDRESS_NAME), "ms_fragment_logicaladdress");
        assert_eq!(narrow(RETURN_CONTEXT.name), "ms_fragment_returncontext");
        assert_eq!(CHECKSUM_NAME.iter().filter(|&&c| c == 0).count(), 1);
    }

    #[test]
    fn specs_carry_payload_shapes() {
        assert_eq!((CHECKSUM.size, CHECKSUM.align), (1, 1));
        assert_eq!((IEEE8021Q.size, IEEE8021Q.align), (4, 2));
        assert_eq!((HASH.size, HASH.align), (8, 4));
        assert_eq!((LOGICAL_ADDRESS.size, LOGICAL_ADDRESS.align), (8, 8));
        assert_eq!(RSC_V2.version, 2);
        assert_eq!(RSC_V2.name, RSC.name);
        assert_eq!(MDL.ty, ExtensionType::Fragment);
        assert_eq!(GSO.ty, ExtensionType::Packet);
    }
}
