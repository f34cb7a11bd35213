//! `NET_PACKET` and `NET_PACKET_LAYOUT` (net/packet.h).

use core::mem::{align_of, offset_of, size_of};

use static_assertions::const_assert_eq;

use crate::{FieldError, bits};

/// `NET_PACKET_LAYER2_TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Layer2Type {
    /// `NetPacketLayer2TypeUnspecified`.
    Unspecified = 0,
    /// `NetPacketLayer2TypeNull`: no link-layer header.
    Null = 1,
    /// `NetPacketLayer2TypeEthernet`.
    Ethernet = 2,
    /// `NetPacketLayer2TypeIeee80211` (SDK 22000 and later).
    Ieee80211 = 3,
}

/// `NET_PACKET_LAYER3_TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Layer3Type {
    /// `NetPacketLayer3TypeUnspecified`.
    Unspecified = 0,
    /// `NetPacketLayer3TypeIPv4UnspecifiedOptions`.
    Ipv4UnspecifiedOptions = 1,
    /// `NetPacketLayer3TypeIPv4WithOptions`.
    Ipv4WithOptions = 2,
    /// `NetPacketLayer3TypeIPv4NoOptions`.
    Ipv4NoOptions = 3,
    /// `NetPacketLayer3TypeIPv6UnspecifiedExtensions`.
    Ipv6UnspecifiedExtensions = 4,
    /// `NetPacketLayer3TypeIPv6WithExtensions`.
    Ipv6WithExtensions = 5,
    /// `NetPacketLayer3TypeIPv6NoExtensions`.
    Ipv6NoExtensions = 6,
}

impl Layer3Type {
    /// `NetPacketIsIpv4`.
    pub const fn is_ipv4(self) -> bool {
        matches!(
            self,
            Self::Ipv4UnspecifiedOptions | Self::Ipv4WithOptions | Self::Ipv4NoOptions
        )
    }

    /// `NetPacketIsIpv6`.
    pub const fn is_ipv6(self) -> bool {
        matches!(
            self,
            Self::Ipv6UnspecifiedExtensions | Self::Ipv6WithExtensions | Self::Ipv6NoExtensions
        )
    }
}

/// `NET_PACKET_LAYER4_TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Layer4Type {
    /// `NetPacketLayer4TypeUnspecified`.
    Unspecified = 0,
    /// `NetPacketLayer4TypeTcp`.
    Tcp = 1,
    /// `NetPacketLayer4TypeUdp`.
    Udp = 2,
    /// `NetPacketLayer4TypeIPFragment`: an IP fragment other than the first.
    IpFragment = 3,
    /// `NetPacketLayer4TypeIPNotFragment`: not fragmented, and neither TCP nor UDP.
    IpNotFragment = 4,
}

macro_rules! from_raw {
    ($ty:ident { $($v:ident),* }) => {
        impl $ty {
            /// The enumerator with this raw value, if there is one.
            pub const fn from_raw(raw: u8) -> Option<Self> {
                $(if raw == Self::$v as u8 { return Some(Self::$v); })*
                None
            }
        }
    };
}
from_raw!(Layer2Type {
    Unspecified,
    Null,
    Ethernet,
    Ieee80211
});
from_raw!(Layer3Type {
    Unspecified,
    Ipv4UnspecifiedOptions,
    Ipv4WithOptions,
    Ipv4NoOptions,
    Ipv6UnspecifiedExtensions,
    Ipv6WithExtensions,
    Ipv6NoExtensions
});
from_raw!(Layer4Type {
    Unspecified,
    Tcp,
    Udp,
    IpFragment,
    IpNotFragment
});

/// `NET_PACKET_LAYOUT`: five packed bytes of header lengths and layer types.
///
/// | byte | bits | field |
/// |---|---|---|
/// | 0–1 (u16) | 0–6 | `Layer2HeaderLength` : 7 |
/// | 0–1 | 7–15 | `Layer3HeaderLength` : 9 |
/// | 2 | 0–7 | `Layer4HeaderLength` : 8 |
/// | 3 | 0–3, 4–7 | `Layer2Type` : 4, `Layer3Type` : 4 |
/// | 4 | 0–3, 4–7 | `Layer4Type` : 4, `Reserved0` : 4 |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct NetPacketLayout([u8; 5]);

const_assert_eq!(size_of::<NetPacketLayout>(), 5);
const_assert_eq!(align_of::<NetPacketLayout>(), 1);

impl NetPacketLayout {
    /// All fields zero ("unknown").
    pub const ZERO: Self = Self([0; 5]);

    /// The raw five bytes.
    pub const fn to_bytes(self) -> [u8; 5] {
        self.0
    }

    /// A layout from its raw five bytes.
    pub const fn from_bytes(bytes: [u8; 5]) -> Self {
        Self(bytes)
    }

    const fn unit01(self) -> u64 {
        u16::from_le_bytes([self.0[0], self.0[1]]) as u64
    }

    const fn put_unit01(&mut self, v: u64) {
        let b = (v as u16).to_le_bytes();
        self.0[0] = b[0];
        self.0[1] = b[1];
    }

    /// `Layer2HeaderLength` (7 bits).
    pub const fn layer2_header_length(self) -> u8 {
        bits::get(self.unit01(), 0, 7) as u8
    }

    /// Sets `Layer2HeaderLength`; at most 127.
    pub const fn set_layer2_header_length(&mut self, v: u8) -> Result<(), FieldError> {
        match bits::set(self.unit01(), 0, 7, v as u64, "Layer2HeaderLength") {
            Ok(u) => {
                self.put_unit01(u);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `Layer3HeaderLength` (9 bits).
    pub const fn layer3_header_length(self) -> u16 {
        bits::get(self.unit01(), 7, 9) as u16
    }

    /// Sets `Layer3HeaderLength`; at most 511.
    pub const fn set_layer3_header_length(&mut self, v: u16) -> Result<(), FieldError> {
        match bits::set(self.unit01(), 7, 9, v as u64, "Layer3HeaderLength") {
            Ok(u) => {
                self.put_unit01(u);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `Layer4HeaderLength` (8 bits).
    pub const fn layer4_header_length(self) -> u8 {
        self.0[2]
    }

    /// Sets `Layer4HeaderLength` (the whole byte, so any `u8` fits).
    pub const fn set_layer4_header_length(&mut self, v: u8) {
        self.0[2] = v;
    }

    /// `Layer2Type` as stored (4 bits).
    pub const fn layer2_type_raw(self) -> u8 {
        self.0[3] & 0x0f
    }

    /// `Layer2Type`, or `None` for a value the header does not define.
    pub const fn layer2_type(self) -> Option<Layer2Type> {
        Layer2Type::from_raw(self.layer2_type_raw())
    }

    /// Sets `Layer2Type`.
    pub const fn set_layer2_type(&mut self, t: Layer2Type) {
        self.0[3] = (self.0[3] & 0xf0) | t as u8;
    }

    /// `Layer3Type` as stored (4 bits).
    pub const fn layer3_type_raw(self) -> u8 {
        self.0[3] >> 4
    }

    /// `Layer3Type`, or `None` for a value the header does not define.
    pub const fn layer3_type(self) -> Option<Layer3Type> {
        Layer3Type::from_raw(self.layer3_type_raw())
    }

    /// Sets `Layer3Type`.
    pub const fn set_layer3_type(&mut self, t: Layer3Type) {
        self.0[3] = (self.0[3] & 0x0f) | ((t as u8) << 4);
    }

    /// `Layer4Type` as stored (4 bits).
    pub const fn layer4_type_raw(self) -> u8 {
        self.0[4] & 0x0f
    }

    /// `Layer4Type`, or `None` for a value the header does not define.
    pub const fn layer4_type(self) -> Option<Layer4Type> {
        Layer4Type::from_raw(self.layer4_type_raw())
    }

    /// Sets `Layer4Type`; `Reserved0` is left as it is.
    pub const fn set_layer4_type(&mut self, t: Layer4Type) {
        self.0[4] = (self.0[4] & 0xf0) | t as u8;
    }

    /// `Reserved0` (4 bits): drivers leave it zero.
    pub const fn reserved0(self) -> u8 {
        self.0[4] >> 4
    }
}

/// `NET_PACKET`: one packet of a packet ring (12 bytes, alignment 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct NetPacket {
    /// `FragmentIndex`: fragment-ring index of the packet's first fragment.
    pub fragment_index: u32,
    /// `FragmentCount`: number of contiguous fragments (0 for an ignored TX packet).
    pub fragment_count: u16,
    /// `Layout`.
    pub layout: NetPacketLayout,
    /// Byte 11: bit 0 `Ignore`, bit 1 `Scratch`, bits 2–7 `Reserved1`.
    flags: u8,
}

const_assert_eq!(size_of::<NetPacket>(), 12);
const_assert_eq!(align_of::<NetPacket>(), 4);
const_assert_eq!(offset_of!(NetPacket, fragment_index), 0);
const_assert_eq!(offset_of!(NetPacket, fragment_count), 4);
const_assert_eq!(offset_of!(NetPacket, layout), 6);
const_assert_eq!(offset_of!(NetPacket, flags), 11);

const IGNORE: u8 = 1 << 0;
const SCRATCH: u8 = 1 << 1;

impl NetPacket {
    /// A packet over `fragment_count` fragments from `fragment_index`; layout and flags zero.
    pub const fn new(fragment_index: u32, fragment_count: u16) -> Self {
        Self {
            fragment_index,
            fragment_count,
            layout: NetPacketLayout::ZERO,
            flags: 0,
        }
    }

    /// `Ignore`: RX — the driver drops the packet; TX — the OS asks for it not to be sent.
    pub const fn ignore(&self) -> bool {
        self.flags & IGNORE != 0
    }

    /// Sets or clears `Ignore` (RX only; on TX the bit is the OS's).
    pub const fn set_ignore(&mut self, v: bool) {
        self.flags = if v {
            self.flags | IGNORE
        } else {
            self.flags & !IGNORE
        };
    }

    /// `Scratch`: the driver's own bit, reset to zero when the element is reused.
    pub const fn scratch(&self) -> bool {
        self.flags & SCRATCH != 0
    }

    /// Sets or clears `Scratch`.
    pub const fn set_scratch(&mut self, v: bool) {
        self.flags = if v {
            self.flags | SCRATCH
        } else {
            self.flags & !SCRATCH
        };
    }

    /// `Reserved1` (6 bits).
    pub const fn reserved1(&self) -> u8 {
        self.flags >> 2
    }

    /// The raw flags byte (byte 11).
    pub const fn flags_raw(&self) -> u8 {
        self.flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_fields_round_trip_at_their_limits() {
        let mut l = NetPacketLayout::ZERO;
        l.set_layer2_header_length(127).unwrap();
        l.set_layer3_header_length(511).unwrap();
        l.set_layer4_header_length(255);
        l.set_layer2_type(Layer2Type::Ieee80211);
        l.set_layer3_type(Layer3Type::Ipv6NoExtensions);
        l.set_layer4_type(Layer4Type::IpNotFragment);
        assert_eq!(l.layer2_header_length(), 127);
        assert_eq!(l.layer3_header_length(), 511);
        assert_eq!(l.layer4_header_length(), 255);
        assert_eq!(l.layer2_type(), Some(Layer2Type::Ieee80211));
        assert_eq!(l.layer3_type(), Some(Layer3Type::Ipv6NoExtensions));
        assert_eq!(l.layer4_type(), Some(Layer4Type::IpNotFragment));
        assert_eq!(l.reserved0(), 0);
        // Bits exactly where MSVC puts them.
        assert_eq!(l.to_bytes(), [0xff, 0xff, 0xff, 0x63, 0x04]);
    }

    #[test]
    fn layout_fields_do_not_disturb_each_other() {
        let mut l = NetPacketLayout::ZERO;
        l.set_layer2_header_length(14).unwrap();
        l.set_layer3_header_length(20).unwrap();
        assert_eq!(l.to_bytes()[0..2], ((20u16 << 7) | 14).to_le_bytes());
        l.set_layer2_header_length(18).unwrap();
        assert_eq!(l.layer3_header_length(), 20);
        assert_eq!(l.layer2_header_length(), 18);
        l.set_layer3_type(Layer3Type::Ipv4NoOptions);
        l.set_layer2_type(Layer2Type::Ethernet);
        assert_eq!(l.to_bytes()[3], 0x32);
    }

    #[test]
    fn layout_rejects_oversized_lengths() {
        let mut l = NetPacketLayout::ZERO;
        let e = l.set_layer2_header_length(128).unwrap_err();
        assert_eq!(
            e,
            FieldError {
                field: "Layer2HeaderLength",
                value: 128,
                max: 127
            }
        );
        assert_eq!(l.set_layer3_header_length(512).unwrap_err().max, 511);
        assert_eq!(l, NetPacketLayout::ZERO, "a failed set changes nothing");
    }

    #[test]
    fn unknown_enum_values_are_none() {
        let l = NetPacketLayout::from_bytes([0, 0, 0, 0xf4, 0x0f]);
        assert_eq!(l.layer2_type(), None);
        assert_eq!(l.layer2_type_raw(), 4);
        assert_eq!(l.layer3_type(), None);
        assert_eq!(l.layer4_type(), None);
        assert_eq!(Layer3Type::from_raw(7), None);
        assert!(Layer3Type::Ipv4WithOptions.is_ipv4());
        assert!(!Layer3Type::Ipv4WithOptions.is_ipv6());
        assert!(Layer3Type::Ipv6UnspecifiedExtensions.is_ipv6());
        assert!(!Layer3Type::Unspecified.is_ipv4() && !Layer3Type::Unspecified.is_ipv6());
    }

    #[test]
    fn packet_flag_bits() {
        let mut p = NetPacket::default();
        p.set_ignore(true);
        assert_eq!(p.flags_raw(), 1);
        p.set_scratch(true);
        assert_eq!(p.flags_raw(), 3);
        p.set_ignore(false);
        assert!(!p.ignore() && p.scratch());
        assert_eq!(p.reserved1(), 0);
    }
}
