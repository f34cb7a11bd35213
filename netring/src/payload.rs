//! Packet and fragment extension payloads (net/checksum.h, gso.h, lso.h, rsc.h, ieee8021q.h,
//! hash.h, virtualaddress.h, logicaladdress.h, returncontext.h, mdl.h).
//!
//! Each type is the exact x64 layout of its C struct; bit-fields have typed accessors whose setters
//! refuse a value that does not fit.

use core::ffi::c_void;
use core::mem::{align_of, offset_of, size_of};

use bitflags::bitflags;
use static_assertions::const_assert_eq;

use crate::{FieldError, bits};

/// Plain data that may live in an extension slot of a ring element.
///
/// # Safety
///
/// Implementors must be `#[repr(C)]` or `#[repr(transparent)]` and valid for every bit pattern of
/// their size (the OS writes these bytes; reading them must never be undefined behaviour).
pub unsafe trait Payload: Copy + 'static {}

/// `NET_PACKET_TX_CHECKSUM_ACTION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TxChecksumAction {
    /// `NetPacketTxChecksumActionPassthrough`: leave the checksum as it is.
    Passthrough = 0,
    /// `NetPacketTxChecksumActionRequired`: the driver/hardware must compute it.
    Required = 2,
}

impl TxChecksumAction {
    /// The action with this raw 2-bit value (1 and 3 are not defined).
    pub const fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(Self::Passthrough),
            2 => Some(Self::Required),
            _ => None,
        }
    }
}

/// `NET_PACKET_RX_CHECKSUM_EVALUATION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RxChecksumEvaluation {
    /// `NetPacketRxChecksumEvaluationNotChecked`.
    NotChecked = 0,
    /// `NetPacketRxChecksumEvaluationValid`.
    Valid = 1,
    /// `NetPacketRxChecksumEvaluationInvalid`.
    Invalid = 2,
}

impl RxChecksumEvaluation {
    /// The evaluation with this raw 2-bit value (3 is not defined).
    pub const fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(Self::NotChecked),
            1 => Some(Self::Valid),
            2 => Some(Self::Invalid),
            _ => None,
        }
    }
}

/// `NET_PACKET_CHECKSUM`: 2-bit action (TX) or evaluation (RX) per layer.
///
/// Bits 0–1 `Layer2`, 2–3 `Layer3`, 4–5 `Layer4`, 6–7 `Reserved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct NetPacketChecksum(u8);

const_assert_eq!(size_of::<NetPacketChecksum>(), 1);

impl NetPacketChecksum {
    /// The raw byte.
    pub const fn to_bits(self) -> u8 {
        self.0
    }

    /// From the raw byte.
    pub const fn from_bits(b: u8) -> Self {
        Self(b)
    }

    /// `Layer2` (never used by the OS).
    pub const fn layer2(self) -> u8 {
        self.0 & 3
    }

    /// `Layer3`: IPv4 header checksum.
    pub const fn layer3(self) -> u8 {
        (self.0 >> 2) & 3
    }

    /// `Layer4`: TCP or UDP checksum.
    pub const fn layer4(self) -> u8 {
        (self.0 >> 4) & 3
    }

    /// `Reserved` (bits 6–7).
    pub const fn reserved(self) -> u8 {
        self.0 >> 6
    }

    const fn set(&mut self, shift: u32, v: u8, field: &'static str) -> Result<(), FieldError> {
        match bits::set(self.0 as u64, shift, 2, v as u64, field) {
            Ok(u) => {
                self.0 = u as u8;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Sets `Layer2` (0–3).
    pub const fn set_layer2(&mut self, v: u8) -> Result<(), FieldError> {
        self.set(0, v, "Layer2")
    }

    /// Sets `Layer3` (0–3).
    pub const fn set_layer3(&mut self, v: u8) -> Result<(), FieldError> {
        self.set(2, v, "Layer3")
    }

    /// Sets `Layer4` (0–3).
    pub const fn set_layer4(&mut self, v: u8) -> Result<(), FieldError> {
        self.set(4, v, "Layer4")
    }

    /// TX: is the IPv4 header checksum requested? (`None` for an undefined value.)
    pub const fn tx_layer3(self) -> Option<TxChecksumAction> {
        TxChecksumAction::from_raw(self.layer3())
    }

    /// TX: is the TCP/UDP checksum requested? (`None` for an undefined value.)
    pub const fn tx_layer4(self) -> Option<TxChecksumAction> {
        TxChecksumAction::from_raw(self.layer4())
    }

    /// RX: the IP header verdict (`None` for an undefined value).
    pub const fn rx_layer3(self) -> Option<RxChecksumEvaluation> {
        RxChecksumEvaluation::from_raw(self.layer3())
    }

    /// RX: the TCP/UDP verdict (`None` for an undefined value).
    pub const fn rx_layer4(self) -> Option<RxChecksumEvaluation> {
        RxChecksumEvaluation::from_raw(self.layer4())
    }

    /// An RX checksum extension with these verdicts (Layer2 and Reserved zero).
    pub const fn rx(layer3: RxChecksumEvaluation, layer4: RxChecksumEvaluation) -> Self {
        Self(((layer3 as u8) << 2) | ((layer4 as u8) << 4))
    }

    /// A TX checksum extension with these actions (Layer2 and Reserved zero).
    pub const fn tx(layer3: TxChecksumAction, layer4: TxChecksumAction) -> Self {
        Self(((layer3 as u8) << 2) | ((layer4 as u8) << 4))
    }
}

macro_rules! mss_payload {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        #[repr(transparent)]
        pub struct $name(u32);

        const_assert_eq!(size_of::<$name>(), 4);

        impl $name {
            /// Largest MSS the 20-bit field holds.
            pub const MAX_MSS: u32 = (1 << 20) - 1;

            /// The raw 32-bit unit.
            pub const fn to_bits(self) -> u32 {
                self.0
            }

            /// From the raw 32-bit unit.
            pub const fn from_bits(b: u32) -> Self {
                Self(b)
            }

            /// `Mss` (bits 0–19); 0 means "no segmentation".
            pub const fn mss(self) -> u32 {
                bits::get(self.0 as u64, 0, 20) as u32
            }

            /// Sets `Mss`; at most 2^20 − 1.
            pub const fn set_mss(&mut self, mss: u32) -> Result<(), FieldError> {
                match bits::set(self.0 as u64, 0, 20, mss as u64, "Mss") {
                    Ok(u) => {
                        self.0 = u as u32;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }

            /// `Reserved0` (bits 20–31).
            pub const fn reserved0(self) -> u32 {
                self.0 >> 20
            }
        }
    };
}

mss_payload!(
    /// `NET_PACKET_GSO` (SDK 22000+): the union `TCP { Mss:20 }` / `UDP { Mss:20 }` — the same
    /// bits; the packet's `Layer4Type` says whether it is LSO (TCP) or USO (UDP).
    NetPacketGso
);
mss_payload!(
    /// `NET_PACKET_LSO` (SDK 19041, still registered by the framework for old drivers):
    /// `TCP { Mss:20 }`.
    NetPacketLso
);

/// `NET_PACKET_RSC`: `TCP { CoalescedSegmentCount; DuplicateAckCount }`, and from version 2 also
/// `UDP { CoalescedSegmentCount; CoalescedSegmentSize }` over the same two words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct NetPacketRsc {
    /// `TCP.CoalescedSegmentCount` (also `UDP.CoalescedSegmentCount`).
    pub coalesced_segment_count: u16,
    /// `TCP.DuplicateAckCount`; for UDP (version 2) this word is `UDP.CoalescedSegmentSize`.
    pub duplicate_ack_count: u16,
}

const_assert_eq!(size_of::<NetPacketRsc>(), 4);
const_assert_eq!(offset_of!(NetPacketRsc, duplicate_ack_count), 2);

impl NetPacketRsc {
    /// `UDP.CoalescedSegmentSize` (version 2): the second word read as the UDP variant.
    pub const fn udp_coalesced_segment_size(self) -> u16 {
        self.duplicate_ack_count
    }

    /// A UDP (version 2) RSC payload.
    pub const fn udp(coalesced_segment_count: u16, coalesced_segment_size: u16) -> Self {
        Self {
            coalesced_segment_count,
            duplicate_ack_count: coalesced_segment_size,
        }
    }
}

/// `NET_PACKET_RSC_TIMESTAMP`: `TCP { RscTcpTimestampDelta }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct NetPacketRscTimestamp {
    /// `TCP.RscTcpTimestampDelta`.
    pub rsc_tcp_timestamp_delta: u32,
}

const_assert_eq!(size_of::<NetPacketRscTimestamp>(), 4);

bitflags! {
    /// `NET_PACKET_TX_IEEE8021Q_ACTION_FLAGS` (the 2-bit `TxTagging` field).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Ieee8021qTxTagging: u8 {
        /// `NetPacketTxIeee8021qActionFlagPriorityRequired`.
        const PRIORITY_REQUIRED = 1;
        /// `NetPacketTxIeee8021qActionFlagVlanRequired`.
        const VLAN_REQUIRED = 2;
    }
}

/// `NET_PACKET_IEEE8021Q`: a 16-bit unit with `PriorityCodePoint` (bits 0–2) and
/// `VlanIdentifier` (bits 3–14), then a byte with `TxTagging` (bits 0–1), then padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct NetPacketIeee8021q {
    tag: u16,
    tx: u8,
    padding: u8,
}

const_assert_eq!(size_of::<NetPacketIeee8021q>(), 4);
const_assert_eq!(align_of::<NetPacketIeee8021q>(), 2);
const_assert_eq!(offset_of!(NetPacketIeee8021q, tx), 2);

impl NetPacketIeee8021q {
    /// Largest VLAN identifier (12 bits).
    pub const MAX_VLAN: u16 = 4095;
    /// Largest priority code point (3 bits).
    pub const MAX_PRIORITY: u8 = 7;

    /// `PriorityCodePoint` (3 bits).
    pub const fn priority_code_point(self) -> u8 {
        (self.tag & 7) as u8
    }

    /// Sets `PriorityCodePoint`; at most 7.
    pub const fn set_priority_code_point(&mut self, v: u8) -> Result<(), FieldError> {
        match bits::set(self.tag as u64, 0, 3, v as u64, "PriorityCodePoint") {
            Ok(u) => {
                self.tag = u as u16;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `VlanIdentifier` (12 bits).
    pub const fn vlan_identifier(self) -> u16 {
        (self.tag >> 3) & 0xfff
    }

    /// Sets `VlanIdentifier`; at most 4095.
    pub const fn set_vlan_identifier(&mut self, v: u16) -> Result<(), FieldError> {
        match bits::set(self.tag as u64, 3, 12, v as u64, "VlanIdentifier") {
            Ok(u) => {
                self.tag = u as u16;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `TxTagging` as flags (undefined bits are dropped).
    pub const fn tx_tagging(self) -> Ieee8021qTxTagging {
        Ieee8021qTxTagging::from_bits_truncate(self.tx & 3)
    }

    /// `TxTagging` as stored (2 bits).
    pub const fn tx_tagging_raw(self) -> u8 {
        self.tx & 3
    }

    /// Sets `TxTagging`.
    pub const fn set_tx_tagging(&mut self, f: Ieee8021qTxTagging) {
        self.tx = (self.tx & !3) | f.bits();
    }
}

bitflags! {
    /// `NET_PACKET_HASH_PROTOCOL_TYPE`: what the hash was computed over.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct HashProtocolType: u16 {
        /// `NetPacketHashProtocolTypeIPv4`.
        const IPV4 = 0x1;
        /// `NetPacketHashProtocolTypeIPv4Options`.
        const IPV4_OPTIONS = 0x2;
        /// `NetPacketHashProtocolTypeIPv6`.
        const IPV6 = 0x4;
        /// `NetPacketHashProtocolTypeIPv6Extensions`.
        const IPV6_EXTENSIONS = 0x8;
        /// `NetPacketHashProtocolTypeTcp`.
        const TCP = 0x10;
        /// `NetPacketHashProtocolTypeUdp`.
        const UDP = 0x20;
    }
}

/// `NET_PACKET_HASH`: the RSS hash of a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct NetPacketHash {
    /// `HashValue`.
    pub hash_value: u32,
    /// `ProtocolType` (see [`HashProtocolType`]).
    pub protocol_type: u16,
    padding: u16,
}

const_assert_eq!(size_of::<NetPacketHash>(), 8);
const_assert_eq!(offset_of!(NetPacketHash, protocol_type), 4);

impl NetPacketHash {
    /// A hash payload.
    pub const fn new(hash_value: u32, protocol_type: HashProtocolType) -> Self {
        Self {
            hash_value,
            protocol_type: protocol_type.bits(),
            padding: 0,
        }
    }

    /// `ProtocolType` as flags (undefined bits dropped).
    pub const fn protocol(self) -> HashProtocolType {
        HashProtocolType::from_bits_truncate(self.protocol_type)
    }
}

/// `NET_FRAGMENT_VIRTUAL_ADDRESS`: the CPU address of the fragment's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct NetFragmentVirtualAddress {
    /// `VirtualAddress` (buffer start; add the fragment's `Offset` for the data).
    pub virtual_address: *mut c_void,
}

/// `NET_FRAGMENT_LOGICAL_ADDRESS`: the device (DMA) address of the fragment's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct NetFragmentLogicalAddress {
    /// `LogicalAddress` (buffer start; add the fragment's `Offset` for the data).
    pub logical_address: u64,
}

/// `NET_FRAGMENT_RETURN_CONTEXT`: the driver's handle for a buffer it attached on RX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct NetFragmentReturnContext {
    /// `Handle` (`NET_FRAGMENT_RETURN_CONTEXT_HANDLE`, opaque to the OS).
    pub handle: *mut c_void,
}

/// `NET_FRAGMENT_MDL`: the MDL describing the fragment's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct NetFragmentMdl {
    /// `Mdl` (`PMDL`).
    pub mdl: *mut c_void,
}

const_assert_eq!(size_of::<NetFragmentVirtualAddress>(), 8);
const_assert_eq!(size_of::<NetFragmentLogicalAddress>(), 8);
const_assert_eq!(size_of::<NetFragmentReturnContext>(), 8);
const_assert_eq!(size_of::<NetFragmentMdl>(), 8);
const_assert_eq!(align_of::<NetFragmentLogicalAddress>(), 8);

// SAFETY: each type below is `repr(C)`/`repr(transparent)` over integers or raw pointers only, so
// every bit pattern of its size is a valid value.
unsafe impl Payload for NetPacketChecksum {}
// SAFETY: as above (one u32).
unsafe impl Payload for NetPacketGso {}
// SAFETY: as above (one u32).
unsafe impl Payload for NetPacketLso {}
// SAFETY: as above (two u16).
unsafe impl Payload for NetPacketRsc {}
// SAFETY: as above (one u32).
unsafe impl Payload for NetPacketRscTimestamp {}
// SAFETY: as above (u16, u8, u8).
unsafe impl Payload for NetPacketIeee8021q {}
// SAFETY: as above (u32, u16, u16).
unsafe impl Payload for NetPacketHash {}
// SAFETY: as above (one raw pointer; any value is a valid raw pointer).
unsafe impl Payload for NetFragmentVirtualAddress {}
// SAFETY: as above (one u64).
unsafe impl Payload for NetFragmentLogicalAddress {}
// SAFETY: as above (one raw pointer).
unsafe impl Payload for NetFragmentReturnContext {}
// SAFETY: as above (one raw pointer).
unsafe impl Payload for NetFragmentMdl {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_bits() {
        let tx = NetPacketChecksum::tx(TxChecksumAction::Required, TxChecksumAction::Required);
        assert_eq!(tx.to_bits(), 0b10_10_00);
        assert_eq!(tx.tx_layer3(), Some(TxChecksumAction::Required));
        assert_eq!(tx.tx_layer4(), Some(TxChecksumAction::Required));
        let rx = NetPacketChecksum::rx(RxChecksumEvaluation::Valid, RxChecksumEvaluation::Invalid);
        assert_eq!(rx.to_bits(), 0b10_01_00);
        assert_eq!(rx.rx_layer4(), Some(RxChecksumEvaluation::Invalid));
        let mut c = NetPacketChecksum::from_bits(0xff);
        assert_eq!(
            (c.layer2(), c.layer3(), c.layer4(), c.reserved()),
            (3, 3, 3, 3)
        );
        assert_eq!(c.tx_layer3(), None);
        assert_eq!(c.rx_layer4(), None);
        c.set_layer3(1).unwrap();
        assert_eq!(c.to_bits(), 0b1111_0111);
        assert_eq!(c.set_layer4(4).unwrap_err().field, "Layer4");
        c.set_layer2(0).unwrap();
        assert_eq!(c.to_bits(), 0b1111_0100);
        assert_eq!(TxChecksumAction::from_raw(1), None);
    }

    #[test]
    fn gso_mss_limits() {
        let mut g = NetPacketGso::from_bits(0xfff0_0000);
        g.set_mss(NetPacketGso::MAX_MSS).unwrap();
        assert_eq!(g.to_bits(), u32::MAX);
        assert_eq!(g.reserved0(), 0xfff);
        assert_eq!(g.set_mss(1 << 20).unwrap_err().max, (1 << 20) - 1);
        let mut l = NetPacketLso::default();
        l.set_mss(1448).unwrap();
        assert_eq!(l.mss(), 1448);
    }

    #[test]
    fn ieee8021q_bits() {
        let mut q = NetPacketIeee8021q::default();
        q.set_priority_code_point(7).unwrap();
        q.set_vlan_identifier(4095).unwrap();
        q.set_tx_tagging(Ieee8021qTxTagging::all());
        assert_eq!(q.tag, 0x7fff);
        assert_eq!(q.tx, 3);
        q.set_vlan_identifier(100).unwrap();
        assert_eq!(q.priority_code_point(), 7);
        assert_eq!(q.vlan_identifier(), 100);
        assert_eq!(q.tag, (100 << 3) | 7);
        assert_eq!(
            q.set_vlan_identifier(4096).unwrap_err().field,
            "VlanIdentifier"
        );
        assert_eq!(q.set_priority_code_point(8).unwrap_err().max, 7);
        assert_eq!(q.tx_tagging(), Ieee8021qTxTagging::all());
        q.set_tx_tagging(Ieee8021qTxTagging::VLAN_REQUIRED);
        assert_eq!(q.tx_tagging_raw(), 2);
    }

    #[test]
    fn hash_and_rsc() {
        let h = NetPacketHash::new(0xdead_beef, HashProtocolType::IPV4 | HashProtocolType::TCP);
        assert_eq!(h.protocol_type, 0x11);
        assert_eq!(h.protocol(), HashProtocolType::IPV4 | HashProtocolType::TCP);
        let r = NetPacketRsc::udp(5, 1200);
        assert_eq!(r.udp_coalesced_segment_size(), 1200);
        assert_eq!(r.coalesced_segment_count, 5);
    }
}
